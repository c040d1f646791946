"""The hot path (Arrow-parsed RECORD runs) lands exactly what the SDK's per-record path lands."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import io
import json
import string
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import BIN, open_catalog, record, run_target, schema_msg, singer_lines, state, target_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows
from target_dativo_iceberg.target import TargetDativoIceberg

#: Contract column type → (Singer property, value strategy of valid and a few invalid values).
TEXT = st.text(alphabet=string.ascii_letters + "äöü€😀 -_'\"\\/", max_size=12)
BIG = st.sampled_from([2**63 - 1, -(2**63), 2**63, 10**20])
NAIVE = st.datetimes(min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(2200, 1, 1))
OFFSET = st.sampled_from(["Z", "+00:00", "+05:30", "-08:00"])
STAMP = st.one_of(
    NAIVE.map(lambda d: d.isoformat()),
    st.tuples(NAIVE, OFFSET).map(lambda p: p[0].isoformat() + p[1]),
)
NESTED = st.recursive(
    st.one_of(st.none(), st.integers(-5, 5), TEXT, st.booleans()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)


def _weighted(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly valid values (so whole batches stay clean and take the hot path), some nulls and bad ones."""
    return st.one_of(*[valid] * 12, st.none(), invalid)


COLUMNS: dict[str, tuple[dict[str, Any], st.SearchStrategy]] = {
    "bigint": ({"type": ["integer", "null"]}, _weighted(st.integers(-(2**62), 2**62), BIG)),
    "int": ({"type": ["integer", "null"]}, _weighted(st.integers(-1000, 1000), st.just("12x"))),
    "string": ({"type": ["string", "null"]}, _weighted(TEXT, st.integers(0, 9))),
    "double": (
        {"type": ["number", "null"]},
        _weighted(st.floats(-1e12, 1e12, allow_nan=False).map(lambda f: round(f, 6)), st.just("n/a")),
    ),
    "decimal(12,2)": (
        {"type": ["number", "null"]},
        _weighted(
            st.decimals(-(10**9), 10**9, places=2, allow_nan=False, allow_infinity=False),
            st.just(decimal.Decimal("1.234")),
        ),
    ),
    "boolean": ({"type": ["boolean", "null"]}, _weighted(st.booleans(), st.just("maybe"))),
    "timestamp": ({"type": ["string", "null"], "format": "date-time"}, _weighted(STAMP, st.just("later"))),
    "date": (
        {"type": ["string", "null"], "format": "date"},
        _weighted(st.dates().map(lambda d: d.isoformat()), st.just("2024-13-01")),
    ),
    "object": ({}, _weighted(st.dictionaries(TEXT, NESTED, max_size=3), st.lists(NESTED, max_size=3))),
    "array": ({}, _weighted(st.lists(NESTED, max_size=3), st.dictionaries(TEXT, NESTED, max_size=3))),
}


def _contract(path: Path, types: list[str], required: list[bool]) -> None:
    columns = [{"name": "rid", "type": "bigint", "required": True, "primary_key": True}]
    columns += [
        {"name": f"c{i}", "type": kind, "required": req}
        for i, (kind, req) in enumerate(zip(types, required, strict=True))
    ]
    path.write_text(
        yaml.safe_dump(
            {
                "$schema": "schemas/odcs/dativo-odcs-3.0.2-extended.schema.json",
                "apiVersion": "v3.0.2",
                "kind": "DataContract",
                "id": "0b6f3c4e-0000-4000-8000-000000000001",
                "name": "things",
                "version": "1.0",
                "domain": "lab",
                "dataProduct": "hot",
                "schema": columns,
            }
        )
    )


def _messages(types: list[str], rows: list[list[Any]]) -> str:
    props = {"rid": {"type": ["integer"]}}
    props.update({f"c{i}": COLUMNS[kind][0] for i, kind in enumerate(types)})
    out = [schema_msg("things", props, ["rid"])]
    for rid, values in enumerate(rows, start=1):
        out.append(record("things", rid=rid, **{f"c{i}": v for i, v in enumerate(values)}))
        if rid % 9 == 0:
            out.append(state({"bookmarks": {"things": {"rid": rid}}}))
    return (
        singer_lines(out) if not any(isinstance(v, decimal.Decimal) for r in rows for v in r) else _dump(out)
    )


