"""The run ledger, schema history, metrics and log levels, through the target CLI and `dativo runs`.

Three runs into one catalog — a success, a partial (warn mode, one record rejected) and a failure
(strict mode, a contract violation: nothing committed) — leave three rows in
`_dativo.ingestion_runs`, read back with pyiceberg and with DuckDB; the data files each row lists
are the files on disk, with their MD5s. A run that adds a column leaves a schema history row and a
`schema_changed` event; a breaking change is recorded as `blocked` before the run exits 2.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import json
import logging
import subprocess
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from helpers import (
    BIN,
    PERSON,
    PERSON_PROPS,
    Run,
    open_catalog,
    person,
    record,
    run_target,
    schema_msg,
    secret_probe_messages,
    singer_lines,
    start_target,
    state,
    target_config,
)
from meltano.core.logging.parsers import SingerSDKLogParser
from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

RUNS = "_dativo.ingestion_runs"
HISTORY = "_dativo.schema_history"
USERS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}


def metrics(run: Run) -> list[dict[str, Any]]:
    """The METRIC points the run logged (SDK format: `METRIC: {json}` at the end of a log line)."""
    return [
        json.loads(line.split("METRIC: ", 1)[1]) for line in run.stderr.splitlines() if "METRIC: " in line
    ]


def ledger(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """Ledger rows by run id, read by pyiceberg; DuckDB reads the same runs and statuses."""
    table = catalog.load_table(RUNS)
    rows = {row["run_id"]: row for row in pyiceberg_rows(table, "main")}
    by_duckdb = duckdb_rows(table, "main", "SELECT run_id, status, exit_code, records_committed FROM t")
    assert {r[0]: (r[1], r[2], r[3]) for r in by_duckdb} == {
        k: (v["status"], v["exit_code"], v["records_committed"]) for k, v in rows.items()
    }
    return rows


def run_id(run: Run) -> str:
    return run.events("job_started")[0]["run_id"]


def test_success_partial_and_failed_runs_leave_three_ledger_rows(tmp_path: Path) -> None:
    env = {"MELTANO_EXTRACTOR_NAME": "tap-people"}
    ok = run_target(
        tmp_path,
        [
            schema_msg("users", USERS, ["id"]),
            {**record("users", id=1, name="one"), "time_extracted": "2026-01-01T00:00:00Z"},
            record("users", id=2, name="two"),
            state({"bookmarks": {"users": {"n": 2}}}),
        ],
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    partial = run_target(
        tmp_path,
        secret_probe_messages(),
        env=env,
        assets={"person": str(PERSON)},
        schema_validation_mode="warn",
    )
    assert partial.returncode == 1, partial.stderr
    failed = run_target(
        tmp_path,
        [schema_msg("person", PERSON_PROPS, ["id"]), person(1), person(2, status="deleted")],
        assets={"person": str(PERSON)},
    )
    assert failed.returncode == 2

    catalog = open_catalog(tmp_path)
    rows = ledger(catalog)
    assert len(rows) == 3
    first, second, third = rows[run_id(ok)], rows[run_id(partial)], rows[run_id(failed)]
    assert (first["status"], first["exit_code"]) == ("success", 0)
    assert (second["status"], second["exit_code"]) == ("partial", 1)
    assert (third["status"], third["exit_code"]) == ("failed", 2)

    assert first["source"] == "tap-people" and third["source"] is None
    assert (first["tenant_id"], first["branch"], first["streams"], first["tables"]) == (
        "acme",
        "acme",
        ["users"],
        ["acme.users"],
    )
    assert (first["records_received"], first["records_committed"], first["records_rejected"]) == (2, 2, 0)
    assert json.loads(first["state"]) == ok.states[-1] == {"bookmarks": {"users": {"n": 2}}}
    assert first["snapshot_ids"] == [e["snapshot_id"] for e in ok.events("commit_success")]
    assert first["error"] is None and first["finished_at"] >= first["started_at"]

    # Every data file listed is on disk with the size and MD5 recorded.
    assert first["data_files"] == len(first["files"]) >= 1
    assert first["bytes_added"] == sum(f["bytes"] for f in first["files"])
    for listed in first["files"] + second["files"]:
        data = Path(urlparse(listed["path"]).path).read_bytes()
        assert (listed["bytes"], listed["md5"]) == (len(data), hashlib.md5(data).hexdigest())
    assert {f["table"] for f in second["files"]} == {"acme.users", "acme__crm.person"}

    assert (second["records_received"], second["records_committed"], second["records_rejected"]) == (4, 3, 1)
    assert sorted(second["tables"]) == ["acme.users", "acme__crm.person"]

    # The failure: nothing committed, the error named, no STATE.
    assert (third["records_committed"], third["data_files"], third["snapshot_ids"], third["state"]) == (
        0,
        0,
        [],
        None,
    )
    assert "violates contract" in third["error"] and third["tables"] == ["acme__crm.person"]

    # `dativo runs`: newest first; --failed only what did not succeed.
    config = ["--config", str(tmp_path / "target.json")]
    listed = _dativo("runs", *config)
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if not line.startswith(" ")]
    assert [line.split()[2] for line in lines] == ["failed", "partial", "success"]
    assert "error: " in listed.stdout and "from tap-people" in listed.stdout
    only_failed = _dativo("runs", "--failed", "--limit", "1", *config)
    assert [line.split()[2] for line in only_failed.stdout.splitlines() if line[:1].isdigit()] == ["failed"]
    as_json = json.loads(_dativo("runs", "--json", *config).stdout)
    assert {r["run_id"] for r in as_json} == set(rows)


def _dativo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dativo"), *args], capture_output=True, text=True, timeout=120)


def test_added_column_and_blocked_change_in_schema_history(tmp_path: Path) -> None:
    first = run_target(tmp_path, [schema_msg("users", USERS, ["id"]), record("users", id=1, name="a")])
    assert first.returncode == 0, first.stderr
    wider = {**USERS, "email": {"type": ["string", "null"]}}
    added = run_target(
        tmp_path, [schema_msg("users", wider, ["id"]), record("users", id=2, name="b", email="e")]
    )
    assert added.returncode == 0, added.stderr
    [event] = added.events("schema_changed")
    assert (event["change"], event["table"], event["stream"]) == ("added", "acme.users", "users")
    assert "email string" in event["columns"]
    breaking = {**wider, "name": {"type": "object", "properties": {"x": {"type": "integer"}}}}
    blocked = run_target(
        tmp_path, [schema_msg("users", breaking, ["id"]), record("users", id=3, name={"x": 1}, email="e")]
    )
    assert blocked.returncode == 2
    assert blocked.events("schema_changed")[0]["change"] == "blocked"

    catalog = open_catalog(tmp_path)
    table = catalog.load_table(HISTORY)
    history = sorted(pyiceberg_rows(table, "main"), key=lambda r: r["changed_at"])
    by_duckdb = duckdb_rows(table, "main", "SELECT change, schema_id FROM t ORDER BY changed_at")
    assert [(r["change"], r["schema_id"]) for r in history] == [tuple(r) for r in by_duckdb]
    assert [(r["table_name"], r["change"]) for r in history] == [
        ("acme.users", "created"),
        ("acme.users", "added"),
        ("acme.users", "blocked"),
    ]
    assert history[1]["schema_id"] == catalog.load_table("acme.users").schema().schema_id
    assert history[1]["columns"] == [
        "id long required",
        "name string",
        "email string",
    ]  # key_properties: a required identifier
    assert history[1]["run_id"] == run_id(added) and history[2]["run_id"] == run_id(blocked)
    assert "name" in history[2]["detail"] and "struct" in history[2]["columns"][1]
    assert ledger(catalog)[run_id(blocked)]["status"] == "failed"


def test_metric_lines_carry_lag_rate_latency_and_rejection_rate(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    hour_ago = (now - datetime.timedelta(hours=1)).isoformat()
    ticks = {"id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}
    run = run_target(
        tmp_path,
        [
            schema_msg("users", USERS, ["id"]),
            {**record("users", id=1, name="one"), "time_extracted": "2020-01-01T00:00:00Z"},
            # No time_extracted: the replication key (a timestamp) says how recent the data is.
            {**schema_msg("ticks", ticks, ["id"]), "bookmark_properties": ["at"]},
            record("ticks", id=1, at="2021-01-01T00:00:00Z"),
            record("ticks", id=2, at=hour_ago),
            state({"n": 1}),
        ],
    )
    assert run.returncode == 0, run.stderr
    points = {p["metric"]: p for p in metrics(run) if p["tags"].get("table") == "acme.users"}
    assert set(points) == {"lag_seconds", "records_per_second", "commit_latency", "rejection_rate"}
    assert points["lag_seconds"]["value"] > 5 * 365 * 86400  # extracted in 2020
    assert points["lag_seconds"]["tags"]["stream"] == "users"
    [tick_lag] = [p for p in metrics(run) if p["metric"] == "lag_seconds" and p["tags"]["stream"] == "ticks"]
    assert 3600 <= tick_lag["value"] < 3600 + 600
    assert points["records_per_second"]["value"] > 0 and points["commit_latency"]["type"] == "timer"
    assert points["rejection_rate"]["value"] == 0.0


def test_a_ledger_write_failure_does_not_change_the_outcome(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    catalog.create_namespace("_dativo")
    catalog.create_table(RUNS, Schema(NestedField(1, "run_id", LongType(), required=True)))  # unwritable
    run = run_target(tmp_path, [schema_msg("users", USERS, ["id"]), record("users", id=1), state({"n": 1})])
    assert run.returncode == 0
    assert run.states == [{"n": 1}]
    [failure] = run.events("run_ledger_failed")
    assert failure["status"] == "success"
    assert run.events("job_finished")[-1]["status"] == "success"


def test_log_level_and_structured_logging(tmp_path: Path) -> None:
    messages = [schema_msg("users", USERS, ["id"]), record("users", id=1), state({"n": 1})]
    quiet = run_target(tmp_path / "a", messages, env={"LOGLEVEL": "WARNING"})
    assert quiet.returncode == 0
    assert quiet.events() == [] and "METRIC" not in quiet.stderr
    # A normal second run (new records after the committed STATE) logs no replay noise at info;
    # the event is still there at debug.
    more = [schema_msg("users", USERS, ["id"]), record("users", id=2), state({"n": 2})]
    again = run_target(tmp_path / "a", more)
    assert again.returncode == 0 and again.events("replay_mismatch") == []
    debug = run_target(
        tmp_path / "a", [*more[:1], record("users", id=3), state({"n": 3})], env={"LOGLEVEL": "DEBUG"}
    )
    assert debug.returncode == 0 and len(debug.events("replay_mismatch")) == 1

    # Meltano's structured logging: the SDK's JSON formatter, which Meltano's parser reads.
    config = tmp_path / "logging.json"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"s": {"()": "singer_sdk.logging.StructuredFormatter"}},
                "handlers": {
                    "c": {"class": "logging.StreamHandler", "formatter": "s", "stream": "ext://sys.stderr"}
                },
                "root": {"handlers": ["c"], "level": "INFO"},
            }
        )
    )
    structured = run_target(tmp_path / "b", messages, env={"SINGER_SDK_LOG_CONFIG": str(config)})
    assert structured.returncode == 0, structured.stderr
    parser = SingerSDKLogParser()
    parsed = [parser.parse(line) for line in structured.stderr.splitlines() if line.strip()]
    assert all(p is not None for p in parsed), structured.stderr  # one JSON object per line
    events = {
        p.message: p for p in parsed if p is not None and p.logger_name == "target_dativo_iceberg.events"
    }
    assert all("event" not in p.extra for p in events.values())  # Meltano's structlog takes it as message
    finished = events["job_finished"]
    assert finished.extra["status"] == "success" and finished.extra["tenant_id"] == "acme"
    assert finished.level == logging.INFO and events["commit_success"].stream_name == "users"
    lag = [p for p in parsed if p is not None and p.message == "METRIC" and "metric_info" in p.extra]
    assert "lag_seconds" not in {p.extra["metric_info"]["metric"] for p in lag}  # no time_extracted here
    assert {"records_per_second", "commit_latency"} <= {p.extra["metric_info"]["metric"] for p in lag}


def test_openlineage_run_events_to_a_file(tmp_path: Path) -> None:
    events_file = tmp_path / "lineage.jsonl"
    lineage = {"transport": "file", "file": str(events_file)}
    env = {"MELTANO_EXTRACTOR_NAME": "tap-people"}
    ok = run_target(
        tmp_path,
        [schema_msg("users", USERS, ["id"]), record("users", id=1), record("users", id=2), state({"n": 1})],
        env=env,
        openlineage=lineage,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.events("lineage_sent")[0]["event_type"] == "COMPLETE"
    failed = run_target(
        tmp_path,
        [schema_msg("person", PERSON_PROPS, ["id"]), person(1, status="deleted")],
        env=env,
        assets={"person": str(PERSON)},
        openlineage=lineage,
    )
    assert failed.returncode == 2
    sent = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [(e["eventType"], e["run"]["runId"]) for e in sent] == [
        ("COMPLETE", run_id(ok)),
        ("FAIL", run_id(failed)),
    ]
    first = sent[0]
    assert first["job"] == {"namespace": "acme", "name": "tap-people-to-target-dativo-iceberg", "facets": {}}
    assert first["inputs"][0]["namespace"] == "singer://tap-people" and first["inputs"][0]["name"] == "users"
    [output] = first["outputs"]
    assert (output["namespace"], output["name"]) == ("iceberg://dativo", "acme.users")
    stats = output["outputFacets"]["outputStatistics"]
    row = ledger(open_catalog(tmp_path))[run_id(ok)]
    assert (stats["rowCount"], stats["size"], stats["fileCount"]) == (
        2,
        row["bytes_added"],
        row["data_files"],
    )
    assert "violates contract" in sent[1]["run"]["facets"]["errorMessage"]["message"]


def test_openlineage_run_event_over_http_with_an_api_key(tmp_path: Path) -> None:
    received: list[tuple[str, str, dict[str, Any]]] = []

    class Lineage(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("Authorization", ""), json.loads(body)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Lineage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    key = "ol-api-key-7c1d9e"
    try:
        run = run_target(
            tmp_path,
            [schema_msg("users", USERS, ["id"]), record("users", id=1), state({"n": 1})],
            openlineage={
                "transport": "http",
                "url": f"http://127.0.0.1:{server.server_port}",
                "api_key": key,
            },
        )
    finally:
        server.shutdown()
        thread.join()
    assert run.returncode == 0, run.stderr
    [(path, auth, event)] = received
    assert (path, auth) == ("/api/v1/lineage", f"Bearer {key}")
    assert event["eventType"] == "COMPLETE" and event["run"]["runId"] == run_id(run)
    assert event["outputs"][0]["name"] == "acme.users"
    assert key not in run.stderr


def test_openlineage_failure_does_not_change_the_outcome(tmp_path: Path) -> None:
    run = run_target(
        tmp_path,
        [schema_msg("users", USERS, ["id"]), record("users", id=1), state({"n": 1})],
        openlineage={"transport": "file"},  # no file named
    )
    assert run.returncode == 0 and run.states == [{"n": 1}]
    assert "openlineage.transport file needs openlineage.file" in run.events("lineage_failed")[0]["error"]
    assert ledger(open_catalog(tmp_path))[run_id(run)]["status"] == "success"


def test_concurrent_runs_each_leave_their_row(tmp_path: Path) -> None:
    """Four runs finishing at once append to the ledger together: conflicts are redone, no row lost."""
    config = tmp_path / "target.json"
    config.write_text(json.dumps(target_config(tmp_path)))
    procs = [start_target(config, tmp_path) for _ in range(4)]
    for i, proc in enumerate(procs):
        stream = f"s{i}"  # one table each: the data commits do not contend, the ledger appends do
        assert proc.stdin is not None
        proc.stdin.write(
            singer_lines([schema_msg(stream, USERS, ["id"]), record(stream, id=i), state({"i": i})])
        )
        proc.stdin.close()
    outcomes = [(proc.wait(timeout=300), proc.stderr.read() if proc.stderr else "") for proc in procs]
    assert [code for code, _ in outcomes] == [0, 0, 0, 0], outcomes
    assert all("run_ledger_failed" not in err for _, err in outcomes)
    rows = ledger(open_catalog(tmp_path))
    assert sorted(tuple(r["tables"]) for r in rows.values()) == [(f"acme.s{i}",) for i in range(4)]


def test_progress_events(tmp_path: Path) -> None:
    run = run_target(
        tmp_path,
        [schema_msg("users", USERS, ["id"]), *[record("users", id=i) for i in range(50)], state({"n": 1})],
        progress_interval_seconds=0.000001,
    )
    assert run.returncode == 0, run.stderr
    progress = run.events("progress")
    assert progress, run.stderr
    last = progress[-1]
    assert 0 < last["records_received"] <= 50 and last["memory_mb"] > 10
    assert {"records_committed", "records_per_second", "elapsed_seconds"} <= set(last)
    quiet = run_target(
        tmp_path / "off", [schema_msg("users", USERS), record("users", id=1)], progress_interval_seconds=0
    )
    assert quiet.returncode == 0 and quiet.events("progress") == []
