"""Grown files: tap-dativo-csv reads only what was appended since the last run (local and S3, CSV
and NDJSON), re-reads files whose already-read bytes changed, and lands that through the target."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tap_pipe import Pipeline
from test_tap_dativo_csv import person_row, run_tap, write_people

pytest_plugins = ["servers"]

COLUMNS = ("id", "name", "score")


def partition(state: dict[str, Any], stream: str, path: str) -> dict[str, Any]:
    """The bookmark (SDK partition) of one file."""
    found = [p for p in state["bookmarks"][stream]["partitions"] if p["context"]["path"] == path]
    assert len(found) == 1, state
    return found[0]


def append_people(path: Path, start: int, count: int) -> None:
    """Append contract-valid rows (no header) to a CSV file."""
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(",".join(person_row(i)) + "\n" for i in range(start, start + count))


def expected(ids: range) -> list[tuple]:
    """The (id, name, score) rows of `person_row` as the target lands them with inferred types."""
    out = []
    for i in ids:
        score = person_row(i)[2]
        out.append((i, f"name-{i}", float(score) if score else None))
    return out


def test_grown_csv_lands_only_new_rows_and_changed_prefix_is_reread(tmp_path: Path) -> None:
    """Run 1 lands a file; appended rows land alone; a touched file lands nothing; a file whose
    first bytes changed is read (and, append-only, landed) in full. Read back by pyiceberg and DuckDB."""
    data = write_people(tmp_path / "in" / "people.csv", 1, 30)
    tap = {
        "files": [{"path": str(data), "object": "people"}],
        "infer_types": True,
        "add_metadata_columns": True,
    }
    pipe = Pipeline(tmp_path / "lake", target={"load_method": "append-only"})
    first = pipe.run(tap)
    assert len(first.records) == 30
    mark = partition(pipe.state, "people", str(data))
    body = data.read_bytes()
    assert mark["bytes"] == len(body) and mark["rows"] == 30
    assert mark["prefix_hash"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert sorted(pipe.landed("people", COLUMNS).elements()) == expected(range(1, 31))

    append_people(data, 31, 12)
    with data.open("a", encoding="utf-8") as handle:
        handle.write("\n")  # a blank line: not a row
    grown = pipe.run(tap)
    assert [r["id"] for r in grown.records] == list(range(31, 43))
    # Line numbers continue after the rows read before (header = line 1).
    assert [r["_sdc_source_lineno"] for r in grown.records] == list(range(32, 44))
    assert f"Reading {data} from byte {len(body)} (after 30 rows read before" in grown.tap_stderr
    landed = pipe.landed("people", COLUMNS)
    assert sorted(landed.elements()) == expected(range(1, 43))  # every row exactly once
    mark = partition(pipe.state, "people", str(data))
    assert mark["bytes"] == data.stat().st_size and mark["rows"] == 42

    now = time.time() + 5
    os.utime(data, (now, now))
    assert pipe.run(tap).records == []  # touched only: same bytes, nothing new
    assert partition(pipe.state, "people", str(data))["last_modified"] != mark["last_modified"]

    text = data.read_text(encoding="utf-8").replace("name-1,", "renamed-1,", 1)
    data.write_text(text + ",".join(person_row(43)) + "\n", encoding="utf-8")
    changed = pipe.run(tap)
    assert [r["id"] for r in changed.records] == list(range(1, 44))
    assert "in full: its first" in changed.tap_stderr and "bytes changed" in changed.tap_stderr
    full = expected(range(1, 44))
    full[0] = (1, "renamed-1", full[0][2])
    assert sorted(pipe.landed("people", COLUMNS).elements()) == sorted(expected(range(1, 43)) + full)


def test_grown_ndjson_gz_and_unterminated_last_row(tmp_path: Path) -> None:
    """NDJSON resumes like CSV; a grown .gz is read in full; a last row without a newline is
    re-read in full (it may have been cut off while being written)."""
    events = tmp_path / "d" / "events.ndjson"
    events.parent.mkdir()
    events.write_text("".join(json.dumps({"id": i, "kind": "a"}) + "\n" for i in range(1, 4)))
    packed = tmp_path / "d" / "old.csv.gz"
    packed.write_bytes(gzip.compress(b"id,kind\n1,x\n2,x\n"))
    open_end = tmp_path / "d" / "open.csv"
    open_end.write_text("id,kind\n1,y\n2,y")  # no newline after the last row
    config = {"files": [{"path": str(tmp_path / "d" / "*"), "object": "ev"}]}
    first = run_tap(tmp_path, config)
    assert len(first.records()) == 3 + 2 + 2
    assert "bytes" not in partition(first.final_state, "ev", str(packed))

    with events.open("a") as handle:
        handle.write(json.dumps({"id": 4, "kind": "b", "new": 1}) + "\n")
    packed.write_bytes(gzip.compress(b"id,kind\n1,x\n2,x\n3,x\n"))
    with open_end.open("a") as handle:
        handle.write("2\n3,y\n")  # the cut-off row `2,y` was `2,y2`
    second = run_tap(tmp_path, config, first.final_state)
    by_file: dict[str, list[str]] = {}
    for record in second.records():
        by_file.setdefault(record["kind"], []).append(record["id"])
    assert by_file == {"b": ["4"], "x": ["1", "2", "3"], "y": ["1", "3"], "y2": ["2"]}
    assert "did not end with a newline" in second.stderr
    assert partition(second.final_state, "ev", str(events))["rows"] == 4


def test_lookback_and_full_table_read_grown_files_in_full(tmp_path: Path) -> None:
    """`lookback_days` re-processes recent files whole, and `full_table` every file: both ignore
    the byte offset (and keep it up to date)."""
    data = write_people(tmp_path / "a.csv", 1, 5)
    config: dict[str, Any] = {"files": [{"path": str(data), "object": "p"}]}
    state = run_tap(tmp_path, config).final_state
    append_people(data, 6, 2)
    for incremental in ({"lookback_days": 1}, {"strategy": "full_table"}):
        run = run_tap(tmp_path, {**config, "incremental": incremental}, state)
        assert [r["id"] for r in run.records()] == [str(i) for i in range(1, 8)]
        assert partition(run.final_state, "p", str(data))["bytes"] == data.stat().st_size
    assert [r["id"] for r in run_tap(tmp_path, config, state).records()] == ["6", "7"]


@pytest.fixture
def s3_bucket(seaweedfs: Any) -> str:
    """A fresh, empty bucket on the session's SeaweedFS."""
    seaweedfs.start()
    name = f"grow-{uuid.uuid4().hex[:12]}"
    seaweedfs.s3_client().create_bucket(Bucket=name)
    return name


