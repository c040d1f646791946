"""tap-dativo-csv writes RECORD messages from Arrow chunks, byte for byte what the SDK writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st
from singer_sdk.singerlib.json import serialize_json
from test_tap_dativo_csv import CONTRACT_YAML, HEADER, ROOT, person_row, run_tap, write_csv

from tap_dativo_csv.convert import iso_utc
from tap_dativo_csv.jsonlines import record_lines

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=10)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e6, 1e6).map(lambda f: round(f, 4)),
    st.integers(-(10**6), 10**6).map(float),
    st.sampled_from([0.0, -0.0, 1e-4, 9.9999e-5, 1e15, 1e16, 9999999999999998.0, 5e-324]),
)
COLUMNS = {
    "int": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "float": (pa.float64(), FLOATS),
    "string": (pa.string(), TEXT),
    "bool": (pa.bool_(), st.booleans()),
    "null": (pa.null(), st.none()),
}


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_record_lines_are_what_simplejson_writes(data: Any) -> None:
    kinds = data.draw(st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=5), label="kinds")
    names = data.draw(st.lists(TEXT, min_size=len(kinds), max_size=len(kinds), unique=True), label="names")
    rows = data.draw(st.integers(0, 8), label="rows")
    columns = [
        pa.array(data.draw(st.lists(st.none() | COLUMNS[k][1], min_size=rows, max_size=rows)), COLUMNS[k][0])
        for k in kinds
    ]
    batch = (
        pa.RecordBatch.from_arrays(columns, names=names) if kinds else pa.RecordBatch.from_pylist([{}] * rows)
    )
    stream = data.draw(TEXT, label="stream")
    version = data.draw(st.none() | st.integers(0, 2**40), label="version")
    lines = record_lines(batch, stream, "2026-12-01T10:00:00.123456+00:00", version)
    assert lines is not None and len(lines) == rows
    for row, line in zip(batch.to_pylist(), lines.to_pylist(), strict=True):
        message: dict[str, Any] = {"type": "RECORD", "stream": stream, "record": row}
        if version is not None:
            message["version"] = version
        message["time_extracted"] = "2026-12-01T10:00:00.123456+00:00"
        assert line == serialize_json(message)


@given(st.lists(st.none() | st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999), max_size=50))
def test_iso_utc_writes_what_strftime_writes(micros: list[int | None]) -> None:
    stamps = pa.array(micros, pa.timestamp("us", tz="UTC"))  # years 1 to 9999
    assert iso_utc(stamps).to_pylist() == pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()


def test_unsupported_column_types_are_left_to_the_sdk() -> None:
    batch = pa.RecordBatch.from_pydict({"d": pa.array([1], pa.decimal128(5, 2))})
    assert record_lines(batch, "s", "2026-12-01T10:00:00+00:00") is None


SDK_PATH = """
import sys
from tap_dativo_csv.records import ArrowRecords
ArrowRecords.per_record_reason = lambda self: "forced by the test"
from tap_dativo_csv.tap import TapDativoCSV
sys.argv = ["tap-dativo-csv", "--config", sys.argv[1]]
TapDativoCSV.cli()
"""


def _without_time(stdout: str) -> list[str]:
    return [re.sub(r',"time_extracted":"[^"]*"', "", line) for line in stdout.splitlines()]


def test_arrow_chunks_write_what_the_sdk_path_writes(tmp_path: Path) -> None:
    """Two files, a misfit cell (its chunk goes record by record), a column one file lacks, metadata
    columns, unicode and quotes, chunks that do not divide the SDK's STATE interval: the message
    streams are identical but for time_extracted."""
    rows = [person_row(i) for i in range(1, 25_001)]
    rows[7][1] = 'Zoë "the" \\ one\ttab'
    rows[12_345][0] = "x12346"  # not an integer: emitted as text, reported
    write_csv(tmp_path / "in" / "a.csv", rows, HEADER)
    write_csv(tmp_path / "in" / "b.csv", [r[:5] for r in rows[:4_000]], HEADER[:5])  # lacks seen_at
    (tmp_path / "person.yaml").write_text(CONTRACT_YAML)
    files = [{"path": str(tmp_path / "in"), "object": "person", "asset": str(tmp_path / "person.yaml")}]
    config = {"files": files, "chunk_size": 3_000, "add_metadata_columns": True}
    (tmp_path / "fast").mkdir()
    fast = run_tap(tmp_path / "fast", config)
    assert "RECORD messages written from Arrow chunks" in fast.stderr
    (tmp_path / "config.json").write_text(json.dumps(config))
    sdk = subprocess.run(
        [sys.executable, "-c", SDK_PATH, str(tmp_path / "config.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    assert "written record by record (forced by the test)" in sdk.stderr
    assert len(fast.records()) == 29_000
    assert len(fast.final_state["bookmarks"]["person"]["partitions"]) == 2  # both files bookmarked
    assert fast.records()[12_345]["id"] == "x12346" and fast.records()[7]["name"] == rows[7][1]
    assert fast.records()[25_000]["seen_at"] is None and fast.records()[25_000]["_sdc_source_lineno"] == 2
    raw_fast = subprocess.run(
        [str(Path(sys.executable).with_name("tap-dativo-csv")), "--config", str(tmp_path / "config.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=True,
    ).stdout
    assert _without_time(raw_fast) == _without_time(sdk.stdout)  # byte for byte, STATEs included


def test_stream_maps_take_the_record_path(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "p.csv", [person_row(i) for i in range(1, 6)], HEADER)
    config = {
        "files": [{"path": str(data), "object": "person"}],
        "stream_maps": {"person": {"name": "name.upper()"}},
    }
    run = run_tap(tmp_path, config)
    assert "written record by record (stream_maps apply to the stream)" in run.stderr
    assert [r["name"] for r in run.records()] == [f"NAME-{i}" for i in range(1, 6)]
