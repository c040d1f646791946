"""`flattening_enabled` streams on the columnar path land exactly what the SDK's per-record flattening lands.

The columnar path flattens the Arrow columns parsed from nested records (`intake/flattening.py`); the
per-record path (`hot_path: false`) is the SDK's mapper flattening each record. Each comparison runs the
target on the same input both ways and compares exit code, STATE lines and the rows read back.
"""

from __future__ import annotations

import contextlib
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import open_catalog, record, run_target, schema_msg, state, target_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_columnar_no_contract import _input

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows
from target_dativo_iceberg.target import TargetDativoIceberg

FLAT = {"flattening_enabled": True}

# ---------------------------------------------------------------- generated nested schemas and records

_LEAVES: list[tuple[dict[str, Any], st.SearchStrategy]] = [
    ({"type": ["integer", "null"]}, st.integers(-3, 3)),
    ({"type": ["number", "null"]}, st.sampled_from([Decimal("1.50"), 2, Decimal("-0.10"), Decimal("1e3")])),
    ({"type": ["string", "null"]}, st.sampled_from(["a", "é", "", "2025-01-01", "2025-01-01T10:00:00Z"])),
    ({"type": ["boolean", "null"]}, st.booleans()),
    ({"type": "string"}, st.text(alphabet='ab"\\é', max_size=3)),
    ({"type": ["string", "null"], "format": "date-time"}, st.sampled_from(["2025-06-01T12:30:00+02:00"])),
    (
        {"type": ["object", "null"]},
        st.fixed_dictionaries({}, optional={"k": st.integers(0, 2), "z": st.none()}),
    ),
]
_NAMES = st.lists(st.sampled_from(["a", "b", "c_d", "x"]), min_size=1, max_size=3, unique=True)


@st.composite
def _node(draw: Any, depth: int) -> tuple[dict[str, Any], st.SearchStrategy]:
    """(property schema, its values): a leaf, an object (up to 3 levels) or an array."""
    kinds = (
        ["leaf", "object", "object", "array", "array"] if depth == 1 else ["leaf", "leaf", "object", "array"]
    )
    kind = draw(st.sampled_from(kinds if depth < 3 else ["leaf"]))
    if kind == "leaf":
        return draw(st.sampled_from(_LEAVES))
    if kind == "array":
        items, values = draw(_node(depth + 1))
        nullable = draw(st.booleans())
        prop = {"type": ["array", "null"] if nullable else "array", "items": items}
        return prop, st.one_of(st.none(), *[st.lists(values, max_size=3)] * 3)
    children = {name: draw(_node(depth + 1)) for name in draw(_NAMES)}
    nullable = draw(st.booleans())
    prop = {
        "type": ["object", "null"] if nullable else "object",
        "properties": {name: p for name, (p, _v) in children.items()},
    }
    value = st.fixed_dictionaries({}, optional={name: v for name, (_p, v) in children.items()})
    return prop, st.one_of(st.none(), *[value] * 10, st.just("not an object"))


