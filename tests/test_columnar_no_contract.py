"""Streams without a contract on the columnar path land what the per-record path lands.

Each case runs the target twice on the same input — columnar (`hot_path` on, the default) and per
record (`hot_path: false`, the SDK's path) — and compares exit code, STATE lines, the rows read back
(pyiceberg and DuckDB) and the `__rejected` rows of warn mode.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import open_catalog, record, run_target, schema_msg, state, target_config
from hypothesis import HealthCheck, given, settings
from test_jsonschema_rules import _line, streams

from target_dativo_iceberg.errors import RecordError
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows
from target_dativo_iceberg.target import TargetDativoIceberg


def _input(schema: dict[str, Any], keys: list[str], records: list[dict[str, Any]]) -> str:
    lines = [_line({"type": "SCHEMA", "stream": "s", "schema": schema, "key_properties": keys}).decode()]
    for index, rec in enumerate(records, start=1):
        lines.append('{"type": "RECORD", "stream": "s", "record": ' + _line(rec).decode() + "}")
        if index % 5 == 0:
            lines.append(json.dumps(state({"n": index})))
    lines.append(json.dumps(state({"n": len(records)})))
    return "\n".join(lines) + "\n"


def _land(root: Path, text: str, **config: Any) -> tuple[Any, ...]:
    """Run in-process; (exit code, STATE lines, rows, rejected rows, record paths taken)."""
    settings_ = target_config(root, schema_validation_mode="warn", batch_size_rows=4, **config)
    target = TargetDativoIceberg(config=settings_, validate_config=True)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: Any = target.run(io.StringIO(text))
        except (ValueError, RecordError) as exc:  # a date Python cannot read (the SDK's parsing at
            # the top level, the record path's conversion inside arrays): on both paths
            code = f"{type(exc).__name__}: {exc}"
    catalog = open_catalog(root)
    rows: list = []
    rejected: list = []
    if catalog.table_exists("acme.s"):
        rows = sorted(
            json.dumps(r, default=str, sort_keys=True)
            for r in pyiceberg_rows(catalog.load_table("acme.s"), "acme")
        )
    if catalog.table_exists("acme.s__rejected"):
        data = pyiceberg_rows(catalog.load_table("acme.s__rejected"), "acme")
        rejected = sorted((r["_record"], json.dumps(r["_errors"])) for r in data)
    return code, out.getvalue(), rows, rejected


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=streams())
def test_columnar_lands_what_the_record_path_lands(
    tmp_path_factory: pytest.TempPathFactory, stream: Any
) -> None:
    """Warn mode: same exit code, STATE, landed rows and `__rejected` rows (records, reasons)."""
    schema, keys, records = stream
    text = _input(schema, keys, records)
    root = tmp_path_factory.mktemp("nc")
    columnar = _land(root / "columnar", text)
    per_record = _land(root / "record", text, hot_path=False)
    if isinstance(per_record[0], str):
        # a date parsing raised (on both paths): which earlier batches were committed, and
        # so which STATEs were printed, before the run ended depends on where each path reads the
        # bad value and on commit timing; each path prints input STATEs in order, none twice
        assert columnar[0] == per_record[0]
        sent = [*range(5, len(records) + 1, 5), len(records)]
        for out in (columnar[1], per_record[1]):
            printed = [json.loads(line)["n"] for line in out.splitlines()]
            assert printed == sorted(set(printed)) and set(printed) <= set(sent)
        return
    assert columnar == per_record


PEOPLE = {
    "id": {"type": "integer"},
    "name": {"type": ["string", "null"], "maxLength": 12},
    "age": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 150}, {"type": "null"}]},
    "score": {"type": ["number", "null"], "exclusiveMinimum": 0},
    "status": {"type": "string", "enum": ["active", "banned"]},
    "seen": {"type": ["string", "null"], "format": "date-time"},
    "born": {"type": ["string", "null"], "format": "date"},
    "address": {
        "type": ["object", "null"],
        "properties": {
            "city": {"type": "string"},
            "zip": {"type": ["string", "null"], "pattern": "^[0-9]{5}$"},
        },
        "required": ["city"],
    },
    "tags": {"type": ["array", "null"], "items": {"type": "string"}, "maxItems": 3},
}


def _people(n: int, bad: set[int] = frozenset()) -> list[dict[str, Any]]:
    messages = [schema_msg("people", PEOPLE, ["id"])]
    for i in range(1, n + 1):
        row = {
            "id": i,
            "name": f"name-{i % 97}",
            "age": i % 120 if i % 10 else None,
            "score": i / 8,
            "status": "active" if i % 3 else "banned",
            "seen": f"2025-03-0{1 + i % 9}T12:{i % 60:02d}:00+02:00",
            "born": f"19{50 + i % 40}-0{1 + i % 9}-1{i % 9}",
            "address": {"city": f"c{i % 7}", "zip": f"{10000 + i}"} if i % 4 else None,
            "tags": ["a", "b"][: i % 3],
        }
        if i in bad:
            row["age"] = 151
        messages.append(record("people", **row))
        if i % 250 == 0:
            messages.append(state({"bookmarks": {"people": {"id": i}}}))
    return messages


def test_a_stream_without_contract_takes_the_columnar_path(tmp_path: Path) -> None:
    messages = _people(1000)
    fast = run_target(tmp_path / "columnar", messages)
    slow = run_target(tmp_path / "record", messages, hot_path=False)
    assert fast.returncode == slow.returncode == 0, fast.stderr[-3000:]
    assert [e["path"] for e in fast.events("record_path")] == ["hot"]
    assert {e["path"] for e in fast.events("batch_written")} == {"hot"}
    assert fast.states == slow.states and fast.states[-1] == {"bookmarks": {"people": {"id": 1000}}}
    tables = [open_catalog(tmp_path / p).load_table("acme.people") for p in ("columnar", "record")]
    key = lambda r: r["id"]  # noqa: E731
    assert sorted(pyiceberg_rows(tables[0], "acme"), key=key) == sorted(
        pyiceberg_rows(tables[1], "acme"), key=key
    )
    query = "SELECT count(*), sum(age), min(seen), max(born), count(address), sum(len(tags)) FROM t"
    assert duckdb_rows(tables[0], "acme", query) == duckdb_rows(tables[1], "acme", query)
    assert duckdb_rows(tables[0], "acme", "SELECT count(*) FROM t WHERE address.zip IS NOT NULL") == [(750,)]


def test_strict_mode_names_the_first_invalid_record_like_the_record_path(tmp_path: Path) -> None:
    messages = _people(300, bad={123, 200})
    fast = run_target(tmp_path / "columnar", messages, batch_size_rows=100)
    slow = run_target(tmp_path / "record", messages, batch_size_rows=100, hot_path=False)
    assert fast.returncode == slow.returncode == 2
    [finished] = fast.events("job_finished")
    assert (
        "stream 'people', record 123, field 'age': 151 is not valid under any of the given schemas"
        in finished["error"]
    )
    assert finished["error"] == slow.events("job_finished")[0]["error"]
    assert fast.states == slow.states


def test_warn_mode_rejects_only_the_invalid_rows_and_keeps_the_batch_columnar(tmp_path: Path) -> None:
    messages = _people(300, bad={7, 123})
    fast = run_target(tmp_path / "columnar", messages, schema_validation_mode="warn")
    slow = run_target(tmp_path / "record", messages, schema_validation_mode="warn", hot_path=False)
    assert fast.returncode == slow.returncode == 1
    assert {e["path"] for e in fast.events("batch_written")} == {"hot"}
    tables = {p: open_catalog(tmp_path / p) for p in ("columnar", "record")}
    for name in ("acme.people", "acme.people__rejected"):
        a, b = (_clean(pyiceberg_rows(tables[p].load_table(name), "acme")) for p in ("columnar", "record"))
        assert a == b
    rejected = pyiceberg_rows(tables["columnar"].load_table("acme.people__rejected"), "acme")
    assert sorted(json.loads(r["_record"])["id"] for r in rejected) == [7, 123]
    assert {(e["field"], e["rule"]) for r in rejected for e in r["_errors"]} == {("age", "anyOf")}


def _clean(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as sorted JSON, without the columns that differ between runs."""
    drop = ("_rejected_at", "_run_id")
    return sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, default=str) for r in rows)


