"""Incremental behaviour of tap-dativo-csv: per-file mtime bookmarks, lookback, cursor, chunking."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from test_tap_dativo_csv import (
    CONTRACT_YAML,
    bookmarks,
    mtime_iso,
    run_tap,
    set_mtime,
    write_csv,
    write_people,
)

from tap_dativo_csv.chunks import FileRead, iter_record_chunks
from tap_dativo_csv.reader import CSVOptions, ReadReport, inspect_file


def test_incremental_file_modified_time(tmp_path: Path) -> None:
    """Run 1 reads all; run 2 with its state reads nothing; a touched file alone is re-read."""
    a = write_people(tmp_path / "data" / "a.csv", 1, 30)
    b = write_people(tmp_path / "data" / "b.csv", 31, 20)
    past = time.time() - 3600
    set_mtime(a, past)
    set_mtime(b, past)
    config = {"files": [{"path": str(tmp_path / "data" / "*.csv"), "object": "person"}]}

    run1 = run_tap(tmp_path, config)
    assert len(run1.records()) == 50
    state1 = run1.final_state
    parts = state1["bookmarks"]["person"]["partitions"]
    assert [p["context"] for p in parts] == [{"path": str(a)}, {"path": str(b)}]
    assert all(p["path"] == p["context"]["path"] for p in parts)
    assert bookmarks(state1, "person") == {str(a): mtime_iso(a), str(b): mtime_iso(b)}
    assert "progress_markers" not in json.dumps(state1)

    run2 = run_tap(tmp_path, config, state1)
    assert run2.records() == []
    assert run2.final_state == state1

    set_mtime(b, past + 60)  # touched, same bytes: nothing new to emit, the new mtime is bookmarked
    touched = run_tap(tmp_path, config, run2.final_state)
    assert touched.records() == []
    assert bookmarks(touched.final_state, "person") == {str(a): mtime_iso(a), str(b): mtime_iso(b)}

    write_people(b, 41, 10)  # rewritten: its first bytes differ, so it is read in full
    set_mtime(b, past + 120)
    run3 = run_tap(tmp_path, config, touched.final_state)
    assert [r["id"] for r in run3.records()] == [str(i) for i in range(41, 51)]
    assert bookmarks(run3.final_state, "person") == {str(a): mtime_iso(a), str(b): mtime_iso(b)}

    run4 = run_tap(tmp_path, config, run3.final_state)
    assert run4.records() == []

    full = run_tap(tmp_path, {**config, "incremental": {"strategy": "full_table"}}, run3.final_state)
    assert len(full.records()) == 40


def test_new_file_matching_glob_is_read(tmp_path: Path) -> None:
    """A file that appears later is read on the next run; known unchanged files are not."""
    write_people(tmp_path / "d" / "a.csv", 1, 5)
    config = {"files": [{"path": str(tmp_path / "d" / "*.csv"), "object": "person"}]}
    state = run_tap(tmp_path, config).final_state
    write_people(tmp_path / "d" / "c.csv", 100, 3)
    run = run_tap(tmp_path, config, state)
    assert [r["id"] for r in run.records()] == ["100", "101", "102"]
    assert len(bookmarks(run.final_state, "person")) == 2


def test_lookback_days_rereads_recent_files(tmp_path: Path) -> None:
    """lookback_days re-reads files modified within the window even when unchanged."""
    recent = write_people(tmp_path / "d" / "recent.csv", 1, 4)
    old = write_people(tmp_path / "d" / "old.csv", 10, 6)
    now = time.time()
    set_mtime(recent, now - 86400)
    set_mtime(old, now - 10 * 86400)
    config: dict[str, Any] = {"files": [{"path": str(tmp_path / "d" / "*.csv"), "object": "person"}]}
    state = run_tap(tmp_path, config).final_state
    assert run_tap(tmp_path, config, state).records() == []

    config["incremental"] = {"lookback_days": 3}
    run = run_tap(tmp_path, config, state)
    assert [r["id"] for r in run.records()] == ["1", "2", "3", "4"]
    config["incremental"] = {"lookback_days": 30}
    assert len(run_tap(tmp_path, config, state).records()) == 10


def test_chunked_reading_large_file(tmp_path: Path) -> None:
    """A small chunk_size over a larger file streams in many bounded chunks and loses nothing."""
    rows = 60_000
    data = write_csv(
        tmp_path / "big.csv", [[str(i), f"v{i}", str(i % 7)] for i in range(rows)], ["id", "v", "m"]
    )
    options = CSVOptions(chunk_size=500)

    def open_data() -> pa.NativeFile:
        return pa.input_stream(str(data))

    layout = inspect_file(str(data), open_data, options)
    assert layout.block_size < data.stat().st_size
    report = ReadReport()
    count = sum(
        len(batch)
        for batch, _ in iter_record_chunks(
            FileRead(str(data), open_data, options, layout, {"id": "integer"}, report=report)
        )
    )
    assert count == rows == report.rows

    config = {"files": [{"path": str(data), "object": "big"}], "chunk_size": 500, "infer_types": True}
    run = run_tap(tmp_path, config)
    ids = [r["id"] for r in run.records()]
    assert ids == list(range(rows))
    # The SDK checkpoints every 10,000 records; a STATE emitted mid-file must not bookmark it.
    assert len(run.states) > 1
    assert all(
        not bookmarks(s, "big").get(str(data)) for s in run.states[:-1] if "big" in s.get("bookmarks", {})
    )
    assert bookmarks(run.final_state, "big") == {str(data): mtime_iso(data)}


@pytest.mark.parametrize("strategy", ["file_modified_time", "full_table"])
def test_state_round_trips_through_state_file(tmp_path: Path, strategy: str) -> None:
    """The STATE printed by one run, fed back with --state, is accepted and re-emitted intact."""
    data = write_people(tmp_path / "p.csv", 1, 3)
    config = {"files": [{"path": str(data), "object": "person"}], "incremental": {"strategy": strategy}}
    first = run_tap(tmp_path, config).final_state
    second = run_tap(tmp_path, config, first)
    assert second.final_state == first
    assert len(second.records()) == (3 if strategy == "full_table" else 0)


def test_replication_key_cursor(tmp_path: Path) -> None:
    """replication_key: changed files emit only rows at or after the saved cursor (inclusive)."""
    contract = tmp_path / "person.odcs.yaml"
    contract.write_text(CONTRACT_YAML, encoding="utf-8")
    header = ["id", "name", "score", "active", "born", "seen_at"]
    rows = [[str(i), f"n{i}", "", "", "", f"2025-01-0{i}T00:00:00Z"] for i in range(1, 6)]
    data = write_csv(tmp_path / "p.csv", rows, header)
    set_mtime(data, time.time() - 600)
    config = {
        "files": [
            {"path": str(data), "object": "person", "asset": str(contract), "replication_key": "seen_at"}
        ],
        "incremental": {"strategy": "replication_key"},
    }
    run1 = run_tap(tmp_path, config)
    assert len(run1.records()) == 5
    assert run1.schema("person")["bookmark_properties"] == ["seen_at"]
    stream_state = run1.final_state["bookmarks"]["person"]
    assert stream_state["replication_key"] == "seen_at"
    assert stream_state["replication_key_value"] == "2025-01-05T00:00:00.000000Z"
    assert bookmarks(run1.final_state, "person") == {str(data): mtime_iso(data)}
    assert run_tap(tmp_path, config, run1.final_state).records() == []

    rows += [
        ["6", "late", "", "", "", "2024-12-31T00:00:00Z"],
        ["7", "new", "", "", "", "2025-01-09T00:00:00+01:00"],
    ]
    write_csv(data, rows, header)
    run2 = run_tap(tmp_path, config, run1.final_state)
    # The file grew: only the appended rows are read, and of those only the ones at or after the cursor.
    assert [r["id"] for r in run2.records()] == [7]
    assert run2.final_state["bookmarks"]["person"]["replication_key_value"] == "2025-01-08T23:00:00.000000Z"

    rows[0][1] = "renamed"  # a changed prefix: read in full, the cursor (inclusive) still filters
    write_csv(data, rows, header)
    assert [r["id"] for r in run_tap(tmp_path, config, run2.final_state).records()] == [7]


def test_replication_key_inferred_integer_and_timestamp(tmp_path: Path) -> None:
    """Without a contract, infer_types types the cursor: integers compare as numbers (9 < 10)."""
    data = write_csv(
        tmp_path / "e.csv", [["8", "2025-01-01 00:00:00"], ["9", "2025-01-02 00:00:00"]], ["seq", "ts"]
    )
    set_mtime(data, time.time() - 600)
    config: dict[str, Any] = {
        "files": [{"path": str(data), "object": "e", "replication_key": "seq"}],
        "incremental": {"strategy": "replication_key"},
        "infer_types": True,
    }
    run1 = run_tap(tmp_path, config)
    assert run1.final_state["bookmarks"]["e"]["replication_key_value"] == 9
    assert "compared as text" not in run1.stderr
    rows = [["8", "2025-01-01 00:00:00"], ["9", "2025-01-02 00:00:00"], ["10", "2025-01-03 00:00:00"]]
    write_csv(data, rows, ["seq", "ts"])
    assert [r["seq"] for r in run_tap(tmp_path, config, run1.final_state).records()] == [10]  # appended
    rows[0][1] = "2024-12-31 00:00:00"  # rewritten: read in full, rows at or after the cursor emitted
    write_csv(data, rows, ["seq", "ts"])
    assert [r["seq"] for r in run_tap(tmp_path, config, run1.final_state).records()] == [9, 10]

    config["files"][0]["replication_key"] = "ts"
    first = run_tap(tmp_path, config)
    assert first.schema("e")["schema"]["properties"]["ts"]["format"] == "date-time"
    assert first.final_state["bookmarks"]["e"]["replication_key_value"] == "2025-01-03T00:00:00.000000Z"