def _dump(messages: list[dict[str, Any]]) -> str:
    """JSON with decimals written as bare numbers, digit for digit."""

    def default(value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            return f"@@D{value}@@"
        raise TypeError(type(value))

    text = "".join(json.dumps(m, default=default) + "\n" for m in messages)
    return text.replace('"@@D', "").replace('@@"', "")


def _land(root: Path, contract: Path, text: str, hot: bool) -> tuple[int, list, list, str]:
    """Run the target in-process; (exit code, table rows, rejected rows, STATE lines)."""
    config = target_config(
        root,
        assets={"things": str(contract)},
        schema_validation_mode="warn",
        hot_path=hot,
        batch_size_rows=4,
    )
    target = TargetDativoIceberg(config=config, validate_config=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = target.run(io.StringIO(text))
    catalog = open_catalog(root)
    table = catalog.load_table("acme__lab.things")
    head = table.snapshot_by_name("acme")
    rows = table.scan(snapshot_id=head.snapshot_id).to_arrow().sort_by("rid").to_pylist() if head else []
    rejected: list = []
    if catalog.table_exists("acme__lab.things__rejected"):
        data = catalog.load_table("acme__lab.things__rejected").scan().to_arrow()
        rejected = sorted((r["_record"], json.dumps(r["_errors"])) for r in data.to_pylist())
    return code, rows, rejected, out.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hot_path_lands_what_the_record_path_lands(
    tmp_path_factory: pytest.TempPathFactory, data: Any
) -> None:
    types = data.draw(st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=6), label="types")
    required = data.draw(st.lists(st.booleans(), min_size=len(types), max_size=len(types)), label="required")
    rows = data.draw(
        st.lists(st.tuples(*[COLUMNS[k][1] for k in types]).map(list), min_size=1, max_size=30), label="rows"
    )
    root = tmp_path_factory.mktemp("hot")
    contract = root / "things.yaml"
    _contract(contract, types, required)
    text = _messages(types, rows)
    hot = _land(root / "hot", contract, text, hot=True)
    slow = _land(root / "slow", contract, text, hot=False)
    assert hot == slow


def test_all_null_lists_land_like_the_record_path(tmp_path: Path) -> None:
    """A run whose array values hold only nulls parses to list<null> columns that pyarrow cannot
    combine (ArrowIndexError): that run takes the record path, with the same outcome."""
    contract = tmp_path / "things.yaml"
    _contract(contract, ["array", "array"], [False, False])
    text = _messages(["array", "array"], [[None, [None, None]]])
    hot = _land(tmp_path / "hot", contract, text, hot=True)
    assert hot == _land(tmp_path / "slow", contract, text, hot=False)
    assert hot[0] == 0 and len(hot[1]) == 1


def test_contract_stream_takes_the_hot_path_and_lands_typed_rows(tmp_path: Path) -> None:
    contract = tmp_path / "things.yaml"
    types = ["bigint", "string", "decimal(12,2)", "timestamp", "boolean", "double"]
    _contract(contract, types, [True] * len(types))
    rows = [
        [
            i,
            f"name-{i}-ü",
            decimal.Decimal(f"{i}.25"),
            f"2024-05-0{1 + i % 9}T10:00:00+02:00",
            i % 2 == 0,
            i / 4,
        ]
        for i in range(1, 101)
    ]
    run = run_target(tmp_path, _messages(types, rows), assets={"things": str(contract)})
    assert run.returncode == 0, run.stderr
    assert [e["path"] for e in run.events("record_path")] == ["hot"]
    assert {e["path"] for e in run.events("batch_written")} == {"hot"}
    assert run.states[-1] == {"bookmarks": {"things": {"rid": 99}}}
    table = open_catalog(tmp_path).load_table("acme__lab.things")
    head = table.snapshot_by_name("acme")
    landed = table.scan(snapshot_id=head.snapshot_id).to_arrow().sort_by("rid")
    assert landed.num_rows == 100
    assert landed.column("c2").to_pylist()[:2] == [decimal.Decimal("1.25"), decimal.Decimal("2.25")]
    first = landed.column("c3")[0].as_py()
    assert first == datetime.datetime(2024, 5, 2, 8, 0, tzinfo=datetime.timezone.utc)
    count = duckdb_rows(table, "acme", "SELECT count(*), sum(c0), min(c1) FROM t WHERE c4")
    assert count == [(50, sum(range(2, 101, 2)), "name-10-ü")]


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"hot_path": False}, "hot_path is false"),
        ({"stream_maps": {"things": {"extra": "'x'"}}}, "stream_maps apply to the stream"),
    ],
)
def test_per_record_features_take_the_record_path_and_say_so(
    tmp_path: Path, config: dict[str, Any], reason: str
) -> None:
    contract = tmp_path / "things.yaml"
    _contract(contract, ["string"], [False])
    run = run_target(
        tmp_path,
        _messages(["string"], [["a"], ["b"]]),
        assets={"things": str(contract)},
        schema_validation_mode="warn",
        **config,
    )
    assert run.returncode in (0, 1), run.stderr
    events = run.events("record_path")
    assert events and events[-1]["path"] == "record" and events[-1]["reason"] == reason


def test_stream_without_contract_takes_the_hot_path(tmp_path: Path) -> None:
    run = run_target(tmp_path, [schema_msg("plain", {"id": {"type": "integer"}}), record("plain", id=1)])
    assert run.returncode == 0, run.stderr
    [event] = run.events("record_path")
    assert event["path"] == "hot" and event.get("reason") is None


def test_violation_in_a_hot_batch_is_reported_like_the_record_path(tmp_path: Path) -> None:
    contract = tmp_path / "things.yaml"
    _contract(contract, ["int"], [True])
    rows = [[i] for i in range(1, 20)]
    rows[12] = ["12x"]
    run = run_target(
        tmp_path, _messages(["int"], rows), assets={"things": str(contract)}, batch_size_rows=100
    )
    assert run.returncode == 2
    assert "stream 'things'" in run.stderr and "records 1-19" in run.stderr
    assert "type" in run.stderr and "c0" in run.stderr
    assert run.stdout == ""  # nothing committed, no STATE


