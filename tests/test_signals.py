"""SIGTERM/SIGINT at many points of a run: the target exits 128 + the signal, prints no STATE ahead of
the committed data, and a rerun from the last STATE it printed (what Meltano persists) lands every
source row exactly once — hot and record path, one and two streams, a second signal included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CRASH_TAP, crash_pipeline, lab_contracts, open_catalog, start_target, target_config

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

RECORDS = 70  # a STATE every 7 records; batch_size_rows 10 → several commits per stream
STREAMS = ("items", "others")

# Main thread: `block` (input read, nothing handled yet), `drain` (a full batch starts to drain);
# commit thread: `before_commit`, `after_commit` (the signal lands while the main thread reads on);
# `after_state` (a STATE was just printed).
POINTS = [
    "block:1",
    "drain:1",
    "drain:3",
    "before_commit:1",
    "before_commit:4",
    "after_commit:2",
    "after_commit:5",
    "after_state:1",
    "after_state:4",
]
CASES = (
    [(path, 1, f"{p}:term") for path in ("hot", "record") for p in POINTS]
    + [
        (path, 2, f"{p}:term")
        for path in ("hot", "record")
        for p in ("drain:2", "before_commit:3", "after_commit:3", "after_state:2")
    ]
    + [
        ("hot", 1, "drain:2:int"),
        ("record", 2, "after_state:2:int"),
        ("hot", 1, "before_commit:3:term2"),
        ("record", 2, "after_commit:2:term2"),
        ("hot", 2, "drain:3:term2"),
        # SIGKILL with two streams: a STATE printed by one stream's commit falls inside the other
        # stream's last commit; the rerun recognises that commit's re-sent records.
        ("hot", 2, "after_state:1:kill"),
        ("record", 2, "after_state:2:kill"),
    ]
)


def pipeline(
    root: Path, path: str, streams: int, state: dict | None, fault: str | None
) -> subprocess.CompletedProcess:
    """tap | target; the target's stdout holds its STATE lines."""
    settings = target_config(
        root, batch_size_rows=10, assets=lab_contracts(root, STREAMS[:streams]), hot_path=path == "hot"
    )
    return crash_pipeline(
        root, settings, ["--records", str(RECORDS), "--streams", str(streams)], state, fault
    )


def committed_ids(root: Path, streams: int) -> dict[str, list[int]]:
    """Ids on the tenant branch per stream (empty when the table was never created)."""
    catalog = open_catalog(root)
    out = {}
    for name in STREAMS[:streams]:
        if not catalog.table_exists(f"acme__lab.{name}"):
            out[name] = []
            continue
        out[name] = sorted(r["id"] for r in pyiceberg_rows(catalog.load_table(f"acme__lab.{name}"), "acme"))
    return out


def events(stderr: str, name: str) -> list[dict]:
    return [json.loads(x) for x in stderr.splitlines() if x.startswith("{") and f'"event": "{name}"' in x]


@pytest.mark.parametrize(("path", "streams", "fault"), CASES)
def test_signal_then_resume_loses_and_doubles_nothing(
    tmp_path: Path, path: str, streams: int, fault: str
) -> None:
    action = fault.rsplit(":", 1)[1]
    signum = {"int": signal.SIGINT, "kill": signal.SIGKILL}.get(action, signal.SIGTERM)
    first = pipeline(tmp_path, path, streams, None, fault)
    expected_code = -9 if action == "kill" else 128 + signum
    assert first.returncode == expected_code, f"{fault}: exit {first.returncode}\n{first.stderr[-3000:]}"
    if action == "kill":
        pass
    elif action == "term2":  # the second signal: at once, no job_finished, no STATE after it
        assert events(first.stderr, "job_aborted"), first.stderr[-2000:]
        assert not events(first.stderr, "job_finished")
    else:
        (finished,) = events(first.stderr, "job_finished")
        assert finished["status"] == "interrupted"
        assert finished["exit_code"] == 128 + signum
        assert finished["signal"] == signum.name
        assert "Traceback" not in first.stderr, "an interrupted run ends with a report, not a traceback"

    states = [json.loads(line) for line in first.stdout.splitlines() if line.strip()]
    printed = states[-1]["bookmarks"]["items"]["pos"] if states else 0
    assert printed < RECORDS, "the signal came before the end of input: the run cannot be complete"
    # Never a STATE ahead of the data: every record up to the printed position is committed.
    landed = committed_ids(tmp_path, streams)
    assert set(range(1, printed + 1)) <= {i for ids in landed.values() for i in ids}, (
        f"STATE pos {printed} printed, committed {landed}"
    )

    again = pipeline(tmp_path, path, streams, states[-1] if states else None, None)
    assert again.returncode == 0, again.stderr[-3000:]
    landed = committed_ids(tmp_path, streams)
    expected = {
        name: [i for i in range(1, RECORDS + 1) if STREAMS[(i + 1) % streams] == name]
        for name in STREAMS[:streams]
    }
    assert landed == expected, f"after resume: {landed}"
    for name in STREAMS[:streams]:
        table = open_catalog(tmp_path).load_table(f"acme__lab.{name}")
        n = len(expected[name])
        assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t") == [(n, n)]


def test_sigterm_while_waiting_for_input_stops_at_once(tmp_path: Path) -> None:
    """A tap that went silent (the usual moment for an orchestrator's timeout): the target stops
    without waiting for input, commits nothing more and prints no STATE for the buffered rows."""
    config = tmp_path / "target.json"
    config.write_text(
        json.dumps(target_config(tmp_path, batch_size_rows=10, assets=lab_contracts(tmp_path, STREAMS[:1])))
    )
    tap = subprocess.run(
        [sys.executable, str(CRASH_TAP), "--records", "15"], capture_output=True, text=True, check=True
    )
    head = "".join(line + "\n" for line in tap.stdout.splitlines()[:-1])  # without the final STATE
    proc = start_target(config, tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(head)
    proc.stdin.flush()
    # The first commit (ids 1-10) covers the STATE after id 7; it is printed while stdin stays open.
    assert json.loads(proc.stdout.readline()) == {"bookmarks": {"items": {"pos": 7}}}
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)  # stdin still open: only the signal ends the run
    assert proc.returncode == 143, err[-2000:]
    assert out.strip() == "", "no STATE for the buffered ids 11-15"
    (finished,) = events(err, "job_finished")
    assert finished["status"] == "interrupted"
    assert finished["records"] == 10
    assert finished["records_abandoned"] == 5
    assert committed_ids(tmp_path, 1)["items"] == list(range(1, 11))
