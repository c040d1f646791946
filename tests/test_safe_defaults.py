"""Safe defaults for real pipelines, through the target CLI: keyed streams upsert, a key is an identifier
field and changing it fails, streams without a contract land in `default_target_schema`, tenants never
share a table, `auto_publish` publishes only an audited run, and `warn_exit_code` sets a warn run's code.

Every outcome is read back with pyiceberg and DuckDB (`ops/readback.py`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import (
    BIN,
    PERSON,
    PERSON_PROPS,
    USERS,
    open_catalog,
    person,
    record,
    run_target,
    schema_msg,
    state,
)

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

ASSETS = {"person": str(PERSON)}


def person_run(root: Path, ids: range, *extra: dict, **config) -> object:
    """A run of person records with the example contract (tenant acme unless `config` says)."""
    messages = [
        schema_msg("person", PERSON_PROPS, ["id"]),
        *(person(i) for i in ids),
        *extra,
        state({"n": ids.stop}),
    ]
    return run_target(root, messages, **{"assets": ASSETS, **config})


def ids_on(table, branch: str) -> tuple[list[int], list[tuple]]:
    """Ids on `branch` read by pyiceberg, and (count, distinct ids) read by DuckDB."""
    ids = sorted(r["id"] for r in pyiceberg_rows(table, branch))
    counted = duckdb_rows(table, branch, "SELECT count(*), count(DISTINCT id) FROM t")
    return ids, counted


# ---------------------------------------------------------------- 1: keyed streams are idempotent


def test_contract_stream_upserts_by_default_so_a_rerun_lands_no_duplicate(tmp_path: Path) -> None:
    assert person_run(tmp_path, range(1, 6)).returncode == 0
    rerun = person_run(tmp_path, range(3, 9))  # ids 3-5 re-sent (a tap re-reading a grown file)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.events("job_started")[0]["load_method"] == "by stream key"
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    assert ids_on(table, "acme") == (list(range(1, 9)), [(8, 8)])


def test_explicit_append_only_checks_the_primary_key_against_the_branch(tmp_path: Path) -> None:
    assert person_run(tmp_path, range(1, 6), load_method="append-only").returncode == 0
    strict = person_run(tmp_path, range(5, 8), load_method="append-only")
    assert strict.returncode == 2
    error = strict.events("job_finished")[0]["error"]
    assert "stream 'person'" in error and "primary_key" in error, error
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    assert ids_on(table, "acme") == ([1, 2, 3, 4, 5], [(5, 5)])  # nothing of the batch committed

    warn = person_run(tmp_path, range(5, 8), load_method="append-only", schema_validation_mode="warn")
    assert warn.returncode == 1, warn.stderr
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    assert ids_on(table, "acme") == ([1, 2, 3, 4, 5, 6, 7], [(7, 7)])
    rejected = pyiceberg_rows(open_catalog(tmp_path).load_table("acme__crm.person__rejected"), "acme")
    assert [(e["field"], e["rule"]) for r in rejected for e in r["_errors"]] == [("id", "primary_key")]
    assert "already on branch 'acme'" in rejected[0]["_errors"][0]["message"]


# ---------------------------------------------------------------- 4: Singer keys are identifier fields


def test_key_properties_become_required_identifier_fields_and_a_key_change_fails(tmp_path: Path) -> None:
    first = [schema_msg("users", USERS, ["id"]), record("users", id=1, name="a"), state({"n": 1})]
    assert run_target(tmp_path, first).returncode == 0
    table = open_catalog(tmp_path).load_table("acme.users")
    schema = table.schema()
    assert schema.identifier_field_names() == {"id"} and schema.find_field("id").required
    assert not schema.find_field("name").required

    again = [schema_msg("users", USERS, ["id"]), record("users", id=1, name="b"), state({"n": 2})]
    assert run_target(tmp_path, again).returncode == 0  # keyed: upserted
    table = open_catalog(tmp_path).load_table("acme.users")
    assert duckdb_rows(table, "acme", "SELECT id, name FROM t") == [(1, "b")]

    changed = [schema_msg("users", USERS, ["name"]), record("users", id=2, name="c"), state({"n": 3})]
    run = run_target(tmp_path, changed)
    assert run.returncode == 2
    error = run.events("job_finished")[0]["error"]
    assert "stream 'users'" in error and "keyed on id" in error and "on name" in error, error
    assert run.stdout == ""  # no STATE: nothing committed
    table = open_catalog(tmp_path).load_table("acme.users")
    assert pyiceberg_rows(table, "acme") == [{"id": 1, "name": "b"}]


def test_a_number_key_property_is_refused(tmp_path: Path) -> None:
    props = {"x": {"type": "number"}}
    run = run_target(tmp_path, [schema_msg("m", props, ["x"]), record("m", x=1.5)])
    assert run.returncode == 2
    assert "key property 'x'" in run.events("job_finished")[0]["error"]


# ---------------------------------------------------------------- 3 and 5: namespaces and tenants


def test_default_target_schema_names_the_namespace_of_streams_without_a_contract(tmp_path: Path) -> None:
    messages = [
        schema_msg("users", USERS, ["id"]),
        record("users", id=1, name="a"),
        schema_msg("person", PERSON_PROPS, ["id"]),
        person(1),
        state({"n": 1}),
    ]
    single = run_target(
        tmp_path / "single", messages, tenant_id="default", default_target_schema="tap_a", assets=ASSETS
    )
    assert single.returncode == 0, single.stderr
    catalog = open_catalog(tmp_path / "single")
    names = sorted(".".join(i) for ns in catalog.list_namespaces() for i in catalog.list_tables(ns))
    names = [n for n in names if not n.startswith("_dativo.")]  # the run ledger's tables aside
    assert names == ["crm.person", "tap_a.users"]  # single tenant: short names; the contract's domain wins

    scoped = run_target(tmp_path / "acme", messages, default_target_schema="tap_a", assets=ASSETS)
    assert scoped.returncode == 0, scoped.stderr
    catalog = open_catalog(tmp_path / "acme")
    names = sorted(".".join(i) for ns in catalog.list_namespaces() for i in catalog.list_tables(ns))
    assert [n for n in names if not n.startswith("_dativo.")] == ["acme__crm.person", "acme__tap_a.users"]
    users = catalog.load_table("acme__tap_a.users")
    assert duckdb_rows(users, "acme", "SELECT id, name FROM t") == [(1, "a")]


def test_tenants_never_share_a_table(tmp_path: Path) -> None:
    assert person_run(tmp_path, range(1, 4), auto_publish=True).returncode == 0  # acme, published
    beta = person_run(tmp_path, range(100, 102), tenant_id="beta")
    assert beta.returncode == 0, beta.stderr
    catalog = open_catalog(tmp_path)
    acme, other = catalog.load_table("acme__crm.person"), catalog.load_table("beta__crm.person")
    assert ids_on(acme, "main") == ([1, 2, 3], [(3, 3)])
    assert ids_on(other, "beta") == ([100, 101], [(2, 2)])  # acme's published rows are not on beta's branch
    assert ids_on(other, "main") == ([], [(0, 0)])
    warehouse = (tmp_path / "warehouse").as_uri()
    assert acme.location() == f"{warehouse}/acme/crm/customers/person"
    assert other.location() == f"{warehouse}/beta/crm/customers/person"
    assert acme.properties.get("dativo.domain") == "crm"


def test_a_contract_of_another_tenant_fails_before_anything_is_written(tmp_path: Path) -> None:
    contract = tmp_path / "person.odcs.yaml"
    contract.write_text(PERSON.read_text().replace("domain: crm\n", "domain: crm\ntenant: beta\n"))
    run = run_target(
        tmp_path, [schema_msg("person", PERSON_PROPS, ["id"]), person(1)], assets={"person": str(contract)}
    )
    assert run.returncode == 2
    error = run.stderr
    assert "tenant 'beta'" in error and "tenant_id 'acme'" in error and "person.odcs.yaml" in error, error
    assert open_catalog(tmp_path).list_namespaces() in ([], [("_dativo",)])  # at most the run ledger
    assert (
        person_run(tmp_path, range(1, 2), tenant_id="beta", assets={"person": str(contract)}).returncode == 0
    )


# ---------------------------------------------------------------- 6 and 7: auto_publish, warn_exit_code


def test_auto_publish_moves_main_only_after_an_audited_run(tmp_path: Path) -> None:
    published = person_run(tmp_path, range(1, 4), auto_publish=True)
    assert published.returncode == 0, published.stderr
    assert [e["table"] for e in published.events("published")] == ["acme__crm.person"]
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    assert ids_on(table, "main") == ([1, 2, 3], [(3, 3)])
    assert table.snapshot_by_name("main").snapshot_id == table.snapshot_by_name("acme").snapshot_id

    bad = person(9, email=None)  # required field missing: rejected in warn mode
    warn = person_run(tmp_path, range(4, 6), bad, auto_publish=True, schema_validation_mode="warn")
    assert warn.returncode == 1
    assert warn.events("published") == []
    assert "rejected" in warn.events("publish_skipped")[0]["reason"]
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    assert ids_on(table, "main") == ([1, 2, 3], [(3, 3)])  # main untouched
    assert ids_on(table, "acme") == ([1, 2, 3, 4, 5], [(5, 5)])

    strict = person_run(tmp_path, range(6, 8), bad, auto_publish=True)
    assert strict.returncode == 2
    assert "the run failed" in strict.events("publish_skipped")[0]["reason"]
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    assert ids_on(table, "main") == ([1, 2, 3], [(3, 3)])


def test_warn_exit_code_sets_the_code_of_a_run_with_rejections(tmp_path: Path) -> None:
    bad = person(9, email=None)
    run = person_run(tmp_path, range(1, 3), bad, schema_validation_mode="warn", warn_exit_code=0)
    assert run.returncode == 0, run.stderr
    assert run.states == [{"n": 3}]
    finished = run.events("job_finished")[0]
    assert (finished["status"], finished["exit_code"], finished["records_rejected"]) == ("partial", 0, 1)
    catalog = open_catalog(tmp_path)
    assert ids_on(catalog.load_table("acme__crm.person"), "acme") == ([1, 2], [(2, 2)])
    assert len(pyiceberg_rows(catalog.load_table("acme__crm.person__rejected"), "acme")) == 1

    other = person_run(tmp_path / "b", range(1, 3), bad, schema_validation_mode="warn", warn_exit_code=3)
    assert other.returncode == 3


def test_dativo_commands_show_and_publish_the_tenants_tables(tmp_path: Path) -> None:
    assert person_run(tmp_path, range(1, 4)).returncode == 0  # acme (target.json now holds acme)
    dativo = [str(BIN / "dativo")]
    beta = run_target(
        tmp_path, [schema_msg("person", PERSON_PROPS, ["id"]), person(7)], tenant_id="beta", assets=ASSETS
    )
    assert beta.returncode == 0, beta.stderr
    acme_cfg = json.loads((tmp_path / "target.json").read_text())
    (tmp_path / "acme.json").write_text(json.dumps({**acme_cfg, "tenant_id": "acme"}))

    listed = subprocess.run(
        [*dativo, "branch", "list", "--config", str(tmp_path / "acme.json")], capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert "acme__crm.person" in listed.stdout and "beta__" not in listed.stdout
    published = subprocess.run(
        [*dativo, "branch", "publish", "--config", str(tmp_path / "acme.json")],
        capture_output=True,
        text=True,
    )
    assert published.returncode == 0, published.stderr
    assert "published acme__crm.person" in published.stdout
    catalog = open_catalog(tmp_path)
    assert ids_on(catalog.load_table("acme__crm.person"), "main") == ([1, 2, 3], [(3, 3)])
    assert ids_on(catalog.load_table("beta__crm.person"), "main") == ([], [(0, 0)])  # beta's main untouched
    inspected = subprocess.run(
        [*dativo, "inspect", "--config", str(tmp_path / "acme.json"), "--json"],
        capture_output=True,
        text=True,
    )
    assert inspected.returncode == 0, inspected.stderr
    assert [
        (r["identifier"], r["rows_on_branch"], r["rows_on_main"]) for r in json.loads(inspected.stdout)
    ] == [("acme__crm.person", 3, 3)]


def test_auto_publish_fails_without_moving_main_when_main_moved_on(tmp_path: Path) -> None:
    assert person_run(tmp_path, range(1, 3), auto_publish=True).returncode == 0
    assert person_run(tmp_path, range(50, 51), branch="main").returncode == 0  # a commit straight to main
    run = person_run(tmp_path, range(3, 5), auto_publish=True)
    assert run.returncode == 2
    reason = run.events("publish_skipped")[0]["reason"]
    assert "acme__crm.person" in reason and "not an ancestor" in reason and "main is untouched" in reason, (
        reason
    )
    assert run.states == [{"n": 5}]  # the run's rows are committed on its branch
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    assert ids_on(table, "main") == ([1, 2, 50], [(3, 3)])
    assert ids_on(table, "acme") == ([1, 2, 3, 4], [(4, 4)])