def test_a_keyword_without_a_column_rule_keeps_the_stream_per_record_and_says_why(tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "code": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}
    run = run_target(tmp_path, [schema_msg("odd", props, ["id"]), record("odd", id=1, code="x")])
    assert run.returncode == 0, run.stderr[-2000:]
    [event] = run.events("record_path")
    assert event["stream"] == "odd" and event["path"] == "record"
    assert "'code'" in event["reason"] and "oneOf" in event["reason"]


def test_validate_records_false_skips_validation_on_the_columnar_path(tmp_path: Path) -> None:
    messages = _people(50, bad={3, 4})
    fast = run_target(tmp_path / "columnar", messages, validate_records=False)
    slow = run_target(tmp_path / "record", messages, validate_records=False, hot_path=False)
    assert fast.returncode == slow.returncode == 0, fast.stderr[-2000:]
    assert {e["path"] for e in fast.events("batch_written")} == {"hot"}
    tables = [open_catalog(tmp_path / p).load_table("acme.people") for p in ("columnar", "record")]
    query = "SELECT count(*), max(age) FROM t"
    assert duckdb_rows(tables[0], "acme", query) == duckdb_rows(tables[1], "acme", query) == [(50, 151)]


def test_record_metadata_is_built_as_columns_like_the_record_path(tmp_path: Path) -> None:
    messages = _people(40)
    for index, message in enumerate(messages[1:], start=1):
        if message["type"] == "RECORD":
            message["time_extracted"] = f"2025-05-01T10:00:{index % 60:02d}+00:00"
            message["version"] = 7
    fast = run_target(tmp_path / "columnar", messages, add_record_metadata=True)
    slow = run_target(tmp_path / "record", messages, add_record_metadata=True, hot_path=False)
    assert fast.returncode == slow.returncode == 0, fast.stderr[-2000:]
    assert [e["path"] for e in fast.events("record_path")] == ["hot"]
    tables = [open_catalog(tmp_path / p).load_table("acme.people") for p in ("columnar", "record")]
    assert tables[0].schema() == tables[1].schema()
    exact = "SELECT id, _sdc_extracted_at, _sdc_table_version, _sdc_deleted_at FROM t ORDER BY id"
    assert duckdb_rows(tables[0], "acme", exact) == duckdb_rows(tables[1], "acme", exact)
    filled = (
        "SELECT count(_sdc_received_at), count(_sdc_batched_at), count(_sdc_sequence), "
        "count(_sdc_sync_started_at) FROM t"
    )
    assert duckdb_rows(tables[0], "acme", filled) == [(40, 40, 40, 40)]