@st.composite
def nested_streams(draw: Any) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(schema, records, flattening settings)."""
    names = st.lists(st.sampled_from(["a", "b", "c_d", "x"]), min_size=2, max_size=4, unique=True)
    columns = {name: draw(_node(1)) for name in draw(names)}
    props = {"id": {"type": "integer"}, **{name: p for name, (p, _v) in columns.items()}}
    row = st.fixed_dictionaries(
        {"id": st.integers(1, 9)},
        optional={
            **{name: v for name, (_p, v) in columns.items()},
            "extra": st.fixed_dictionaries({"q": st.integers(0, 1)}),  # a key the schema does not declare
        },
    )
    records = draw(st.lists(row, min_size=1, max_size=14))
    flattening = {
        "flattening_max_depth": draw(st.integers(1, 3)),
        "flattening_max_key_length": draw(st.sampled_from([255, 255, 6])),  # 6: keys are shortened
        "flattening_separator": draw(st.sampled_from(["__", "__", "."])),
    }
    return {"type": "object", "properties": props}, records, flattening


def _land(root: Path, text: str, **config: Any) -> tuple[Any, ...]:
    """Run in-process; (exit code, STATE lines, rows, rejected rows) and whether the stream was hot."""
    config = target_config(root, schema_validation_mode="warn", batch_size_rows=4, **config)
    out, err = io.StringIO(), io.StringIO()
    target = TargetDativoIceberg(config=config, validate_config=True)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = target.run(io.StringIO(text))
    catalog = open_catalog(root)
    found = []
    for name in ("acme.s", "acme.s__rejected"):
        rows = pyiceberg_rows(catalog.load_table(name), "acme") if catalog.table_exists(name) else []
        drop = ("_rejected_at", "_run_id")
        found.append(
            sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, default=str) for r in rows)
        )
    return (code, out.getvalue(), *found), target.routes.sink("s") is not None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=nested_streams())
def test_columnar_flattening_lands_what_the_sdk_flattening_lands(
    tmp_path_factory: pytest.TempPathFactory, stream: Any
) -> None:
    schema, records, flattening = stream
    text = _input(schema, ["id"], records)
    root = tmp_path_factory.mktemp("flat")
    columnar, hot = _land(root / "columnar", text, **flattening, **FLAT)
    per_record, _ = _land(root / "record", text, hot_path=False, **flattening, **FLAT)
    assert hot
    assert columnar == per_record


# ---------------------------------------------------------------- end to end

ORDERS = {
    "id": {"type": "integer"},
    "customer": {
        "type": ["object", "null"],
        "properties": {
            "name": {"type": ["string", "null"]},
            "address": {
                "type": ["object", "null"],
                "properties": {
                    "city": {"type": ["string", "null"]},
                    "geo": {"type": ["object", "null"], "properties": {"lat": {"type": ["number", "null"]}}},
                },
            },
        },
    },
    "lines": {
        "type": ["array", "null"],
        "items": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}},
    },
    "placed": {"type": ["string", "null"], "format": "date-time"},
}


def _orders(n: int) -> list[dict[str, Any]]:
    messages = [schema_msg("orders", ORDERS, ["id"])]
    for i in range(1, n + 1):
        customer: dict[str, Any] | None = {
            "name": f"c{i % 13}",
            "address": {"city": f"town-{i % 5}", "geo": {"lat": Decimal(f"{i % 90}.50")}},
        }
        if i % 7 == 0:
            customer = None
        elif i % 5 == 0:
            customer = {"name": "no address"}
        lines = [{"sku": f"s{i}", "qty": i % 4}, {"qty": 1.0, "sku": "é"}][: i % 3] if i % 11 else None
        messages.append(record("orders", id=i, customer=customer, lines=lines, placed="2025-04-01T08:00:00Z"))
        if i % 100 == 0:
            messages.append(state({"bookmarks": {"orders": {"id": i}}}))
    return messages


def _text(messages: list[dict[str, Any]]) -> str:
    """Messages as a tap prints them (simplejson, decimals as written)."""
    import simplejson

    return "".join(simplejson.dumps(m, use_decimal=True) + "\n" for m in messages)


def test_flattened_stream_takes_the_columnar_path_end_to_end(tmp_path: Path) -> None:
    text = _text(_orders(500))
    fast = run_target(tmp_path / "columnar", text, flattening_enabled=True, flattening_max_depth=2)
    slow = run_target(
        tmp_path / "record", text, flattening_enabled=True, flattening_max_depth=2, hot_path=False
    )
    assert fast.returncode == slow.returncode == 0, fast.stderr[-3000:]
    assert [e["path"] for e in fast.events("record_path")] == ["hot"]
    assert {e["path"] for e in fast.events("batch_written")} == {"hot"}
    assert fast.states == slow.states and fast.states[-1] == {"bookmarks": {"orders": {"id": 500}}}
    tables = [open_catalog(tmp_path / p).load_table("acme.orders") for p in ("columnar", "record")]
    columns = [f.name for f in tables[0].schema().fields]
    assert columns[:6] == [
        "id",
        "customer__name",
        "customer__address__city",
        "customer__address__geo",
        "lines",
        "placed",
    ]
    assert tables[0].schema() == tables[1].schema()
    key = lambda r: r["id"]  # noqa: E731
    rows = sorted(pyiceberg_rows(tables[0], "acme"), key=key)
    assert rows == sorted(pyiceberg_rows(tables[1], "acme"), key=key)
    by_id = {r["id"]: r for r in rows}
    assert by_id[1]["customer__address__geo"] == '{"lat":1.50}'  # deeper than the max depth: JSON text
    assert by_id[2]["lines"] == '[{"sku":"s2","qty":2},{"qty":1.0,"sku":"\\u00e9"}]'
    assert by_id[7]["customer__name"] is None and by_id[5]["customer__address__city"] is None
    assert by_id[11]["lines"] is None
    query = (
        "SELECT count(*), count(customer__name), count(customer__address__geo), count(lines), "
        "min(customer__address__geo), max(lines) FROM t"
    )
    assert duckdb_rows(tables[0], "acme", query) == duckdb_rows(tables[1], "acme", query)
    exact = "SELECT customer__address__city, customer__address__geo, lines FROM t WHERE id = 2"
    assert duckdb_rows(tables[0], "acme", exact) == [
        ("town-2", '{"lat":2.50}', '[{"sku":"s2","qty":2},{"qty":1.0,"sku":"\\u00e9"}]')
    ]


def _both(tmp_path: Path, messages: list[dict[str, Any]], **config: Any) -> tuple[Any, Any, list, list]:
    """Both paths on the same input: (columnar run, per-record run, their rows)."""
    fast = run_target(tmp_path / "columnar", messages, **FLAT, **config)
    slow = run_target(tmp_path / "record", messages, hot_path=False, **FLAT, **config)
    found = []
    for path in ("columnar", "record"):
        catalog = open_catalog(tmp_path / path)
        rows = pyiceberg_rows(catalog.load_table("acme.s"), "acme") if catalog.table_exists("acme.s") else []
        found.append(sorted(rows, key=lambda r: r["id"]))
    return fast, slow, found[0], found[1]


def test_keys_flattening_to_one_name_take_the_record_path_for_that_run(tmp_path: Path) -> None:
    props = {
        "id": {"type": "integer"},
        "a": {"type": ["object", "null"], "properties": {"b": {"type": "integer"}}},
    }
    messages = [
        schema_msg("s", props, ["id"]),
        record("s", id=1, a={"b": 1}),
        record("s", id=2, a={"b": 2}, a__b=3),  # the SDK keeps the later key of the record
        {"type": "RECORD", "stream": "s", "record": {"id": 3, "a__b": 4, "a": {"b": 5}}},
    ]
    fast, slow, rows, expected = _both(tmp_path, messages, flattening_max_depth=1)
    assert fast.returncode == slow.returncode == 0, fast.stderr[-2000:]
    assert [e["path"] for e in fast.events("record_path")] == ["hot"]
    assert {e["path"] for e in fast.events("batch_written")} == {"record"}
    assert rows == expected and [r["a__b"] for r in rows] == [1, 3, 5]


def test_a_value_of_two_types_takes_the_record_path_for_that_run(tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "a": {"type": ["object", "string", "null"], "properties": {"b": {}}}}
    messages = [schema_msg("s", props, ["id"]), record("s", id=1, a={"b": [1]}), record("s", id=2, a="text")]
    fast, slow, rows, expected = _both(tmp_path, messages, flattening_max_depth=1)
    assert fast.returncode == slow.returncode == 0, fast.stderr[-2000:]
    assert rows == expected and rows[0]["a__b"] == "[1]"


def test_a_required_object_flattening_replaces_keeps_the_stream_per_record(tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "a": {"type": "object", "properties": {"b": {"type": "integer"}}}}
    schema = schema_msg("s", props, ["id"], required=["id", "a"])
    messages = [schema, record("s", id=1, a={"b": 1}), record("s", id=2, a=None)]
    fast, slow, rows, expected = _both(
        tmp_path, messages, flattening_max_depth=1, schema_validation_mode="warn"
    )
    assert fast.returncode == slow.returncode
    [event] = fast.events("record_path")
    assert event["path"] == "record"
    assert "required" in event["reason"] and "'a'" in event["reason"]  # not a flattened property
    assert rows == expected


def test_flattening_max_depth_zero_is_no_flattening(tmp_path: Path) -> None:
    props = {
        "id": {"type": "integer"},
        "a": {"type": ["object", "null"], "properties": {"b": {"type": "integer"}}},
    }
    messages = [schema_msg("s", props, ["id"]), record("s", id=1, a={"b": 1})]
    fast, slow, rows, expected = _both(tmp_path, messages, flattening_max_depth=0)
    assert fast.returncode == slow.returncode == 0, fast.stderr[-2000:]
    assert [e["path"] for e in fast.events("record_path")] == ["hot"]
    assert rows == expected == [{"id": 1, "a": {"b": 1}}]


def test_a_contract_stream_with_flattening_takes_the_columnar_path(tmp_path: Path) -> None:
    contract = tmp_path / "things.yaml"
    columns = [
        {"name": "rid", "type": "bigint", "required": True, "primary_key": True},
        {"name": "order__amount", "type": "decimal(12,2)", "required": False},
        {"name": "order__note", "type": "string", "required": False},
        {"name": "tags", "type": "string", "required": False},
    ]
    contract.write_text(
        yaml.safe_dump(
            {
                "$schema": "schemas/odcs/dativo-odcs-3.0.2-extended.schema.json",
                "apiVersion": "v3.0.2",
                "kind": "DataContract",
                "id": "0b6f3c4e-0000-4000-8000-000000000002",
                "name": "things",
                "version": "1.0",
                "domain": "lab",
                "dataProduct": "flat",
                "schema": columns,
            }
        )
    )
    props = {
        "rid": {"type": "integer"},
        "order": {
            "type": ["object", "null"],
            "properties": {"amount": {"type": ["number", "null"]}, "note": {"type": ["string", "null"]}},
        },
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
    }
    messages = [schema_msg("things", props, ["rid"])]
    for rid in range(1, 41):
        order = {"amount": Decimal(f"{rid}.1{rid % 10}"), "note": "2025-01-01"} if rid % 4 else None
        messages.append(record("things", rid=rid, order=order, tags=["x", str(rid)][: rid % 3]))
    text = _text(messages)
    config = {"assets": {"things": str(contract)}, "flattening_max_depth": 1, **FLAT}
    fast = run_target(tmp_path / "columnar", text, **config)
    slow = run_target(tmp_path / "record", text, hot_path=False, **config)
    assert fast.returncode == slow.returncode == 0, fast.stderr[-3000:]
    assert [e["path"] for e in fast.events("record_path")] == ["hot"]
    assert {e["path"] for e in fast.events("batch_written")} == {"hot"}
    tables = [open_catalog(tmp_path / p).load_table("acme__lab.things") for p in ("columnar", "record")]
    query = "SELECT rid, order__amount, order__note, tags FROM t ORDER BY rid"
    rows = duckdb_rows(tables[0], "acme", query)
    assert rows == duckdb_rows(tables[1], "acme", query)
    assert rows[0] == (1, Decimal("1.11"), "2025-01-01", '["x"]') and rows[3][1:3] == (None, None)
    key = lambda r: r["rid"]  # noqa: E731
    assert sorted(pyiceberg_rows(tables[0], "acme"), key=key) == sorted(
        pyiceberg_rows(tables[1], "acme"), key=key
    )


def test_record_metadata_columns_next_to_flattened_columns(tmp_path: Path) -> None:
    messages = _orders(60)
    for message in messages[1:]:
        if message["type"] == "RECORD":
            message.update(
                time_extracted=f"2025-05-01T10:00:{message['record']['id'] % 60:02d}+00:00", version=4
            )
    text = _text(messages)
    config = {"flattening_max_depth": 1, "add_record_metadata": True, **FLAT}
    fast = run_target(tmp_path / "columnar", text, **config)
    slow = run_target(tmp_path / "record", text, hot_path=False, **config)
    assert fast.returncode == slow.returncode == 0, fast.stderr[-3000:]
    assert {e["path"] for e in fast.events("batch_written")} == {"hot"}
    tables = [open_catalog(tmp_path / p).load_table("acme.orders") for p in ("columnar", "record")]
    assert tables[0].schema() == tables[1].schema()
    query = (
        "SELECT id, customer__name, customer__address, lines, _sdc_extracted_at, _sdc_table_version "
        "FROM t ORDER BY id"
    )
    rows = duckdb_rows(tables[0], "acme", query)
    assert rows == duckdb_rows(tables[1], "acme", query)
    assert rows[0][2] == '{"city":"town-1","geo":{"lat":1.50}}' and rows[0][5] == 4
