"""tap-dativo-csv on local files: directories, globs, gzip, dialect settings, bad rows, inference,
metadata columns and SDK BATCH output."""

from __future__ import annotations

import datetime
import gzip
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from test_tap_dativo_csv import (
    CONTRACT_YAML,
    HEADER,
    bookmarks,
    mtime_iso,
    person_row,
    run_tap,
    write_csv,
)


def write_gz(path: Path, text: str) -> Path:
    """Write gzip-compressed text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))
    return path


def warnings(stderr: str) -> list[str]:
    """WARNING log lines of a run."""
    return [line for line in stderr.splitlines() if "WARNING" in line]


def test_directory_glob_gz_and_stable_order(tmp_path: Path) -> None:
    """A directory takes its .csv/.csv.gz files (not recursive, sorted); `**` recurses; gz is read."""
    data = tmp_path / "in"
    write_csv(data / "b.csv", [["3"], ["4"]], ["id"])
    write_gz(data / "a.csv.gz", "id\n1\n2\n")
    write_csv(data / "notes.txt", [["x"]], ["id"])
    write_csv(data / "sub" / "c.csv", [["5"]], ["id"])
    config = {
        "files": [
            {"path": str(data), "object": "dir"},
            {"path": str(data / "**" / "*.csv*"), "object": "deep"},
            {"path": str(data / "b.csv"), "object": "deep"},  # also matched by the glob: read once
        ]
    }
    run = run_tap(tmp_path, config)
    assert [r["id"] for r in run.records("dir")] == ["1", "2", "3", "4"]
    assert [r["id"] for r in run.records("deep")] == ["1", "2", "3", "4", "5"]
    assert bookmarks(run.final_state, "dir") == {
        str(data / "a.csv.gz"): mtime_iso(data / "a.csv.gz"),
        str(data / "b.csv"): mtime_iso(data / "b.csv"),
    }
    assert run_tap(tmp_path, config, run.final_state).records() == []

    empty = tmp_path / "empty"
    empty.mkdir()
    run = run_tap(tmp_path, {"files": [{"path": str(empty), "object": "e"}]}, check=False)
    assert run.returncode != 0 and "directory holds no data files" in run.stderr


def test_gz_with_contract_matches_plain(tmp_path: Path) -> None:
    """A gzipped file yields exactly the records of its plain twin."""
    contract = tmp_path / "person.odcs.yaml"
    contract.write_text(CONTRACT_YAML, encoding="utf-8")
    plain = write_csv(tmp_path / "p.csv", [person_row(i) for i in range(1, 500)])
    packed = write_gz(tmp_path / "g" / "p.csv.gz", plain.read_text())
    records = {}
    for name, path in (("plain", plain), ("packed", packed)):
        run = run_tap(tmp_path, {"files": [{"path": str(path), "object": "person", "asset": str(contract)}]})
        records[name] = run.records()
    assert len(records["plain"]) == 499 and records["plain"] == records["packed"]


def test_skip_rows_escapechar_and_column_names(tmp_path: Path) -> None:
    """Rows above the header are skipped; escaped quotes read; names given without or over a header."""
    text = 'report v2\ngenerated today\nid,note\n1,"say \\"hi\\", ok"\n2,plain\n'
    data = tmp_path / "d.csv"
    data.write_text(text, encoding="utf-8")
    base = {"files": [{"path": str(data), "object": "d"}], "skip_rows": 2, "escapechar": "\\"}
    assert run_tap(tmp_path, base).records() == [
        {"id": "1", "note": 'say "hi", ok'},
        {"id": "2", "note": "plain"},
    ]

    renamed = run_tap(tmp_path, {**base, "column_names": ["key", "text"]}).records()
    assert renamed[0] == {"key": "1", "text": 'say "hi", ok'}

    headless = tmp_path / "h.csv"
    headless.write_text("junk\n7,x\n8,y\n", encoding="utf-8")
    config: dict[str, Any] = {
        "files": [
            {"path": str(headless), "object": "h", "column_names": ["n", "letter"]},
            {"path": str(headless), "object": "top"},
        ],
        "header": False,
        "skip_rows": 1,
        "column_names": ["a", "b"],
    }
    run = run_tap(tmp_path, config)
    assert run.records("h") == [{"n": "7", "letter": "x"}, {"n": "8", "letter": "y"}]
    assert run.records("top") == [{"a": "7", "b": "x"}, {"a": "8", "b": "y"}]

    config["column_names"] = ["only_one"]
    run = run_tap(tmp_path, config, check=False)
    assert run.returncode != 0 and "column_names names 1" in run.stderr

    bad = {**base, "escapechar": ","}
    run = run_tap(tmp_path, bad, check=False)
    assert run.returncode != 0 and "escapechar must be one character" in run.stderr


def bad_rows_file(path: Path, rows: int) -> tuple[dict[int, str], list[int]]:
    """A multi-block CSV with malformed rows and a blank line: expected {line: id} and the bad lines.

    Lines are counted as pyarrow counts rows: the header is line 1, blank lines do not count.
    """
    lines, row = ["id,v"], 1
    expected: dict[int, str] = {}
    bad: list[int] = []
    for i in range(rows):
        if i == 4000:
            lines.append("")
        row += 1
        if i % 997 == 5:
            lines.append(f"{i},too,many")
            bad.append(row)
        else:
            lines.append(f"{i},{'x' * 40}")
            expected[row] = str(i)
    lines.append("last")
    bad.append(row + 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return expected, bad


def test_on_bad_rows_fail_and_skip(tmp_path: Path) -> None:
    """fail: error with file and line; skip: rows dropped, counted, logged; line numbers stay exact."""
    data = tmp_path / "bad.csv"
    expected, bad = bad_rows_file(data, 20_000)
    assert data.stat().st_size > 10 * 64 * 1024  # several read blocks with chunk_size 500
    config: dict[str, Any] = {"files": [{"path": str(data), "object": "b"}], "chunk_size": 500}
    run = run_tap(tmp_path, config, check=False)
    assert run.returncode != 0
    assert f"{data}: malformed CSV at line {bad[0]}: expected 2 columns, got 3" in run.stderr

    config.update(on_bad_rows="skip", add_metadata_columns=True)
    run = run_tap(tmp_path, config)
    records = run.records()
    assert len(records) == len(expected) == 20_000 - (len(bad) - 1)
    assert {r["_sdc_source_lineno"]: r["id"] for r in records} == expected
    [warning] = [w for w in warnings(run.stderr) if "malformed" in w]
    assert f"Skipped {len(bad)} malformed row(s) in {data}" in warning
    assert f"line {bad[0]}: expected 2 columns, got 3" in warning and warning.count("line ") == 5
    assert bookmarks(run.final_state, "b") == {str(data): mtime_iso(data)}


def test_infer_types_from_sample(tmp_path: Path) -> None:
    """Inference reads `infer_sample_rows` rows per file; a later misfit is emitted raw and reported."""
    columns = ["a", "big", "empty", "num", "flag", "day", "ts"]
    rows = [
        [str(i), "12345678901234567890123", "", f"{i}.5", "TRUE" if i % 2 else "false"]
        + [f"2025-01-{1 + i % 28:02d}", f"2025-01-01T00:{i:02d}:00+01:00"]
        for i in range(60)
    ]
    rows[55][0] = "x"
    data = write_csv(tmp_path / "s.csv", rows, columns)
    write_csv(tmp_path / "t.csv", [["1.25", "1", "7", "2", "true", "2025-02-01 10:00:00", "x"]], columns)
    config: dict[str, Any] = {
        "files": [{"path": str(data), "object": "s"}],
        "infer_types": True,
        "infer_sample_rows": 50,
    }
    run = run_tap(tmp_path, config)
    props = run.schema("s")["schema"]["properties"]
    assert {c: p["type"][0] for c, p in props.items()} == {
        "a": "integer",
        "big": "string",
        "empty": "string",
        "num": "number",
        "flag": "boolean",
        "day": "string",
        "ts": "string",
    }
    assert props["day"]["format"] == "date" and props["ts"]["format"] == "date-time"
    records = run.records()
    assert records[0] == {
        "a": 0,
        "big": "12345678901234567890123",
        "empty": None,
        "num": 0.5,
        "flag": False,
        "day": "2025-01-01",
        "ts": "2024-12-31T23:00:00.000000Z",
    }
    assert records[55]["a"] == "x"
    [warning] = [w for w in warnings(run.stderr) if "do not match" in w]
    assert f"1 cell(s) in {data}" in warning and "line 57 column 'a' (integer): 'x'" in warning

    config["infer_sample_rows"] = 100
    assert run_tap(tmp_path, config).schema("s")["schema"]["properties"]["a"]["type"][0] == "string"

    config["files"] = [{"path": str(tmp_path / "[st].csv"), "object": "s"}]
    config["infer_sample_rows"] = 50
    props = run_tap(tmp_path, config).schema("s")["schema"]["properties"]
    # integer + number widen to number, date + timestamp to timestamp, anything else to string;
    # an all-empty sample takes the other file's kind.
    assert {c: p["type"][0] for c, p in props.items() if c != "big"} == {
        "a": "number",
        "empty": "integer",
        "num": "number",
        "flag": "boolean",
        "day": "string",
        "ts": "string",
    }
    assert props["day"]["format"] == "date-time" and "format" not in props["ts"]


def test_metadata_columns(tmp_path: Path) -> None:
    """Off by default; on: `_sdc_*` in schema and records; invalid contract cells name file/line/column."""
    contract = tmp_path / "person.odcs.yaml"
    contract.write_text(CONTRACT_YAML, encoding="utf-8")
    data = write_csv(tmp_path / "p.csv", [person_row(1), ["2", "n", "oops", "", "", "2025-01-01T00:00:00Z"]])
    config: dict[str, Any] = {"files": [{"path": str(data), "object": "person", "asset": str(contract)}]}
    plain = run_tap(tmp_path, config)
    assert not any(k.startswith("_sdc_") for r in plain.records() for k in r)
    assert not any(k.startswith("_sdc_") for k in plain.schema("person")["schema"]["properties"])

    run = run_tap(tmp_path, {**config, "add_metadata_columns": True})
    props = run.schema("person")["schema"]["properties"]
    assert list(props)[-3:] == ["_sdc_source_file", "_sdc_source_lineno", "_sdc_modified_at"]
    assert props["_sdc_source_lineno"]["type"] == ["integer", "null"]
    assert props["_sdc_modified_at"]["format"] == "date-time"
    first, second = run.records()
    assert list(first) == list(props)
    assert first["_sdc_source_file"] == str(data) and first["_sdc_modified_at"] == mtime_iso(data)
    assert [first["_sdc_source_lineno"], second["_sdc_source_lineno"]] == [2, 3]
    assert second["score"] == "oops"
    assert any(
        f"in {data}" in w and "line 3 column 'score' (number): 'oops'" in w for w in warnings(run.stderr)
    )

    clash = write_csv(tmp_path / "c.csv", [["1"]], ["_sdc_source_file"])
    run = run_tap(
        tmp_path, {"files": [{"path": str(clash), "object": "c"}], "add_metadata_columns": True}, check=False
    )
    assert run.returncode != 0 and "clash with add_metadata_columns" in run.stderr


def test_batch_config_parquet(tmp_path: Path) -> None:
    """With `batch_config` the SDK writes Parquet batch files and emits BATCH messages instead of RECORDs."""
    data = write_csv(tmp_path / "p.csv", [person_row(i) for i in range(1, 301)], HEADER)
    config = {
        "files": [{"path": str(data), "object": "person"}],
        "infer_types": True,
        "add_metadata_columns": True,
        "batch_config": {
            "encoding": {"format": "parquet", "compression": "gzip"},
            "storage": {"root": (tmp_path / "batches").as_uri(), "prefix": "person-"},
        },
    }
    run = run_tap(tmp_path, config)
    assert run.records() == []
    [batch] = [m for m in run.messages if m["type"] == "BATCH"]
    assert batch["encoding"]["format"] == "parquet"
    files = [Path(url.removeprefix("file://")) for url in batch["manifest"]]
    table = pq.read_table(files[0]) if len(files) == 1 else None
    assert table is not None and table.num_rows == 300
    assert table.column("id").to_pylist()[:3] == [1, 2, 3]
    assert table.column("_sdc_source_lineno").to_pylist()[-1] == 301
    assert bookmarks(run.final_state, "person") == {str(data): mtime_iso(data)}


def test_setting_validation(tmp_path: Path) -> None:
    """Settings the schema cannot check fail with a message naming the setting."""
    data = write_csv(tmp_path / "a.csv", [["1"]], ["id"])
    base = {"files": [{"path": str(data), "object": "a"}]}
    for extra, message in (
        ({"skip_rows": -1}, "skip_rows must be 0 or more"),
        ({"infer_sample_rows": 0}, "infer_sample_rows must be at least 1"),
        ({"on_bad_rows": "ignore"}, "on_bad_rows"),
        ({"incremental": {"lookback_days": -2}}, "lookback_days must be 0 or more"),
    ):
        run = run_tap(tmp_path, {**base, **extra}, check=False)
        assert run.returncode != 0 and message in run.stderr, (extra, run.stderr[-500:])


def test_batch_files_hold_the_rows_record_messages_carry(tmp_path: Path) -> None:
    """BATCH (Parquet written from Arrow) and RECORD messages carry the same rows and metadata; a
    cell that does not fit its inferred type leaves that column as text in its file, reported."""
    rows = [person_row(i) for i in range(1, 121)]
    rows[100][0] = "x101"  # after the inference sample: stays text
    data = write_csv(tmp_path / "p.csv", rows, HEADER)
    base = {"files": [{"path": str(data), "object": "person"}], "infer_types": True}
    base |= {"infer_sample_rows": 50, "add_metadata_columns": True, "chunk_size": 50}
    (tmp_path / "r").mkdir()
    (tmp_path / "b").mkdir()
    records = run_tap(tmp_path / "r", base).records()
    batch_config = {
        "encoding": {"format": "parquet", "compression": "none"},
        "storage": {"root": (tmp_path / "batches").as_uri(), "prefix": "p-"},
        "batch_size": 50,
    }
    run = run_tap(tmp_path / "b", {**base, "batch_config": batch_config})
    manifests = [m["manifest"] for m in run.messages if m["type"] == "BATCH"]
    assert [len(m) for m in manifests] == [1, 1, 1]  # 50 + 50 + 20 rows
    tables = [pq.read_table(Path(m[0].removeprefix("file://"))) for m in manifests]
    assert [t.num_rows for t in tables] == [50, 50, 20]
    assert str(tables[0].schema.field("id").type) == "int64"
    assert str(tables[2].schema.field("id").type) == "string"  # the misfit's chunk
    assert str(tables[0].schema.field("seen_at").type) == "timestamp[us, tz=UTC]"  # typed, not text
    from_batches = [{k: _as_json(v) for k, v in row.items()} for table in tables for row in table.to_pylist()]
    assert [r["id"] for r in from_batches[:3]] == [1, 2, 3] and from_batches[100]["id"] == "x101"
    for got, want in zip(from_batches[:100], records[:100], strict=True):
        assert got == want
    assert {k: v for k, v in from_batches[110].items() if k != "id"} == {
        k: v for k, v in records[110].items() if k != "id"
    }
    assert any("line 102 column 'id' (integer): 'x101'" in w for w in warnings(run.stderr))


def _as_json(value: Any) -> Any:
    """A Parquet batch value as the RECORD message writes it (dates and timestamps as ISO text)."""
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value
