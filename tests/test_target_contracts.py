"""Contracts through the target CLI: table from the contract, strict and warn modes, exit codes,
the rejected-records table (read back by DuckDB), broken contracts, object-level quality."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import PERSON_PROPS, open_catalog, person, record, run_target, schema_msg, state

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

ROOT = Path(__file__).resolve().parent.parent
PERSON = ROOT / "examples" / "contracts" / "person.odcs.yaml"
FLAT = ROOT / "tests" / "contracts" / "customers_flat.yaml"
BROKEN = ROOT / "tests" / "contracts" / "broken_logical_type.odcs.yaml"


def stream(*records: dict, props: dict | None = None) -> list[dict]:
    return [
        schema_msg("person", props or PERSON_PROPS, ["id"]),
        *records,
        state({"bookmarks": {"person": {"n": 1}}}),
    ]


def test_contract_defines_table_and_valid_batch_lands(tmp_path: Path) -> None:
    run = run_target(tmp_path, stream(person(1), person(2), person(3)), assets={"person": str(PERSON)})
    assert run.returncode == 0, run.stderr
    assert run.states == [{"bookmarks": {"person": {"n": 1}}}]
    names = [e["event"] for e in run.events()]
    assert "asset_loaded" in names and "validator_initialized" in names
    table = open_catalog(tmp_path).load_table("acme__crm.person")  # namespace = contract domain
    schema = table.schema()
    assert schema.find_field("id").required and str(schema.find_field("id").field_type) == "long"
    assert str(schema.find_field("age").field_type) == "int"
    assert [schema.find_field(i).name for i in schema.identifier_field_ids] == ["id"]
    assert [f.name for f in table.spec().fields] == ["country"]
    props = table.properties
    assert props["dativo.domain"] == "crm" and props["dativo.data-product"] == "customers"
    assert props["dativo.contract-id"] == "3b1e6f0a-8c2d-4d7e-9f4a-5c6b7d8e9f01"
    assert table.location().endswith("/crm/customers/person")
    rows = duckdb_rows(table, "acme", "SELECT id, email, age, country FROM t ORDER BY id")
    assert rows == [
        (1, "user1@example.com", 31, "NO"),
        (2, "user2@example.com", 32, "SE"),
        (3, "user3@example.com", 33, "NO"),
    ]
    assert len(pyiceberg_rows(table, "acme")) == 3


def test_strict_violation_fails_with_summary_and_commits_nothing(tmp_path: Path) -> None:
    bad = stream(
        person(1),
        person(2, email="not-an-email"),
        person(3, status="deleted"),
        person(4, age=200),
        person(5, age="abc"),
        person(6, id=None),
    )
    run = run_target(tmp_path, bad, assets={"person": str(PERSON)})
    assert run.returncode == 2
    assert run.states == []
    assert "stream 'person' violates contract" in run.stderr
    errors = run.events("validation_errors")[0]
    assert errors["mode"] == "strict" and errors["rejected_records"] == 5
    rules = {(v["field"], v["rule"]) for v in errors["violations"]}
    assert {
        ("email", "pattern"),
        ("status", "validValues"),
        ("age", "maximum"),
        ("age", "type"),
        ("id", "required"),
    } <= {(f, r) for f, r in rules} | rules
    examples = {(v["field"], v["rule"]): v["examples"] for v in errors["violations"]}
    assert examples[("status", "validValues")][0]["position"] == 3
    assert examples[("status", "validValues")][0]["value"] == "deleted"
    assert not open_catalog(tmp_path).table_exists("acme__crm.person")  # validation runs before any write


def test_warn_mode_lands_valid_rows_and_rejected_table(tmp_path: Path) -> None:
    batch = stream(person(1), person(2, status="deleted", age=-1), person(3), person(4, email=None))
    run = run_target(tmp_path, batch, assets={"person": str(PERSON)}, schema_validation_mode="warn")
    assert run.returncode == 1, run.stderr
    assert run.states == [{"bookmarks": {"person": {"n": 1}}}]
    finished = run.events("job_finished")[-1]
    assert finished["status"] == "partial" and finished["records_rejected"] == 2
    catalog = open_catalog(tmp_path)
    table = catalog.load_table("acme__crm.person")
    assert duckdb_rows(table, "acme", "SELECT id FROM t ORDER BY id") == [(1,), (3,)]
    summary = table.snapshot_by_name("acme").summary.additional_properties
    assert summary["dativo.records"] == "2" and summary["dativo.records-rejected"] == "2"
    rejected = catalog.load_table("acme__crm.person__rejected")
    rows = duckdb_rows(
        rejected,
        "acme",
        "SELECT _run_id, _stream, _record, _errors, _rejected_at IS NOT NULL FROM t ORDER BY _record",
    )
    assert len(rows) == 2
    run_id = run.events("job_started")[0]["run_id"]
    assert {r[0] for r in rows} == {run_id} and {r[1] for r in rows} == {"person"}
    by_id = {json.loads(r[2])["id"]: r for r in rows}
    reasons_2 = {(e["field"], e["rule"]) for e in by_id[2][3]}
    assert reasons_2 == {("status", "validValues"), ("age", "minimum")}
    assert all(e["message"] for e in by_id[2][3])
    assert {(e["field"], e["rule"]) for e in by_id[4][3]} == {("email", "required")}
    assert all(r[4] for r in rows)


def test_unknown_field_strict_fails_before_data_warn_drops_it(tmp_path: Path) -> None:
    props = {**PERSON_PROPS, "nickname": {"type": ["string", "null"]}}
    run = run_target(
        tmp_path / "s", stream(person(1, nickname="x"), props=props), assets={"person": str(PERSON)}
    )
    assert run.returncode == 2
    assert "nickname" in run.stderr and "not in the contract" in run.stderr
    run = run_target(
        tmp_path / "w",
        stream(person(1, nickname="x"), props=props),
        assets={"person": str(PERSON)},
        schema_validation_mode="warn",
    )
    assert run.returncode == 0, run.stderr
    event = next(e for e in run.events("validation_errors") if e.get("rule") == "unknown_field")
    assert event["fields"] == ["nickname"]
    table = open_catalog(tmp_path / "w").load_table("acme__crm.person")
    assert "nickname" not in [f.name for f in table.schema().fields]
    assert duckdb_rows(table, "acme", "SELECT id FROM t") == [(1,)]


def test_broken_contract_fails_before_reading_input(tmp_path: Path) -> None:
    run = run_target(tmp_path, "not even json\n", assets={"person": str(BROKEN)})
    assert run.returncode == 2
    assert str(BROKEN) in run.stderr and "logicalType" in run.stderr
    assert "Unable to parse" not in run.stderr  # failed on the contract, not on the input
    # Nothing written but the run's failed row in the run ledger.
    catalog = open_catalog(tmp_path)
    assert catalog.list_namespaces() == [("_dativo",)]
    [row] = pyiceberg_rows(catalog.load_table("_dativo.ingestion_runs"), "main")
    assert (row["status"], row["exit_code"], row["records_received"]) == ("failed", 2, 0)
    assert "logicalType" in row["error"]


def test_assets_dir_and_flat_flavour_with_ingest_date_partition(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    shutil.copy(FLAT, contracts / "customers.yaml")
    props = {
        "CustomerID": {"type": "integer"},
        "Email": {"type": "string"},
        "Country": {"type": ["string", "null"]},
        "Balance": {"type": ["number", "null"]},
        "Tier": {"type": ["string", "null"]},
        "SignedUp": {"type": ["string", "null"], "format": "date"},
        "UpdatedAt": {"type": "string", "format": "date-time"},
        "Active": {"type": ["boolean", "null"]},
    }
    rec = {
        "CustomerID": 7,
        "Email": "c7@example.com",
        "Country": "DE",
        "Balance": 12.5,
        "Tier": "gold",
        "SignedUp": "2024-02-03",
        "UpdatedAt": "2025-01-01T00:00:00+01:00",
        "Active": True,
    }
    messages = [schema_msg("Customers", props, ["CustomerID"]), record("Customers", **rec), state({"x": 1})]
    run = run_target(tmp_path, messages, assets_dir=str(contracts))
    assert run.returncode == 0, run.stderr
    table = open_catalog(tmp_path).load_table("acme__dativo.csv_customers")
    assert [f.name for f in table.spec().fields] == ["ingest_date", "country"]
    assert table.properties["dativo.retention-days"] == "90"
    row = duckdb_rows(table, "acme", "SELECT customerid, balance, ingest_date IS NOT NULL, updatedat FROM t")[
        0
    ]
    assert row[0] == 7 and float(row[1]) == 12.5 and row[2] is True
    assert row[3].isoformat() == "2024-12-31T23:00:00+00:00"


def test_row_count_quality_checked_before_final_commit(tmp_path: Path) -> None:
    contract = tmp_path / "person.yaml"
    text = PERSON.read_text()
    assert "mustBeGreaterThan: 0" in text
    contract.write_text(text.replace("mustBeGreaterThan: 0", "mustBeGreaterThan: 2"))
    run = run_target(tmp_path, stream(person(1), person(2)), assets={"person": str(contract)})
    assert run.returncode == 2
    assert "rowCount" in run.stderr
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    assert duckdb_rows(table, "acme", "SELECT id FROM t") == [] and pyiceberg_rows(table, "acme") == []
    # Three rows satisfy it; a later run with no new rows still passes (the table holds three).
    assert (
        run_target(
            tmp_path, stream(person(1), person(2), person(3)), assets={"person": str(contract)}
        ).returncode
        == 0
    )
    assert run_target(tmp_path, stream(), assets={"person": str(contract)}).returncode == 0


def test_row_count_in_warn_mode_is_partial(tmp_path: Path) -> None:
    contract = tmp_path / "person.yaml"
    contract.write_text(PERSON.read_text().replace("mustBeGreaterThan: 0", "mustBeGreaterThan: 5"))
    run = run_target(
        tmp_path, stream(person(1)), assets={"person": str(contract)}, schema_validation_mode="warn"
    )
    assert run.returncode == 1
    assert any("rowCount" in str(e.get("quality")) for e in run.events("validation_errors"))
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    assert duckdb_rows(table, "acme", "SELECT id FROM t") == [(1,)]


def test_strict_violation_in_a_later_batch_commits_the_earlier_ones_and_nothing_after(tmp_path: Path) -> None:
    """Batches after the first are validated on the commit thread: a strict failure there still
    ends the run with exit 2 naming the record, keeps what earlier batches committed (and their
    STATEs), commits nothing of the failed batch and prints no STATE after it."""
    messages = [schema_msg("person", PERSON_PROPS, ["id"])]
    for i in range(1, 11):
        messages.append(person(i, status="deleted") if i == 7 else person(i))
        if i % 2 == 0:
            messages.append(state({"bookmarks": {"person": {"n": i}}}))
    run = run_target(tmp_path, messages, assets={"person": str(PERSON)}, batch_size_rows=2)
    assert run.returncode == 2
    assert "record 7" in run.stderr and "status" in run.stderr
    printed = [s["bookmarks"]["person"]["n"] for s in run.states]
    assert printed and printed == sorted(printed) and max(printed) <= 6
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    ids = sorted(r["id"] for r in pyiceberg_rows(table, "acme"))
    assert ids == list(range(1, max(printed) + 1)) or ids == list(range(1, 7))
    assert max(printed) <= max(ids)
    rows = duckdb_rows(table, "acme", "SELECT count(*) FROM t WHERE id >= 7")
    assert rows == [(0,)]
