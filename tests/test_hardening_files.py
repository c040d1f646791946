"""Nothing is read or written outside the configured roots: BATCH manifest entries are read only as
regular files under `batch_allowed_roots` (or from s3:// through `connection.s3`) and within
`batch_max_file_mb`; contract fields that name directories of a table's location cannot leave the
warehouse. Every refusal is a real target run: exit 2, a message naming what was refused and what is
allowed, no rows from the refused input, no STATE after it."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import PERSON_PROPS, Run, open_catalog, person, run_target, schema_msg, state

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.iceberg.paths import location_within, segment_problem, table_location
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows
from target_dativo_iceberg.settings import Settings

pytest_plugins = ["servers"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONTRACT = EXAMPLES / "contracts" / "person.odcs.yaml"
ASSETS = {"person": str(CONTRACT)}
PARQUET = {"format": "parquet", "compression": "none"}
GOOD_IDS = [1, 2, 3]
BAD_IDS = [100, 101, 102]  # rows of files that must never be read


def people_parquet(path: Path, ids: list[int]) -> Path:
    """A Parquet batch file of contract-valid people, as a tap's batch_config would write it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([person(i)["record"] for i in ids]), path)
    return path


def batch(entry: str, encoding: dict[str, Any] = PARQUET) -> dict[str, Any]:
    """A BATCH message for the person stream with one manifest entry."""
    return {"type": "BATCH", "stream": "person", "encoding": encoding, "manifest": [entry]}


