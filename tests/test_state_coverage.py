"""A STATE whose records are committed is printed at once, and the newest snapshot carries the newest
STATE: a commit triggered by a full batch covers the STATE that follows it in the input, a STATE that
arrives with everything committed goes out without waiting for the next commit, and the run's final
STATE is in the newest snapshot's `dativo.singer-state` (`dativo state show` recovers exactly it)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest
from helpers import (
    BIN,
    crash_pipeline,
    lab_contracts,
    open_catalog,
    singer_lines,
    start_target,
    target_config,
)

from target_dativo_iceberg.iceberg.markers import committed_state
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

RECORDS, EVERY, BATCH = 200, 10, 100  # a STATE every 10 records; a batch fills at 100 and 200
STREAMS = ("items", "others")


def pipeline(root: Path, path: str, streams: int, state: dict | None, fault: str | None):
    settings = target_config(
        root, batch_size_rows=BATCH, assets=lab_contracts(root, STREAMS[:streams]), hot_path=path == "hot"
    )
    if path == "record":  # no contract: the Singer schema's record path
        settings.pop("assets")
    args = ["--records", str(RECORDS), "--every", str(EVERY), "--streams", str(streams)]
    return crash_pipeline(root, settings, args, state, fault)


def namespace(path: str) -> str:
    return "acme__lab" if path == "hot" else "acme"  # tenant acme: its namespaces are prefixed


def newest_state(root: Path, path: str, streams: int) -> dict | None:
    """`dativo state show`'s newest committed state over the streams' tables."""
    catalog = open_catalog(root)
    found = [committed_state(catalog.load_table(f"{namespace(path)}.{s}"), "acme") for s in STREAMS[:streams]]
    return max((c for c in found if c), key=lambda c: c.timestamp_ms).state


def printed(stdout: str) -> list[int]:
    return [json.loads(line)["bookmarks"]["items"]["pos"] for line in stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("streams", [1, 2])
@pytest.mark.parametrize("path", ["hot", "record"])
def test_the_state_that_closes_a_batch_goes_out_with_its_commit(
    tmp_path: Path, path: str, streams: int
) -> None:
    run = pipeline(tmp_path, path, streams, None, None)
    assert run.returncode == 0, run.stderr[-3000:]
    # The batch that fills at record 100 (one stream) is committed with STATE 100, not STATE 90.
    assert printed(run.stdout) == ([100, 200] if streams == 1 else [200])
    assert newest_state(tmp_path, path, streams) == json.loads(run.stdout.splitlines()[-1])
    shown = subprocess.run(
        [str(BIN / "dativo"), "state", "show", "--json", "--config", str(tmp_path / "target.json")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    newest = max(json.loads(shown.stdout), key=lambda s: s["timestamp_ms"])
    assert newest["singer_state"] == {"bookmarks": {"items": {"pos": RECORDS}}}


@pytest.mark.parametrize("path", ["hot", "record"])
def test_a_kill_between_two_commits_has_printed_the_state_of_the_first(tmp_path: Path, path: str) -> None:
    killed = pipeline(tmp_path, path, 1, None, "before_commit:2:kill")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert printed(killed.stdout) == [100]  # all 100 committed rows are behind Meltano's bookmark
    table = open_catalog(tmp_path).load_table(f"{namespace(path)}.items")
    assert sorted(r["id"] for r in pyiceberg_rows(table, "acme")) == list(range(1, 101))
    rerun = pipeline(tmp_path, path, 1, json.loads(killed.stdout.splitlines()[-1]), None)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    table = open_catalog(tmp_path).load_table(f"{namespace(path)}.items")
    assert sorted(r["id"] for r in pyiceberg_rows(table, "acme")) == list(range(1, RECORDS + 1))
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t") == [(RECORDS, RECORDS)]
    assert newest_state(tmp_path, path, 1) == {"bookmarks": {"items": {"pos": RECORDS}}}


def _read_line(stream, seconds: float = 60) -> str:
    """One line of the target's stdout, waiting at most `seconds` (the tap keeps its stdin open)."""
    deadline = time.monotonic() + seconds
    fd, buf = stream.fileno(), b""
    while not buf.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, "no STATE line while the tap is still open"
        chunk = os.read(fd, 1)
        assert chunk, "the target closed its stdout"
        buf += chunk
    return buf.decode()


def _items(ids: range) -> list[dict]:
    return [{"type": "RECORD", "stream": "items", "record": {"id": i, "v": f"value-{i}"}} for i in ids]


def _state(pos: int) -> dict:
    return {"type": "STATE", "value": {"bookmarks": {"items": {"pos": pos}}}}


@pytest.mark.parametrize("path", ["hot", "record"])
def test_a_state_after_committed_records_is_printed_while_the_tap_still_runs(
    tmp_path: Path, path: str
) -> None:
    """STATE 95, five more records filling the batch, a pause (the commit lands), then STATE 100 and
    STATE 101: both are printed at once — STATE 100 after a commit without rows that carries it
    (the commit's last five records came after STATE 95), STATE 101 directly — and the newest
    snapshot ends with STATE 101."""
    assets = lab_contracts(tmp_path, ["items"]) if path == "hot" else {}
    config = tmp_path / "target.json"
    config.write_text(json.dumps(target_config(tmp_path, batch_size_rows=BATCH, assets=assets)))
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}}
    proc = start_target(config, tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        head = [{"type": "SCHEMA", "stream": "items", "schema": schema, "key_properties": ["id"]}]
        proc.stdin.write(singer_lines([*head, *_items(range(1, 96)), _state(95), *_items(range(96, 101))]))
        proc.stdin.flush()
        assert json.loads(_read_line(proc.stdout)) == _state(95)["value"]  # the full batch committed
        proc.stdin.write(singer_lines([_state(100)]))
        proc.stdin.flush()
        assert json.loads(_read_line(proc.stdout)) == _state(100)["value"]
        proc.stdin.write(singer_lines([_state(101)]))
        proc.stdin.flush()
        assert json.loads(_read_line(proc.stdout)) == _state(101)["value"]
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)
    assert proc.returncode == 0, proc.stderr.read()[-3000:] if proc.stderr else ""
    table = open_catalog(tmp_path).load_table(f"{namespace(path)}.items")
    assert sorted(r["id"] for r in pyiceberg_rows(table, "acme")) == list(range(1, 101))
    assert committed_state(table, "acme").state == _state(101)["value"]
