"""Target behaviour through the CLI: what lands, on which branch, which STATE is printed, exit codes."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

from helpers import BIN, open_catalog, record, run_target, schema_msg, state

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

UTC = datetime.timezone.utc

USERS = {
    "id": {"type": "integer"},
    "Full Name": {"type": ["string", "null"]},
    "score": {"type": ["number", "null"]},
    "active": {"type": ["boolean", "null"]},
    "created_at": {"type": ["string", "null"], "format": "date-time"},
    "birthday": {"type": ["string", "null"], "format": "date"},
    "tags": {"type": ["array", "null"], "items": {"type": "string"}},
    "address": {"type": ["object", "null"], "properties": {"city": {"type": ["string", "null"]}}},
    "extra": {},
    "mixed": {"type": ["string", "integer", "null"]},
}


def test_types_branch_summary_and_state(tmp_path: Path) -> None:
    messages = [
        schema_msg("Users", USERS, ["id"]),
        state({"bookmarks": {"Users": {"replication_key_value": 1.5}}}),
        record(
            "Users",
            id=1,
            **{"Full Name": "Ada"},
            score=1.25,
            active=True,
            created_at="2025-01-01T00:00:00",
            birthday="1990-05-17",
            tags=["x", "y"],
            address={"city": "Oslo"},
            extra={"k": [1, 2]},
            mixed=7,
        ),
        record("Users", id=2, score=3, created_at="2025-01-01T10:00:00+02:00", mixed="seven"),
        state({"bookmarks": {"Users": {"replication_key_value": 2.75}}}),
    ]
    run = run_target(tmp_path, messages)
    assert run.returncode == 0, run.stderr
    # STATE printed once, after the commit, floats intact (singer-sdk parses them as Decimal).
    assert run.states == [  # the first came before any record: printed at once
        {"bookmarks": {"Users": {"replication_key_value": 1.5}}},
        {"bookmarks": {"Users": {"replication_key_value": 2.75}}},
    ]

    table = open_catalog(tmp_path).load_table("acme.users")
    assert [f.name for f in table.schema().fields] == [
        "id", "full_name", "score", "active", "created_at", "birthday", "tags", "address", "extra", "mixed",
    ]  # fmt: skip
    expected_first = {
        "id": 1,
        "full_name": "Ada",
        "score": 1.25,
        "active": True,
        "created_at": datetime.datetime(2025, 1, 1, tzinfo=UTC),  # naive input taken as UTC
        "birthday": datetime.date(1990, 5, 17),
        "tags": ["x", "y"],
        "address": {"city": "Oslo"},
        "extra": '{"k": [1, 2]}',
        "mixed": "7",
    }
    rows = sorted(pyiceberg_rows(table, "acme"), key=lambda r: r["id"])
    assert rows[0] == expected_first
    assert rows[1]["created_at"] == datetime.datetime(2025, 1, 1, 8, tzinfo=UTC)
    assert rows[1]["mixed"] == "seven" and rows[1]["score"] == 3.0 and rows[1]["tags"] is None

    duck = duckdb_rows(
        table, "acme", "SELECT id, full_name, created_at, tags, address, extra FROM t ORDER BY id"
    )
    assert duck[0][:2] == (1, "Ada")
    assert duck[0][2] == datetime.datetime(2025, 1, 1, tzinfo=UTC)
    assert duck[0][3:] == (["x", "y"], {"city": "Oslo"}, '{"k": [1, 2]}')
    assert [r[0] for r in duck] == [1, 2]

    # Written on the tenant branch; main holds only the empty table-created snapshot.
    assert set(table.metadata.refs) == {"main", "acme"}
    assert pyiceberg_rows(table, "main") == []
    assert duckdb_rows(table, "main", "SELECT count(*) FROM t") == [(0,)]
    branch_head = table.snapshot_by_name("acme")
    assert branch_head.parent_snapshot_id == table.snapshot_by_name("main").snapshot_id

    summary = branch_head.summary.additional_properties
    assert summary["dativo.tenant"] == "acme"
    assert summary["dativo.stream"] == "Users"
    assert summary["dativo.records"] == "2"
    assert summary["dativo.records-rejected"] == "0"
    assert json.loads(summary["dativo.singer-state"]) == {
        "bookmarks": {"Users": {"replication_key_value": 2.75}}
    }
    run_ids = {e["run_id"] for e in run.events()}
    assert run_ids == {summary["dativo.run-id"]}
    commits = run.events("commit_success")
    assert [c["commit_id"] for c in commits] == [summary["dativo.commit-id"]]
    names = [e["event"] for e in run.events()]
    for event in ("job_started", "writer_initialized", "committer_initialized", "table_ensured",
                  "batch_written", "commit_success", "state_emitted", "job_finished"):  # fmt: skip
        assert event in names, event
    assert names.index("commit_success") < len(names) - 1 - names[::-1].index(
        "state_emitted"
    )  # the last STATE
    assert run.events("job_finished")[-1]["records"] == 2


def test_state_is_printed_only_for_committed_records(tmp_path: Path) -> None:
    """A failing batch: the STATEs up to the committed batch are printed (the one before any record at
    once, the one right after the full batch with its commit), the later one never is."""
    props = {"id": {"type": "integer"}, "n": {"type": ["integer", "null"]}}
    messages = [
        schema_msg("t", props, ["id"]),
        state({"pos": 0}),
        record("t", id=1, n=1),
        record("t", id=2, n=2),  # batch of 2 is full: its commit waits for the STATE right behind it
        state({"pos": 2}),
        record("t", id=3, n=3),
        record("t", id=4, n=2**70),  # does not fit a long: the batch fails
        state({"pos": 4}),
    ]
    run = run_target(tmp_path, messages, batch_size_rows=2, validate_records=False)
    assert run.returncode == 2
    assert run.states == [{"pos": 0}, {"pos": 2}]
    assert "stream 't'" in run.stderr and "field 'n'" in run.stderr and "record 4" in run.stderr
    table = open_catalog(tmp_path).load_table("acme.t")
    assert sorted(r["id"] for r in pyiceberg_rows(table, "acme")) == [1, 2]
    assert duckdb_rows(table, "acme", "SELECT count(*) FROM t") == [(2,)]
    finished = run.events("job_finished")
    assert finished and finished[-1]["status"] == "failed" and finished[-1]["exit_code"] == 2


def test_covered_state_with_two_streams(tmp_path: Path) -> None:
    """A commit of one stream only makes safe the STATE before the other stream's buffered records."""
    props = {"id": {"type": "integer"}}
    messages = [
        schema_msg("a", props, ["id"]),
        schema_msg("b", props, ["id"]),
        record("a", id=1),
        state({"s": 1}),
        record("b", id=1),  # b buffers a record that came after s=1
        state({"s": 2}),
        record("a", id=2),  # a is full: commits; s=2 is not safe (b's record), s=1 is
        state({"s": 3}),
    ]
    run = run_target(tmp_path, messages, batch_size_rows=2)
    assert run.returncode == 0, run.stderr
    assert run.states == [{"s": 1}, {"s": 3}]
    catalog = open_catalog(tmp_path)
    a = catalog.load_table("acme.a")
    b = catalog.load_table("acme.b")
    assert json.loads(a.snapshot_by_name("acme").summary.additional_properties["dativo.singer-state"]) == {
        "s": 1
    }
    assert json.loads(b.snapshot_by_name("acme").summary.additional_properties["dativo.singer-state"]) == {
        "s": 3
    }
    assert duckdb_rows(a, "acme", "SELECT count(*) FROM t") == [(2,)]
    assert duckdb_rows(b, "acme", "SELECT count(*) FROM t") == [(1,)]