def run_batches(root: Path, good: str, bad_entry: str, **config: Any) -> Run:
    """Two runs in `root` (the working directory): a good batch file and STATE 1 land (checked);
    then the batch under test and STATE 2 (returned)."""
    first = run_target(
        root,
        [schema_msg("person", PERSON_PROPS, ["id"]), batch(good), state({"v": 1})],
        assets=ASSETS,
        **config,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.states == [{"v": 1}] and landed_ids(root) == GOOD_IDS
    messages = [schema_msg("person", PERSON_PROPS, ["id"]), batch(bad_entry), state({"v": 2})]
    return run_target(root, messages, assets=ASSETS, **config)


def landed_ids(root: Path) -> list[int]:
    """Ids on the tenant branch of crm.person (none if the table was never created)."""
    catalog = open_catalog(root)
    if not catalog.table_exists("acme__crm.person"):
        return []
    return sorted(r["id"] for r in pyiceberg_rows(catalog.load_table("acme__crm.person"), "acme"))


def assert_refused(run: Run, root: Path, *expected: str) -> None:
    """Exit 2 naming stream and `expected`; only the earlier good rows in the table; no STATE."""
    assert_refused_after(run, root, GOOD_IDS, *expected)


def assert_refused_after(run: Run, root: Path, ids: list[int], *expected: str) -> None:
    """`assert_refused` with the table holding `ids` from earlier runs."""
    assert run.returncode == 2, run.stderr[-3000:]
    assert "stream 'person'" in run.stderr
    for text in expected:
        assert text in run.stderr, (text, run.stderr[-3000:])
    assert run.states == []
    assert landed_ids(root) == ids


def allowed_text(*roots: Path | str) -> str:
    """How a refusal lists the allowed roots."""
    return "batch_allowed_roots (" + ", ".join(os.path.realpath(r) for r in roots) + ")"


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """run/ (working dir, catalog, warehouse), allowed/ (the batch root), outside/ (a valid file that
    must never be read), and the good file inside the root."""
    out = {name: tmp_path / name for name in ("run", "allowed", "outside")}
    for path in out.values():
        path.mkdir()
    out["good"] = people_parquet(out["allowed"] / "good.parquet", GOOD_IDS)
    out["secret"] = people_parquet(out["outside"] / "people.parquet", BAD_IDS)
    return out


def test_file_uri_outside_the_default_roots_is_refused(dirs: dict[str, Path]) -> None:
    """/etc/passwd is outside the default roots (working directory, temp directory)."""
    run = run_batches(dirs["run"], dirs["good"].as_uri(), "file:///etc/passwd")
    assert_refused(
        run,
        dirs["run"],
        "'file:///etc/passwd' resolves to /etc/passwd, outside the allowed roots",
        allowed_text(dirs["run"], tempfile.gettempdir()),
    )


def test_bare_absolute_path_outside_the_roots_is_refused(dirs: dict[str, Path]) -> None:
    run = run_batches(dirs["run"], dirs["good"].as_uri(), "/etc/passwd")
    assert_refused(run, dirs["run"], "'/etc/passwd' resolves to /etc/passwd, outside the allowed roots")


@pytest.mark.parametrize("form", ["relative", "file-uri"])
def test_dotdot_escaping_the_working_directory_is_refused(dirs: dict[str, Path], form: str) -> None:
    """`batch_allowed_roots: ["."]` is the working directory; `..` out of it is resolved first."""
    entry = "../outside/people.parquet"
    if form == "file-uri":
        entry = f"file://{dirs['run']}/../outside/people.parquet"
    good = people_parquet(dirs["run"] / "good.parquet", GOOD_IDS)
    run = run_batches(dirs["run"], good.as_uri(), entry, batch_allowed_roots=["."])
    assert_refused(
        run,
        dirs["run"],
        f"{entry!r} resolves to {os.path.realpath(dirs['secret'])}, outside the allowed roots",
        allowed_text(dirs["run"]),
    )


def test_symlink_inside_the_root_pointing_outside_is_refused(dirs: dict[str, Path]) -> None:
    link = dirs["allowed"] / "link.parquet"
    link.symlink_to(dirs["secret"])
    run = run_batches(
        dirs["run"], dirs["good"].as_uri(), link.as_uri(), batch_allowed_roots=[str(dirs["allowed"])]
    )
    assert_refused(
        run,
        dirs["run"],
        f"resolves to {os.path.realpath(dirs['secret'])}, outside the allowed roots",
        allowed_text(dirs["allowed"]),
    )


def test_a_device_is_refused_even_under_an_allowed_root(dirs: dict[str, Path]) -> None:
    """/dev/zero used to be read until memory ran out; it is not a regular file."""
    roots = [str(dirs["allowed"]), "/dev"]
    run = run_batches(dirs["run"], dirs["good"].as_uri(), "file:///dev/zero", batch_allowed_roots=roots)
    assert_refused(run, dirs["run"], "'file:///dev/zero' is a character device", allowed_text(*roots))


@pytest.mark.parametrize("kind", ["FIFO", "directory"])
def test_fifo_and_directory_are_refused(dirs: dict[str, Path], kind: str) -> None:
    """A FIFO would block the reader (no writer); a directory is no file. Neither is opened."""
    special = dirs["allowed"] / "special"
    if kind == "FIFO":
        os.mkfifo(special)
    else:
        special.mkdir()
    roots = [str(dirs["allowed"])]
    run = run_batches(dirs["run"], dirs["good"].as_uri(), str(special), batch_allowed_roots=roots)
    assert_refused(run, dirs["run"], f"{str(special)!r} is a {kind}", allowed_text(dirs["allowed"]))


def test_other_schemes_are_refused(dirs: dict[str, Path]) -> None:
    """Only local paths and s3:// are read: an http:// entry would make the target fetch URLs."""
    run = run_batches(dirs["run"], dirs["good"].as_uri(), "http://127.0.0.1:9/people.parquet")
    assert_refused(run, dirs["run"], "uses scheme 'http'", "or as s3:// objects")


def test_a_file_over_batch_max_file_mb_is_refused(dirs: dict[str, Path]) -> None:
    big = people_parquet(dirs["allowed"] / "big.parquet", list(range(100, 1100)))
    assert big.stat().st_size > 10_000 > dirs["good"].stat().st_size
    run = run_batches(dirs["run"], dirs["good"].as_uri(), big.as_uri(), batch_max_file_mb=0.01)
    size = big.stat().st_size
    assert_refused(
        run,
        dirs["run"],
        f"BATCH file {big.as_uri()!r} is {size} bytes, over batch_max_file_mb (0.01 MB = 10485 bytes)",
    )


def test_gzip_jsonl_is_bounded_by_its_uncompressed_size(dirs: dict[str, Path]) -> None:
    """A small gzip file must not expand past the bound in memory."""
    lines = "".join(json.dumps(person(i)["record"]) + "\n" for i in range(100, 400)).encode()
    packed = dirs["allowed"] / "people.jsonl.gz"
    packed.write_bytes(gzip.compress(lines))
    assert packed.stat().st_size < 10_000 < len(lines)
    encoding = {"format": "jsonl", "compression": "gzip"}
    messages = [schema_msg("person", PERSON_PROPS, ["id"]), batch(packed.as_uri(), encoding), state({"v": 2})]
    run = run_target(dirs["run"], messages, assets=ASSETS, batch_max_file_mb=0.01)
    assert run.returncode == 2, run.stderr[-3000:]
    assert f"BATCH file {packed.as_uri()!r} is more than 10485 uncompressed bytes" in run.stderr
    assert run.states == [] and landed_ids(dirs["run"]) == []


def test_default_roots_are_the_working_and_temp_directories(dirs: dict[str, Path], tmp_path: Path) -> None:
    """Without the setting, files in the working directory and in the temp directory (TMPDIR) are
    read and a file elsewhere is not."""
    temp = tmp_path / "temp"
    env = {"TMPDIR": str(temp)}
    in_temp = people_parquet(temp / "good.parquet", GOOD_IDS)
    people_parquet(dirs["run"] / "more.parquet", [4, 5])
    messages = [schema_msg("person", PERSON_PROPS, ["id"]), batch(str(in_temp)), batch("more.parquet")]
    run = run_target(dirs["run"], [*messages, state({"v": 1})], env=env, assets=ASSETS)
    assert run.returncode == 0, run.stderr[-3000:]
    assert landed_ids(dirs["run"]) == [1, 2, 3, 4, 5]

    elsewhere = dirs["allowed"] / "good.parquet"
    run = run_target(
        dirs["run"], [messages[0], batch(str(elsewhere)), state({"v": 2})], env=env, assets=ASSETS
    )
    assert_refused_after(
        run, dirs["run"], [1, 2, 3, 4, 5], "outside the allowed roots", allowed_text(dirs["run"], temp)
    )


def test_files_under_a_configured_root_land(dirs: dict[str, Path], tmp_path: Path) -> None:
    """A root outside the working and temp directories, named in batch_allowed_roots, is read
    (Parquet and gzip JSONL); STATE follows the commits."""
    env = {"TMPDIR": str(tmp_path / "run")}  # neither default root holds allowed/
    lines = "".join(json.dumps(person(i)["record"]) + "\n" for i in (4, 5)).encode()
    packed = dirs["allowed"] / "more.jsonl.gz"
    packed.write_bytes(gzip.compress(lines))
    messages = [
        schema_msg("person", PERSON_PROPS, ["id"]),
        batch(dirs["good"].as_uri()),
        state({"bookmarks": {"person": {"v": 1}}}),
        batch(str(packed), {"format": "jsonl", "compression": "gzip"}),
        state({"bookmarks": {"person": {"v": 2}}}),
    ]
    roots = [str(dirs["allowed"])]
    run = run_target(dirs["run"], messages, env=env, assets=ASSETS, batch_allowed_roots=roots)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.states[-1] == {"bookmarks": {"person": {"v": 2}}}
    assert landed_ids(dirs["run"]) == [1, 2, 3, 4, 5]
    table = open_catalog(dirs["run"]).load_table("acme__crm.person")
    assert duckdb_rows(table, "acme", "SELECT count(*), max(id) FROM t") == [(5, 5)]


@pytest.fixture
def s3_bucket(seaweedfs: Any) -> str:
    """A fresh, empty bucket on the session's SeaweedFS."""
    seaweedfs.start()
    name = f"batch-{uuid.uuid4().hex[:12]}"
    seaweedfs.s3_client().create_bucket(Bucket=name)
    return name


def test_s3_batch_files_are_read_through_connection_s3(
    dirs: dict[str, Path], seaweedfs: Any, s3_bucket: str
) -> None:
    """s3:// entries are read with connection.s3 (no root applies), within batch_max_file_mb."""
    client = seaweedfs.s3_client()
    client.put_object(Bucket=s3_bucket, Key="b/good.parquet", Body=dirs["good"].read_bytes())
    big = people_parquet(dirs["outside"] / "big.parquet", list(range(100, 1100)))
    client.put_object(Bucket=s3_bucket, Key="b/big.parquet", Body=big.read_bytes())
    s3 = {"connection": {"s3": seaweedfs.s3_connection()}, "batch_max_file_mb": 0.01}

    good = f"s3://{s3_bucket}/b/good.parquet"

    local = dirs["good"].as_uri()
    run = run_batches(dirs["run"], good, local, batch_allowed_roots=[], **s3)  # no local root at all
    assert_refused(run, dirs["run"], f"{local!r} resolves to", "batch_allowed_roots (none)")

    root = dirs["run"].parent / "run2"
    run = run_batches(root, good, f"s3://{s3_bucket}/b/big.parquet", **s3)
    assert_refused(run, root, f"'s3://{s3_bucket}/b/big.parquet' is {big.stat().st_size} bytes, over")


# ------------------------------------------------------------------ contracts

CONTRACT_TEMPLATE = """
apiVersion: v3.0.2
kind: DataContract
id: 0b6f3c4e-0000-4000-8000-0000000000e1
name: orders
version: 1.0.0
status: active
domain: {domain}
dataProduct: {product}
schema:
  - name: orders
    physicalName: {physical}
    properties:
      - {{name: id, logicalType: integer, physicalType: bigint, required: true, primaryKey: true}}
"""


def tree(path: Path) -> set[Path]:
    """Every path below `path`."""
    return set(path.rglob("*"))


def run_orders(root: Path, contract: Path) -> Run:
    messages = [
        schema_msg("orders", {"id": {"type": "integer"}}, ["id"]),
        {"type": "RECORD", "stream": "orders", "record": {"id": 1}},
        state({"v": 1}),
    ]
    return run_target(root, messages, assets={"orders": str(contract)})


@pytest.mark.parametrize(
    ("field", "values", "location", "problem"),
    [
        ("domain", {"domain": "../../x"}, "domain (line 8)", "'../../x' contains '/'"),
        ("dataProduct", {"product": "a/b"}, "dataProduct (line 9)", "'a/b' contains '/'"),
        (
            "physicalName",
            {"physical": "'..'"},
            "schema[0].physicalName (line 12)",
            "'..' is the current or parent",
        ),
        ("physicalName", {"physical": "'x#y'"}, "schema[0].physicalName (line 12)", "'x#y' contains '#'"),
    ],
)
def test_contract_fields_that_would_leave_the_warehouse_are_refused(
    tmp_path: Path, field: str, values: dict[str, str], location: str, problem: str
) -> None:
    contract = tmp_path / "orders.yaml"
    contract.write_text(
        CONTRACT_TEMPLATE.format(**{"domain": "sales", "product": "shop", "physical": "orders", **values})
    )
    root = tmp_path / "run"
    around = set(tmp_path.parent.iterdir())
    run = run_orders(root, contract)
    assert run.returncode == 2, run.stderr[-3000:]
    assert f"contract {contract}: {location}: {problem}" in run.stderr
    assert "single safe path segment" in run.stderr
    assert run.states == []
    assert set(tmp_path.parent.iterdir()) == around  # nothing next to this test's directory
    # besides the run ledger's table (warehouse/_dativo: the failed run is recorded)
    assert {p.name for p in tree(tmp_path) if "_dativo" not in p.parts} <= {
        "orders.yaml",
        "run",
        "target.json",
        "catalog.db",
        "warehouse",
    }
    assert not (tmp_path / "x").exists()


def test_flat_contract_name_is_checked_too(tmp_path: Path) -> None:
    contract = tmp_path / "flat.yaml"
    contract.write_text(
        "$schema: schemas/odcs/dativo-odcs-3.0.2-extended.schema.json\napiVersion: v3.0.2\nkind: DataContract\n"
        "id: f1\nname: '..'\nversion: '1.0'\ndomain: sales\ndataProduct: shop\n"
        "schema:\n  - {name: id, type: bigint, required: true}\n"
    )
    run = run_orders(tmp_path / "run", contract)
    assert run.returncode == 2
    assert f"contract {contract}: name (line 5): '..' is the current or parent directory" in run.stderr


def test_a_normal_contract_lands_under_domain_and_data_product(tmp_path: Path) -> None:
    contract = tmp_path / "orders.yaml"
    contract.write_text(CONTRACT_TEMPLATE.format(domain="sales", product="web shop", physical="Web Orders"))
    root = tmp_path / "run"
    run = run_orders(root, contract)
    assert run.returncode == 0, run.stderr[-3000:]
    table = open_catalog(root).load_table("acme__sales.web_orders")
    warehouse = root / "warehouse"
    assert table.location() == f"{warehouse.as_uri()}/acme/sales/web shop/web_orders"  # tenant acme
    assert [r["id"] for r in pyiceberg_rows(table, "acme")] == [1]
    data = [
        p for p in tree(tmp_path) if p.suffix == ".parquet" and "_dativo" not in p.parts
    ]  # not the ledger
    assert data and all(
        p.is_relative_to(warehouse / "acme" / "sales" / "web shop" / "web_orders" / "data") for p in data
    )
    outside = [p for p in tree(tmp_path) if p.is_file() and not p.is_relative_to(warehouse)]
    assert {p.name for p in outside} == {"orders.yaml", "target.json", "catalog.db"}


def test_table_location_must_stay_below_the_warehouse(tmp_path: Path) -> None:
    """The second line of defence, behind the contract check: whatever the parts, the location
    is compared with the warehouse after normalizing (local: real paths; s3: normalized keys)."""
    db = f"sqlite:///{tmp_path}/catalog.db"
    local = Settings.from_config({"warehouse": str(tmp_path / "wh"), "catalog_uri": db})
    assert table_location(local, ("a", "b", "t"), "test") == f"{(tmp_path / 'wh').as_uri()}/a/b/t"
    with pytest.raises(
        ConfigError, match=r"^contract c\.yaml: table location .* would not be below the warehouse"
    ):
        table_location(local, ("..", "..", "t"), "contract c.yaml")
    (tmp_path / "wh").mkdir(exist_ok=True)  # catalog_load_properties made it
    (tmp_path / "wh" / "a").symlink_to(tmp_path)
    with pytest.raises(ConfigError):
        table_location(local, ("a", "b", "t"), "contract c.yaml")  # a symlink in the warehouse leads out

    s3 = Settings.from_config({"warehouse": "s3://bucket/wh", "catalog_uri": db})
    assert table_location(s3, ("a", "b", "t"), "x") == "s3://bucket/wh/a/b/t"
    with pytest.raises(ConfigError):
        table_location(s3, ("..", "wh2", "t"), "x")
    rest = Settings.from_config({"warehouse": "s3://bucket/wh", "catalog_type": "rest"})
    assert table_location(rest, ("..", "t"), "x") is None  # REST catalogs choose locations themselves

    assert location_within("s3://bucket/wh/a", "s3://bucket/wh")
    assert not location_within("s3://bucket/wh", "s3://bucket/wh")
    assert not location_within("s3://other/wh/a", "s3://bucket/wh")
    assert not location_within("s3://bucket/wh2/a", "s3://bucket/wh")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("sales", None),
        ("Web Clicks", None),
        ("v1.2", None),
        ("", "is empty"),
        ("  ", "is empty"),
        (".", "is the current or parent directory"),
        ("a\\b", "contains '\\\\'"),
        ("a\x00b", "contains a control character"),
        ("a\nb", "contains a control character"),
        ("50%", "contains '%'"),
        ("a?b", "contains '?'"),
        ("é" * 128, "is longer than 255 bytes"),
        (7, "must be a string, got int"),
    ],
)
def test_the_path_segment_rule(value: object, problem: str | None) -> None:
    assert segment_problem(value) == problem
