"""The end-to-end scenarios on every catalog: SQLite (embedded), PostgreSQL, REST over S3 (SeaweedFS).

Each test is parametrized by the `catalog_backend` fixture (tests/servers.py), runs the target CLI
and reads the result back with pyiceberg and with DuckDB (over S3 for the REST catalog):
- append on a branch: the branch gets every row, main stays empty;
- schema evolution: a later SCHEMA adds a column; old rows read it as null; both runs are in the run
  ledger and both schema versions in the schema history;
- a contract stream in warn mode: valid rows land, invalid ones go to `<table>__rejected`;
- upsert by key (last record wins).

SCENARIOS_PENDING = [] (upsert was pending until load_method upsert landed; it now runs here too.)

On REST catalogs the contract's table location is not applied (the catalog chooses it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers import PERSON_PROPS, Run, person, record, run_target, schema_msg, state

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from servers import CatalogBackend

pytest_plugins = ["servers"]

PERSON = Path(__file__).resolve().parent.parent / "examples" / "contracts" / "person.odcs.yaml"
USERS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}


def run(root: Path, backend: CatalogBackend, messages: list[dict], **settings: Any) -> Run:
    """Run the target against `backend`; a failure shows its stderr."""
    result = run_target(root, messages, **backend.settings, **settings)
    assert result.returncode in (0, 1), result.stderr
    return result


def both_readers(backend: CatalogBackend, table: Table, branch: str, columns: str) -> list[tuple]:
    """Rows of `columns` on `branch`, sorted; pyiceberg and DuckDB must agree."""
    names = [c.strip() for c in columns.split(",")]
    from_pyiceberg = sorted(tuple(row[n] for n in names) for row in pyiceberg_rows(table, branch))
    from_duckdb = duckdb_rows(table, branch, f"SELECT {columns} FROM t ORDER BY 1", backend.duckdb())
    assert [tuple(r) for r in from_duckdb] == from_pyiceberg
    return from_pyiceberg


def test_append_on_branch_leaves_main_untouched(tmp_path: Path, catalog_backend: CatalogBackend) -> None:
    messages = [
        schema_msg("users", USERS, ["id"]),
        *[record("users", id=i, name=f"user {i}") for i in range(1, 6)],
        state({"bookmarks": {"users": {"upto": 5}}}),
    ]
    result = run(tmp_path, catalog_backend, messages, branch="staging", batch_size_rows=3)
    assert result.returncode == 0
    assert result.states == [{"bookmarks": {"users": {"upto": 5}}}]
    assert len(result.events("commit_success")) == 2  # two batches, two commits on the branch

    table = catalog_backend.open_catalog(tmp_path).load_table("acme.users")
    assert set(table.metadata.refs) == {"main", "staging"}
    assert both_readers(catalog_backend, table, "staging", "id, name") == [
        (i, f"user {i}") for i in range(1, 6)
    ]
    assert both_readers(catalog_backend, table, "main", "id, name") == []
    summary = table.snapshot_by_name("staging").summary.additional_properties  # type: ignore[union-attr]
    assert summary["dativo.tenant"] == "acme" and summary["dativo.records"] == "2"
    assert json.loads(summary["dativo.singer-state"]) == {"bookmarks": {"users": {"upto": 5}}}


def test_schema_evolution_adds_a_column(tmp_path: Path, catalog_backend: CatalogBackend) -> None:
    first = [schema_msg("users", USERS, ["id"]), record("users", id=1, name="one"), state({"n": 1})]
    run(tmp_path, catalog_backend, first)
    wider = {**USERS, "email": {"type": ["string", "null"]}}
    second = [
        schema_msg("users", wider, ["id"]),
        record("users", id=2, name="two", email="two@example.com"),
        state({"n": 2}),
    ]
    result = run(tmp_path, catalog_backend, second)
    assert result.states == [{"n": 2}]

    table = catalog_backend.open_catalog(tmp_path).load_table("acme.users")
    assert [f.name for f in table.schema().fields] == ["id", "name", "email"]
    assert len(table.schemas()) == 2
    assert both_readers(catalog_backend, table, "acme", "id, name, email") == [
        (1, "one", None),
        (2, "two", "two@example.com"),
    ]

    # Both runs are in the run ledger, the two schema versions in the schema history (on main).
    catalog = catalog_backend.open_catalog(tmp_path)
    namespace = "dativo" if catalog_backend.name == "rest" else "_dativo"  # SeaweedFS: a letter first
    ledger = catalog.load_table(f"{namespace}.ingestion_runs")
    runs = both_readers(catalog_backend, ledger, "main", "status, data_files")
    assert runs == [("success", 1), ("success", 1)]
    history = catalog.load_table(f"{namespace}.schema_history")
    changes = both_readers(catalog_backend, history, "main", "schema_id, change")
    assert [change for _, change in changes] == ["created", "added"]
    assert result.events("schema_changed")[0]["change"] == "added"


def test_contract_warn_mode_with_rejected_table(tmp_path: Path, catalog_backend: CatalogBackend) -> None:
    messages = [
        schema_msg("person", PERSON_PROPS, ["id"]),
        person(1),
        person(2, status="deleted", age=-1),
        person(3),
        person(4, email=None),
        state({"bookmarks": {"person": {"n": 4}}}),
    ]
    result = run(
        tmp_path, catalog_backend, messages, assets={"person": str(PERSON)}, schema_validation_mode="warn"
    )
    assert result.returncode == 1  # partial: two rows rejected
    assert result.states == [{"bookmarks": {"person": {"n": 4}}}]

    catalog = catalog_backend.open_catalog(tmp_path)
    table = catalog.load_table("acme__crm.person")  # namespace = tenant + the contract's domain
    assert table.properties["dativo.domain"] == "crm"
    assert [f.name for f in table.spec().fields] == ["country"]
    if catalog_backend.name == "rest":
        assert not table.location().endswith("/crm/customers/person")  # the catalog's default
    else:
        assert table.location().endswith("/crm/customers/person")
    assert both_readers(catalog_backend, table, "acme", "id, country") == [(1, "NO"), (3, "NO")]

    rejected = catalog.load_table("acme__crm.person__rejected")
    rows = both_readers(catalog_backend, rejected, "acme", "_stream, _record")
    assert [(stream, json.loads(rec)["id"]) for stream, rec in rows] == [("person", 2), ("person", 4)]
    errors = duckdb_rows(rejected, "acme", "SELECT _errors FROM t ORDER BY _record", catalog_backend.duckdb())
    assert {(e["field"], e["rule"]) for e in errors[0][0]} == {("status", "validValues"), ("age", "minimum")}
    assert {(e["field"], e["rule"]) for e in errors[1][0]} == {("email", "required")}


def test_upsert_by_key(tmp_path: Path, catalog_backend: CatalogBackend) -> None:
    def items(*pairs: tuple[int, str], n: int) -> list[dict]:
        return [
            schema_msg("items", USERS, ["id"]),
            *[record("items", id=i, name=v) for i, v in pairs],
            state({"n": n}),
        ]

    run(tmp_path, catalog_backend, items((1, "a"), (2, "b"), (3, "c"), n=1), load_method="upsert")
    result = run(tmp_path, catalog_backend, items((2, "b1"), (4, "d"), (2, "b2"), n=2), load_method="upsert")
    assert result.states == [{"n": 2}]
    table = catalog_backend.open_catalog(tmp_path).load_table("acme.items")
    assert both_readers(catalog_backend, table, "acme", "id, name") == [
        (1, "a"),
        (2, "b2"),
        (3, "c"),
        (4, "d"),
    ]
    assert both_readers(catalog_backend, table, "main", "id, name") == []