def test_add_record_metadata_and_second_run_appends(tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}
    first = [schema_msg("m", props, ["id"]), record("m", id=1, v="a"), state({"n": 1})]
    run = run_target(tmp_path, first, add_record_metadata=True)
    assert run.returncode == 0, run.stderr
    second = [schema_msg("m", props, ["id"]), record("m", id=2, v="b"), state({"n": 2})]
    run = run_target(tmp_path, second, add_record_metadata=True)
    assert run.returncode == 0, run.stderr
    table = open_catalog(tmp_path).load_table("acme.m")
    columns = [f.name for f in table.schema().fields]
    assert "_sdc_extracted_at" in columns and "_sdc_received_at" in columns and "_sdc_sequence" in columns
    rows = duckdb_rows(table, "acme", "SELECT id, v, _sdc_received_at IS NOT NULL FROM t ORDER BY id")
    assert rows == [(1, "a", True), (2, "b", True)]
    # Two runs, two data commits on the branch, each carrying its own state.
    head = table.snapshot_by_name("acme")
    assert json.loads(head.summary.additional_properties["dativo.singer-state"]) == {"n": 2}


def test_new_column_evolves_table_and_integers_into_string_column(tmp_path: Path) -> None:
    v1 = {"id": {"type": "integer"}, "code": {"type": ["string", "null"]}}
    assert run_target(tmp_path, [schema_msg("e", v1), record("e", id=1, code="x")]).returncode == 0
    v2 = {
        "id": {"type": "integer"},
        "code": {"type": ["integer", "null"]},
        "added": {"type": ["number", "null"]},
    }
    run = run_target(tmp_path, [schema_msg("e", v2), record("e", id=2, code=42, added=0.5)])
    assert run.returncode == 0, run.stderr
    assert run.events("schema_coerced")[0]["column"] == "code"
    table = open_catalog(tmp_path).load_table("acme.e")
    assert str(table.schema().find_field("code").field_type) == "string"
    rows = duckdb_rows(table, "acme", "SELECT id, code, added FROM t ORDER BY id")
    assert rows == [(1, "x", None), (2, "42", 0.5)]