def test_a_silent_tap_still_gets_its_batch_committed_and_state_printed(tmp_path: Path) -> None:
    """`max_batch_age_seconds` holds while no input arrives: the target commits and prints the STATE
    while the tap is still running (the SDK only checks the age when a record arrives)."""
    contract = tmp_path / "things.yaml"
    _contract(contract, ["string"], [True])
    config = tmp_path / "target.json"
    config.write_text(
        json.dumps(target_config(tmp_path, assets={"things": str(contract)}, max_batch_age_seconds=1))
    )
    proc = subprocess.Popen(
        [str(BIN / "target-dativo-iceberg"), "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(_messages(["string"], [[f"v{i}"] for i in range(9)]).encode())
        proc.stdin.flush()
        started = time.monotonic()
        line = proc.stdout.readline()  # blocks until the target prints a STATE; stdin stays open
        waited = time.monotonic() - started
        assert json.loads(line) == {"bookmarks": {"things": {"rid": 9}}}
        assert waited < 60
        table = open_catalog(tmp_path).load_table("acme__lab.things")
        assert len(pyiceberg_rows(table, "acme")) == 9
        proc.stdin.write(singer_lines([record("things", rid=10, c0="late")]).encode())
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)
    assert proc.returncode == 0
    assert len(pyiceberg_rows(open_catalog(tmp_path).load_table("acme__lab.things"), "acme")) == 10


def test_interleaved_streams_hot_and_record_path_land_in_order(tmp_path: Path) -> None:
    """One RECORD run mixing a contract stream (hot) and a stream without contract whose schema
    keeps it on the record path."""
    contract = tmp_path / "things.yaml"
    _contract(contract, ["string"], [True])
    messages: list[dict[str, Any]] = [
        schema_msg("things", {"rid": {"type": "integer"}, "c0": {"type": "string"}}, ["rid"]),
        schema_msg(
            "plain", {"id": {"type": "integer"}, "note": {"type": ["string", "null"]}, "x": {}}, ["id"]
        ),
    ]
    for i in range(1, 301):
        messages.append(record("things", rid=i, c0=f"t{i}"))
        if i % 3 == 0:
            messages.append(record("plain", id=i, note="ü" * (i % 5)))
        if i % 100 == 0:
            messages.append(state({"bookmarks": {"n": i}}))
    run = run_target(tmp_path, messages, assets={"things": str(contract)}, batch_size_rows=70)
    assert run.returncode == 0, run.stderr[-3000:]
    assert {e["stream"]: e["path"] for e in run.events("record_path")} == {"things": "hot", "plain": "record"}
    assert run.states[-1] == {"bookmarks": {"n": 300}}
    catalog = open_catalog(tmp_path)
    things = catalog.load_table("acme__lab.things")
    plain = catalog.load_table("acme.plain")
    assert sorted(r["rid"] for r in pyiceberg_rows(things, "acme")) == list(range(1, 301))
    assert duckdb_rows(plain, "acme", "SELECT count(*), sum(id), max(length(note)) FROM t") == [
        (100, sum(range(3, 301, 3)), 4)
    ]


@pytest.mark.parametrize("hot", [True, False])
def test_duplicate_primary_keys_within_and_across_batches(tmp_path: Path, hot: bool) -> None:
    """append-only: uniqueness holds for the run on both paths: a key repeated in the same batch or
    a later one is rejected (warn) with rule primary_key; only its first record lands."""
    contract = tmp_path / "things.yaml"
    _contract(contract, ["string"], [True])
    rids = [*range(1, 9), 3, *range(9, 15), 5, 14]  # 3 and 14 repeat within a batch; 5 across batches
    messages = [schema_msg("things", {"rid": {"type": "integer"}, "c0": {"type": "string"}}, ["rid"])]
    messages += [record("things", rid=rid, c0=f"v{n}") for n, rid in enumerate(rids)]
    config = {
        "assets": {"things": str(contract)},
        "batch_size_rows": 9,
        "hot_path": hot,
        "load_method": "append-only",
    }
    run = run_target(tmp_path, messages, schema_validation_mode="warn", **config)
    assert run.returncode == 1, run.stderr[-3000:]
    catalog = open_catalog(tmp_path)
    landed = pyiceberg_rows(catalog.load_table("acme__lab.things"), "acme")
    assert sorted(r["rid"] for r in landed) == list(range(1, 15))
    assert {r["rid"]: r["c0"] for r in landed}[3] == "v2"  # the first record of the key
    rejected = pyiceberg_rows(catalog.load_table("acme__lab.things__rejected"), "acme")
    assert sorted(json.loads(r["_record"])["rid"] for r in rejected) == [3, 5, 14]
    assert {e["rule"] for r in rejected for e in r["_errors"]} == {"primary_key"}
    strict = run_target(tmp_path / "strict", messages, **config)
    assert strict.returncode == 2 and "duplicate" in strict.stderr and strict.stdout == ""
