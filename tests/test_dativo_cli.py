"""The `dativo` operator CLI outside a Meltano project: settings from variables or a file, --version,
tables, rejected rows with their reasons, state show, "nothing to show" messages, Nessie references.

Every command runs as a process (`dativo ...`) on tables the target CLI wrote. Nessie cannot run
here: its reference handling is checked against the fake server of tests/servers.py, which serves
tables the target wrote to a local catalog, and records every HTTP call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers import BIN, PERSON_PROPS, open_catalog, person, record, run_target, schema_msg, state

from target_dativo_iceberg.ops.project import env_config
from target_dativo_iceberg.ops.readback import DUCKDB_PACKAGES, duckdb_rows

if TYPE_CHECKING:
    from servers import FakeNessie

pytest_plugins = ["servers"]

PERSON = Path(__file__).resolve().parent.parent / "examples/contracts/person.odcs.yaml"
ITEMS = {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}


def dativo(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`dativo ARGS` in `cwd` with only `env` added to a clean environment (no TARGET_DATIVO_* set)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TARGET_DATIVO_ICEBERG_")}
    return subprocess.run(
        [str(BIN / "dativo"), *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def load_items(root: Path, ids: list[int], **config: Any) -> None:
    messages = [schema_msg("items", ITEMS, ["id"]), *[record("items", id=i, v=f"v{i}") for i in ids]]
    run = run_target(root, [*messages, state({"bookmarks": {"items": {"n": max(ids)}}})], **config)
    assert run.returncode == 0, run.stderr


def test_version() -> None:
    out = dativo(Path.cwd(), "--version")
    assert out.returncode == 0 and out.stdout.strip() == f"dativo-ingest {metadata.version('dativo-ingest')}"


def test_settings_from_environment_variables(tmp_path: Path) -> None:
    """TARGET_DATIVO_ICEBERG_* as Meltano names them: dotted settings nest, lists and objects are JSON."""
    load_items(tmp_path / "lake", [1, 2, 3])
    env = {
        "TARGET_DATIVO_ICEBERG_TENANT_ID": "acme",
        "TARGET_DATIVO_ICEBERG_CATALOG_URI": f"sqlite:///{tmp_path}/lake/catalog.db",
        "TARGET_DATIVO_ICEBERG_WAREHOUSE": str(tmp_path / "lake" / "warehouse"),
        "TARGET_DATIVO_ICEBERG_RETRY_CONFIG_MAX_RETRIES": "0",
        "TARGET_DATIVO_ICEBERG_ASSETS": "{}",
    }
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    shown = dativo(cwd, "inspect", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "catalog 'dativo' (sql), branch 'acme'" in shown.stdout
    line = next(ln for ln in shown.stdout.splitlines() if ln.startswith("acme.items"))
    assert line.split()[1:3] == ["3", "0"]
    assert "TARGET_DATIVO_ICEBERG_CATALOG_URI" in shown.stderr  # says where its settings came from
    # The same variables override a --config file's values.
    (tmp_path / "other.json").write_text(
        json.dumps({"tenant_id": "zeta", "catalog_uri": "sqlite:////nowhere.db"})
    )
    listed = dativo(cwd, "tables", "--config", str(tmp_path / "other.json"), env=env)
    assert listed.returncode == 0, listed.stderr
    assert "acme.items" in listed.stdout and "branch 'acme'" in listed.stdout
    assert env_config(env) == {
        "tenant_id": "acme",
        "catalog_uri": env["TARGET_DATIVO_ICEBERG_CATALOG_URI"],
        "warehouse": env["TARGET_DATIVO_ICEBERG_WAREHOUSE"],
        "retry_config": {"max_retries": "0"},
        "assets": {},
    }
    bad = dativo(cwd, "tables", env={**env, "TARGET_DATIVO_ICEBERG_PARTITIONING": "[day(x)"})
    assert bad.returncode == 2 and "TARGET_DATIVO_ICEBERG_PARTITIONING must be JSON" in bad.stderr


def test_commands_with_nothing_to_show_say_so(tmp_path: Path) -> None:
    cfg = tmp_path / "dativo.json"  # run_target writes target.json
    cfg.write_text(json.dumps({"tenant_id": "acme", "catalog_uri": f"sqlite:///{tmp_path}/catalog.db"}))
    expected = {
        ("inspect",): "no tables in catalog 'dativo' (sql), branch 'acme'",
        ("tables",): "no tables in catalog 'dativo' (sql), branch 'acme'",
        ("branch", "diff"): "no tables in catalog 'dativo' (sql), branch 'acme'",
        ("state", "show"): "no committed Singer state in catalog 'dativo' (sql), branch 'acme' (0 table(s))",
    }
    for args, message in expected.items():
        out = dativo(tmp_path, *args, "--config", str(cfg))
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == message, args
    # A table with nothing on the branch yet: diff says so too.
    load_items(tmp_path, [1], branch="main")
    out = dativo(tmp_path, "branch", "diff", "--config", str(cfg))
    assert out.stdout.strip() == (
        "no differences: branch 'acme' holds nothing that main lacks (1 table(s); no table has a branch 'acme')"
    )


def test_tables_and_rejected_rows_with_their_reasons(tmp_path: Path) -> None:
    rows = [person(1), person(2, status="deleted", age=-1), person(3), person(4, email=None)]
    messages = [schema_msg("person", PERSON_PROPS, ["id"]), *rows]
    run = run_target(tmp_path, messages, assets={"person": str(PERSON)}, schema_validation_mode="warn")
    assert run.returncode == 1, run.stderr
    cfg = str(tmp_path / "target.json")

    listed = dativo(tmp_path, "tables", "--config", cfg)
    assert listed.returncode == 0, listed.stderr
    lines = {ln.split()[0]: ln.split()[1:] for ln in listed.stdout.splitlines()[3:]}
    assert lines["acme__crm.person"][:2] == ["2", "0"] and lines["acme__crm.person__rejected"][:2] == [
        "2",
        "0",
    ]
    as_json = {
        t["table"]: t for t in json.loads(dativo(tmp_path, "tables", "--config", cfg, "--json").stdout)
    }
    assert as_json["acme__crm.person__rejected"]["rejected_table"] is True
    assert as_json["acme__crm.person"]["last_run"] == run.events("job_started")[0]["run_id"]

    for name in ("person", "acme__crm.person", "acme__crm.person__rejected"):
        shown = dativo(tmp_path, "rejected", name, "--config", cfg)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("2 rejected row(s) in acme__crm.person__rejected on 'acme'")
    assert "  status: validValues: " in shown.stdout and "  age: minimum: " in shown.stdout
    assert "  email: required: " in shown.stdout
    assert '"email": "user2@example.com"' in shown.stdout  # the record itself
    records = json.loads(dativo(tmp_path, "rejected", "person", "--config", cfg, "--json").stdout)
    reasons = {
        json.loads(r["_record"])["id"]: {(e["field"], e["rule"]) for e in r["_errors"]} for r in records
    }
    assert reasons == {2: {("status", "validValues"), ("age", "minimum")}, 4: {("email", "required")}}
    one = dativo(tmp_path, "rejected", "person", "--limit", "1", "--config", cfg)
    assert "newest 1 shown" in one.stdout and one.stdout.count(" run ") == 1

    clean = dativo(tmp_path, "rejected", "person", "--branch", "main", "--config", cfg)
    assert clean.returncode == 0
    assert (
        clean.stdout.strip()
        == "no rejected rows for acme__crm.person in catalog 'dativo' (sql), branch 'main'"
    )
    missing = dativo(tmp_path, "rejected", "nosuch", "--config", cfg)
    assert missing.returncode == 2 and "no table 'nosuch' in any namespace" in missing.stderr


def test_state_show_outside_meltano_explains_the_state_id(tmp_path: Path) -> None:
    load_items(tmp_path, [1, 2])
    shown = dativo(tmp_path, "state", "show", "--config", str(tmp_path / "target.json"))
    assert shown.returncode == 0, shown.stderr
    payload = json.dumps({"singer_state": {"bookmarks": {"items": {"n": 2}}}}, sort_keys=True)
    assert (
        f"meltano state set --force '<environment>:<tap>-to-target-dativo-iceberg' '{payload}'"
        in shown.stdout
    )
    assert "state id: {environment}:{tap}-to-target-dativo-iceberg" in shown.stdout


def test_inspect_without_duckdb_names_the_pip_command(tmp_path: Path) -> None:
    load_items(tmp_path, [1])
    code = (
        "import sys; sys.modules['duckdb'] = None\n"  # as if DuckDB were not installed
        "from target_dativo_iceberg.ops.cli import main; main(sys.argv[1:])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "inspect", "--config", str(tmp_path / "target.json")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "pip install " + " ".join(f"'{p}'" for p in DUCKDB_PACKAGES) in out.stderr
    assert "Traceback" not in out.stderr


# --------------------------------------------------------------------------- Nessie (fake, tests/servers.py)


def _serve(fake: FakeNessie, ref: str, root: Path) -> None:
    """Make the fake serve, on reference `ref`, every table the target wrote to the catalog under `root`."""
    catalog = open_catalog(root)
    for ns in catalog.list_namespaces():
        for ident in catalog.list_tables(ns):
            table = catalog.load_table(ident)
            result = {
                "metadata-location": table.metadata_location,
                "metadata": table.metadata.model_dump(mode="json"),
            }
            fake.tables.setdefault(ref, {})[ident[0], ident[1]] = result


def test_nessie_commands_read_the_reference_the_target_writes(
    tmp_path: Path, fake_nessie: FakeNessie
) -> None:
    """On Nessie the target writes the tables' main on reference `acme` (the tenant's branch): every
    command opens the catalog on that reference and reads the tables' main; branch diff compares the
    reference with the `main` reference."""
    lake = tmp_path / "lake"
    load_items(lake, [1, 2, 3], branch="main")  # what the target writes on reference acme
    _serve(fake_nessie, "acme", lake)
    fake_nessie.refs["acme"] = fake_nessie.refs["main"]
    cfg = tmp_path / "nessie.json"
    settings = {
        "tenant_id": "acme",
        "catalog_type": "nessie",
        "connection": {"nessie": {"uri": f"{fake_nessie.url}/api/v1"}},
        "warehouse": str(lake / "warehouse"),
    }
    cfg.write_text(json.dumps(settings))
    where = "catalog 'dativo' (nessie), Nessie reference 'acme', table branch 'main'"

    shown = dativo(tmp_path, "inspect", "--config", str(cfg))
    assert shown.returncode == 0, shown.stderr
    assert where in shown.stdout
    line = next(ln for ln in shown.stdout.splitlines() if ln.startswith("acme.items"))
    assert line.split()[1] == "3"
    paths = [path for _, path, _ in fake_nessie.calls]
    assert "/iceberg/acme/v1/namespaces/acme/tables/items" in paths
    assert not [p for p in paths if p.startswith("/iceberg/main/")]

    committed = dativo(tmp_path, "state", "show", "--config", str(cfg))
    assert committed.returncode == 0, committed.stderr
    assert "# acme.items on main: snapshot " in committed.stdout
    assert '{"singer_state": {"bookmarks": {"items": {"n": 3}}}}' in committed.stdout

    listed = dativo(tmp_path, "tables", "--config", str(cfg))
    assert where in listed.stdout and listed.stdout.splitlines()[3].split()[:2] == ["acme.items", "3"]

    # main reference: the table does not exist there yet, so all three rows are the reference's own.
    fake_nessie.calls.clear()
    diff = dativo(tmp_path, "branch", "diff", "--config", str(cfg))
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.strip() == "acme.items: 2 snapshot(s), 3 record(s) on reference 'acme' not on main"
    assert ("GET", "/iceberg/main/v1/namespaces/acme/tables/items", None) in fake_nessie.calls
    # Once main holds the same table metadata (merged), there is nothing to show, and it says so.
    _serve(fake_nessie, "main", lake)
    same = dativo(tmp_path, "branch", "diff", "--config", str(cfg))
    assert same.stdout.strip() == (
        "no differences: Nessie reference 'acme' holds nothing that main lacks (1 table(s))"
    )
    publish = dativo(tmp_path, "branch", "publish", "--config", str(cfg))
    assert publish.returncode == 2 and "merging that reference into main with Nessie" in publish.stderr
    table = open_catalog(lake).load_table("acme.items")
    assert duckdb_rows(table, "main", "SELECT count(*) FROM t") == [(3,)]


def test_an_unrelated_meltano_project_is_passed_over(tmp_path: Path) -> None:
    """A meltano.yml above the working directory that does not name the loader is not asked."""
    load_items(tmp_path / "lake", [1])
    (tmp_path / "meltano.yml").write_text("default_environment: dev\nplugins: {}\n")
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {
        "TARGET_DATIVO_ICEBERG_TENANT_ID": "acme",
        "TARGET_DATIVO_ICEBERG_CATALOG_URI": f"sqlite:///{tmp_path}/lake/catalog.db",
        "TARGET_DATIVO_ICEBERG_WAREHOUSE": str(tmp_path / "lake" / "warehouse"),
    }
    shown = dativo(cwd, "inspect", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "settings from environment variables" in shown.stderr and "acme.items" in shown.stdout
    forced = dativo(cwd, "inspect", "--meltano", env=env)
    assert forced.returncode == 2 and "meltano config --unsafe print" in forced.stderr
    nowhere = dativo(tmp_path.parent, "tables", "--meltano", env=env)
    assert nowhere.returncode == 2 and "--meltano: no meltano.yml in" in nowhere.stderr