def test_grown_s3_object_lands_only_new_rows(tmp_path: Path, seaweedfs: Any, s3_bucket: str) -> None:
    """An S3 object re-uploaded with rows appended: only those land (ranged reads of the rest);
    re-uploaded with its first rows changed: read in full."""
    header = "id,name,score,active,born,seen_at\n"
    rows = [",".join(person_row(i)) + "\n" for i in range(1, 61)]
    client = seaweedfs.s3_client()
    client.put_object(Bucket=s3_bucket, Key="in/p.csv", Body=(header + "".join(rows[:40])).encode())
    url = f"s3://{s3_bucket}/in/p.csv"
    tap = {
        "files": [{"path": f"s3://{s3_bucket}/in/*.csv", "object": "people"}],
        "infer_types": True,
        "connection": {"s3": seaweedfs.s3_connection()},
    }
    pipe = Pipeline(tmp_path / "lake", target={"load_method": "append-only"})
    assert len(pipe.run(tap).records) == 40
    client.put_object(Bucket=s3_bucket, Key="in/p.csv", Body=(header + "".join(rows)).encode())
    grown = pipe.run(tap)
    assert [r["id"] for r in grown.records] == list(range(41, 61))
    assert sorted(pipe.landed("people", COLUMNS).elements()) == expected(range(1, 61))
    assert partition(pipe.state, "people", url)["rows"] == 60

    client.put_object(Bucket=s3_bucket, Key="in/p.csv", Body=(header + "".join(rows[1:])).encode())
    assert [r["id"] for r in pipe.run(tap).records] == list(range(2, 61))