def test_flattening_keeps_the_stream_columnar(tmp_path: Path) -> None:
    run = run_target(tmp_path, _people(5), flattening_enabled=True, flattening_max_depth=1)
    assert run.returncode == 0, run.stderr[-2000:]
    [event] = run.events("record_path")
    assert event["path"] == "hot" and "reason" not in event


PRICES = {
    "id": {"type": "integer"},
    "price": {"type": ["number", "null"], "multipleOf": 0.05},
    "qty": {"type": "integer", "multipleOf": 0.5},
    "parts": {"type": "array", "items": {"type": "number", "multipleOf": 0.25}},
}


def _prices(n: int, bad: dict[int, str] | None = None) -> str:
    """Price records as a tap writes them (decimals in plain JSON numbers); `bad`: id → price text."""
    lines = [json.dumps(schema_msg("prices", PRICES, ["id"]))]
    for i in range(1, n + 1):
        price = (bad or {}).get(i, f"{i // 7}.{(i * 5) % 100:02d}" if i % 9 else "null")
        parts = f"[{i}.25, -0.5, {i % 4}]"
        lines.append(
            f'{{"type": "RECORD", "stream": "prices", "record": {{"id": {i}, "price": {price}, '
            f'"qty": {i}, "parts": {parts}}}}}'
        )
        if i % 200 == 0:
            lines.append(json.dumps(state({"n": i})))
    return "\n".join(lines) + "\n"


def test_multiple_of_on_numbers_stays_columnar_and_lands_what_the_record_path_lands(tmp_path: Path) -> None:
    text = _prices(600)
    fast = run_target(tmp_path / "columnar", text)
    slow = run_target(tmp_path / "record", text, hot_path=False)
    assert fast.returncode == slow.returncode == 0, fast.stderr[-3000:]
    assert [e["path"] for e in fast.events("record_path")] == ["hot"]
    assert {e["path"] for e in fast.events("batch_written")} == {"hot"}
    assert fast.states == slow.states
    tables = [open_catalog(tmp_path / p).load_table("acme.prices") for p in ("columnar", "record")]
    key = lambda r: r["id"]  # noqa: E731
    rows = [sorted(pyiceberg_rows(t, "acme"), key=key) for t in tables]
    assert rows[0] == rows[1] and len(rows[0]) == 600
    assert rows[0][6]["price"] == 1.35 and rows[0][6]["parts"] == [7.25, -0.5, 3.0]
    query = "SELECT id, price, qty, parts FROM t ORDER BY id"
    assert duckdb_rows(tables[0], "acme", query) == duckdb_rows(tables[1], "acme", query)


@pytest.mark.parametrize("price", ["0.07", '"1.50"', "0.30000000000000004"])
def test_a_price_off_the_step_fails_the_run_like_the_record_path(tmp_path: Path, price: str) -> None:
    text = _prices(300, bad={123: price})
    fast = run_target(tmp_path / "columnar", text, batch_size_rows=100)
    slow = run_target(tmp_path / "record", text, batch_size_rows=100, hot_path=False)
    assert fast.returncode == slow.returncode == 2
    [finished] = fast.events("job_finished")
    assert "stream 'prices', record 123, field 'price'" in finished["error"]
    assert finished["error"] == slow.events("job_finished")[0]["error"]
    assert fast.states == slow.states