def test_breaking_type_change_fails_without_commit(tmp_path: Path) -> None:
    v1 = {"id": {"type": "integer"}, "amount": {"type": ["integer", "null"]}}
    assert run_target(tmp_path, [schema_msg("x", v1), record("x", id=1, amount=5)]).returncode == 0
    v2 = {"id": {"type": "integer"}, "amount": {"type": ["string", "null"]}}
    run = run_target(tmp_path, [schema_msg("x", v2), record("x", id=2, amount="five"), state({"z": 1})])
    assert run.returncode == 2
    assert "column 'amount' changes type from long to string" in run.stderr
    assert run.states == []
    table = open_catalog(tmp_path).load_table("acme.x")
    assert duckdb_rows(table, "acme", "SELECT id, amount FROM t") == [(1, 5)]


def test_name_collision_is_reported(tmp_path: Path) -> None:
    props = {"Name": {"type": "string"}, "name": {"type": "string"}}
    run = run_target(tmp_path, [schema_msg("c", props), record("c", Name="a", name="b")])
    assert run.returncode == 2
    assert "columns 'Name' and 'name'" in run.stderr and "'name'" in run.stderr


def test_namespace_table_and_column_names_follow_one_rule(tmp_path: Path) -> None:
    """Lower-cased, non-alphanumerics → `_`, `_` in front of a leading digit: tenant, stream, columns."""
    props = {"1st Place": {"type": "string"}, "Score-2": {"type": "integer"}}
    messages = [schema_msg("2024-Sales", props), record("2024-Sales", **{"1st Place": "a", "Score-2": 7})]
    run = run_target(tmp_path, messages, tenant_id="42-Acme")
    assert run.returncode == 0, run.stderr
    table = open_catalog(tmp_path).load_table("_42_acme._2024_sales")
    assert table.schema().column_names == ["_1st_place", "score_2"]
    assert pyiceberg_rows(table, "42-Acme") == [{"_1st_place": "a", "score_2": 7}]


def test_required_column_missing_fails(tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "v": {"type": "string"}}
    messages = [schema_msg("r", props, ["id"], required=["id", "v"]), record("r", id=1)]
    run = run_target(tmp_path, messages, validate_records=False)
    assert run.returncode == 2
    assert "stream 'r', record 1, field 'v'" in run.stderr
    table = open_catalog(tmp_path).load_table("acme.r")
    assert pyiceberg_rows(table, "acme") == []
    assert duckdb_rows(table, "acme", "SELECT count(*) FROM t") == [(0,)]


def test_bad_input_and_config_exit_2(tmp_path: Path) -> None:
    run = run_target(tmp_path / "a", "this is not json\n")
    assert run.returncode == 2
    run = run_target(tmp_path / "b", [], warehouse="${DATIVO_TEST_UNSET_VAR}")
    assert run.returncode == 2
    assert "DATIVO_TEST_UNSET_VAR" in run.stderr
    run = run_target(tmp_path / "c", [], catalog_type="bogus")
    assert run.returncode == 2


def test_env_expansion_and_explicit_branch_main(tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}}
    run = run_target(
        tmp_path,
        [schema_msg("p", props), record("p", id=7)],
        env={"DATIVO_TEST_NS": "sales"},
        namespace="${DATIVO_TEST_NS}",
        branch="main",
    )
    assert run.returncode == 0, run.stderr
    table = open_catalog(tmp_path).load_table("sales.p")
    assert set(table.metadata.refs) == {"main"}
    assert duckdb_rows(table, "main", "SELECT id FROM t") == [(7,)]


def test_dativo_inspect_prints_what_landed(tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}}
    messages = [schema_msg("orders", props), record("orders", id=1), record("orders", id=2), state({"k": 1})]
    assert run_target(tmp_path, messages).returncode == 0
    proc = subprocess.run(
        [str(BIN / "dativo"), "inspect", "--config", str(tmp_path / "target.json")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("acme.orders"))
    assert line.split()[1:3] == ["2", "0"]
    assert 'dativo.singer-state = {"k":1}' in proc.stdout
