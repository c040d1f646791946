"""Record validation against contracts: every rule passing and failing, coercions, run state."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField

from target_dativo_iceberg.contracts.contract import Contract, load_contract, load_contracts
from target_dativo_iceberg.contracts.odcs.checks import format_violations
from target_dativo_iceberg.contracts.odcs.coerce import coerce_column
from target_dativo_iceberg.contracts.odcs.types import ResolvedType, resolve_flat_type
from target_dativo_iceberg.contracts.validator import (
    REJECTED_ERRORS_TYPE,
    BatchResult,
    ErrorSummary,
    Validator,
)

CONTRACTS = Path(__file__).parent / "contracts"
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def orders() -> Contract:
    return load_contract(CONTRACTS / "orders_v310.odcs.yaml")


@pytest.fixture(scope="module")
def person() -> Contract:
    return load_contract(CONTRACTS / "person_v302.odcs.yaml")


def order(i: int, **overrides: Any) -> dict[str, Any]:
    """A valid record of orders_v310 (unique keys per i)."""
    record = {
        "order_id": str(uuid.UUID(int=i)),
        "tenant_id": "acme",
        "customer_email": f"user{i}@acme.example",
        "amount": "12.50",
        "quantity": 3,
        "pack_size": 12,
        "discount": 0.15,
        "status": "paid",
        "sku": f"ABC-{i:04d}",
        "coupon": "SPRING",
        "region": "eu-west",
        "order_date": "2024-03-01",
        "created_at": "2024-03-01T10:00:00Z",
        "local_created_at": "2024-03-01T10:00:00",
        "pickup_time": "10:30:00",
        "gift": "true",
        "tracking_url": "https://track.example/1",
        "promised_at": "2024-03-03T12:00:00+01:00",
        "promised_day": "2024-03-03",
        "invoice_no": 1000 + i,
        "notes": {"gift_wrap": True},
    }
    record.update(overrides)
    return record


def rules_of(result: BatchResult) -> set[tuple[int, str, str]]:
    return {(e.position, e.field, e.rule) for e in result.errors}


# ---------------------------------------------------------------- every rule


def test_valid_records_pass_and_are_typed(orders: Contract) -> None:
    validator = Validator(orders)
    result = validator.validate([order(1), order(2)], first_position=1)
    assert result.errors == []
    assert result.rejected == 0 and result.valid_indices == [0, 1]
    assert result.table.schema == orders.arrow_schema()
    row = result.table.to_pylist()[0]
    assert row["amount"] == Decimal("12.50")
    assert row["gift"] is True
    assert row["order_date"] == datetime.date(2024, 3, 1)
    assert row["created_at"] == datetime.datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert row["local_created_at"] == datetime.datetime(2024, 3, 1, 10)
    assert row["pickup_time"] == datetime.time(10, 30)
    assert json.loads(row["notes"]) == {"gift_wrap": True}


FAILING = [
    ("required (null)", {"amount": None}, "amount", "required"),
    ("type: not a number", {"quantity": "three"}, "quantity", "type"),
    ("type: fraction into integer", {"quantity": 1.5}, "quantity", "type"),
    ("type: int32 overflow", {"quantity": 2**40}, "quantity", "type"),
    ("type: boolean into integer", {"pack_size": True}, "pack_size", "type"),
    ("type: lossy decimal", {"amount": "12.345"}, "amount", "type"),
    ("type: boolean", {"gift": "yes"}, "gift", "type"),
    ("type: impossible date", {"order_date": "2024-02-30"}, "order_date", "type"),
    ("type: timestamp", {"created_at": "yesterday"}, "created_at", "type"),
    ("type: time", {"pickup_time": "25:99"}, "pickup_time", "type"),
    ("type: object into string", {"status": {"s": 1}}, "status", "type"),
    ("minLength", {"customer_email": "a@b.c"}, "customer_email", "minLength"),
    ("maxLength", {"customer_email": "x" * 30 + "@acme.example"}, "customer_email", "maxLength"),
    ("pattern", {"sku": "abc-1234"}, "sku", "pattern"),
    ("format email", {"customer_email": "not-an-email"}, "customer_email", "format"),
    ("format uuid", {"order_id": "1234"}, "order_id", "format"),
    ("format uri", {"tracking_url": "not a uri"}, "tracking_url", "format"),
    ("format date-time", {"promised_at": "2024-03-03"}, "promised_at", "format"),
    ("format date-time (bad day)", {"promised_at": "2024-02-30T10:00:00Z"}, "promised_at", "format"),
    ("format date", {"promised_day": "03/03/2024"}, "promised_day", "format"),
    ("format date (bad day)", {"promised_day": "2023-02-29"}, "promised_day", "format"),
    ("minimum (number)", {"amount": -1}, "amount", "minimum"),
    ("minimum (date)", {"order_date": "2019-12-31"}, "order_date", "minimum"),
    ("maximum", {"amount": "100000.01"}, "amount", "maximum"),
    ("exclusiveMinimum", {"quantity": 0}, "quantity", "exclusiveMinimum"),
    ("exclusiveMaximum", {"quantity": 1000}, "quantity", "exclusiveMaximum"),
    (
        "exclusiveMaximum (timestamp)",
        {"created_at": "2100-01-01T00:00:00Z"},
        "created_at",
        "exclusiveMaximum",
    ),
    ("multipleOf (integer)", {"pack_size": 10}, "pack_size", "multipleOf"),
    ("multipleOf (number)", {"discount": 0.07}, "discount", "multipleOf"),
    ("validValues (v3.1 invalidValues)", {"status": "lost"}, "status", "validValues"),
    ("invalidValues pattern", {"region": "EU"}, "region", "invalidValues"),
    ("nullValues", {"customer_email": None}, "customer_email", "nullValues"),
    ("missingValues (N/A)", {"coupon": "N/A"}, "coupon", "missingValues"),
    ("missingValues (empty)", {"coupon": ""}, "coupon", "missingValues"),
    ("unknown field", {"referrer": "ads"}, "referrer", "unknown_field"),
]


@pytest.mark.parametrize(("case", "change", "field", "rule"), FAILING, ids=[f[0] for f in FAILING])
def test_rule_fails(orders: Contract, case: str, change: dict, field: str, rule: str) -> None:
    validator = Validator(orders)
    result = validator.validate([order(1), order(2, **change)], first_position=11)
    assert rules_of(result) == {(12, field, rule)}, case
    assert result.valid_indices == [0] and result.table.num_rows == 1
    error = result.errors[0]
    assert error.value == change[field] and error.message


PASSING = [
    ("required present", {"amount": 0}),
    ("type coercions", {"quantity": "7", "pack_size": "18", "amount": 99, "gift": False, "discount": "0.5"}),
    ("minLength boundary", {"customer_email": "ab@c.d"}),
    ("maxLength boundary", {"customer_email": "x" * 27 + "@acme.example"}),
    (
        "optional nulls",
        {"quantity": None, "discount": None, "status": None, "sku": None, "tracking_url": None},
    ),
    ("minimum boundary", {"amount": "0.00", "order_date": "2020-01-01"}),
    ("maximum boundary", {"amount": 100000}),
    ("exclusive bounds inside", {"quantity": 999}),
    ("exclusiveMinimum inside", {"quantity": 1}),
    ("multipleOf", {"pack_size": -6, "discount": 0.35}),
    ("multipleOf zero", {"pack_size": 0, "discount": 1}),
    ("valid values", {"status": "cancelled"}),
    ("invalidValues pattern ok", {"region": "us-east"}),
    (
        "formats",
        {
            "tracking_url": "s3://bucket/key",
            "promised_at": "2024-03-03T12:00:00.123Z",
            "promised_day": "2024-02-29",
        },
    ),
    ("sdc metadata", {"_sdc_extracted_at": "2024-03-01T10:00:00Z", "_sdc_sequence": 1, "_sdc_custom": 1}),
    ("unknown field with null value", {"referrer": None}),
    ("missing optional fields", {"notes": None, "coupon": None}),
]


@pytest.mark.parametrize(("case", "change"), PASSING, ids=[p[0] for p in PASSING])
def test_rule_passes(orders: Contract, case: str, change: dict) -> None:
    result = Validator(orders).validate([order(1, **change)], first_position=1)
    assert result.errors == [], case
    assert result.table.num_rows == 1


def test_missing_field_lands_null_or_fails_if_required(orders: Contract) -> None:
    optional = order(1)
    del optional["discount"]
    required = order(2)
    del required["amount"]
    result = Validator(orders).validate([optional, required], first_position=1)
    assert rules_of(result) == {(2, "amount", "required")}
    assert result.table.column("discount").to_pylist() == [None]


def test_v30_rules(person: Contract) -> None:
    """v3.0 `rule: validValues`, boolean exclusiveMinimum, Java date format, timestamp via physicalType."""
    base = {
        "id": 1,
        "email": "a@b.com",
        "status": "active",
        "country": "DE",
        "updated_at": "2024-01-01T00:00:00Z",
    }
    rows = [
        dict(base, id=1, score=0.5, birth_date="31/12/1990"),
        dict(base, id=2, score=0, status="deleted", birth_date="1899-12-31"),
        dict(base, id=3, email="a@b.COM", age=151, country="D"),
    ]
    result = Validator(person).validate(rows, first_position=1)
    assert rules_of(result) == {
        (2, "score", "exclusiveMinimum"),
        (2, "status", "validValues"),
        (2, "birth_date", "minimum"),
        (3, "email", "pattern"),
        (3, "age", "maximum"),
        (3, "country", "minLength"),
    }
    assert result.table.column("birth_date").to_pylist() == [datetime.date(1990, 12, 31)]


def test_v32_enum_and_flat_flavour() -> None:
    clicks, views = load_contracts(CONTRACTS / "events_v320.odcs.yaml")[::-1]
    ok = {"view_id": 1, "page": "/", "device": "mobile", "viewed_at": "2024-01-01T00:00:00Z"}
    result = Validator(views).validate([ok, dict(ok, view_id=2, device="tv")], first_position=1)
    assert rules_of(result) == {(2, "device", "validValues")}
    flat = load_contract(CONTRACTS / "customers_flat.yaml")
    row = {
        "CustomerID": "7",
        "Email": "x@y.io",
        "Country": "DE",
        "Balance": "10.5",
        "Tier": "gold",
        "UpdatedAt": "2024-01-01",
    }
    result = Validator(flat).validate(
        [row, dict(row, CustomerID=8, Tier="iron", Balance=-1)], first_position=1
    )
    assert rules_of(result) == {(2, "Tier", "validValues"), (2, "Balance", "minimum")}
    assert result.table.to_pylist()[0]["balance"] == Decimal("10.50")


def test_every_reason_of_a_row_is_reported(orders: Contract) -> None:
    bad = order(2, quantity=0, status="lost", sku="x", extra=1)
    result = Validator(orders).validate([order(1), bad], first_position=5)
    assert rules_of(result) == {
        (6, "quantity", "exclusiveMinimum"),
        (6, "status", "validValues"),
        (6, "sku", "pattern"),
        (6, "extra", "unknown_field"),
    }
    rejected = result.rejected_rows([order(1), bad])
    assert len(rejected) == 1
    assert json.loads(rejected[0]["_record"]) == json.loads(json.dumps(bad))
    assert {(e["field"], e["rule"]) for e in rejected[0]["_errors"]} == {
        ("quantity", "exclusiveMinimum"),
        ("status", "validValues"),
        ("sku", "pattern"),
        ("extra", "unknown_field"),
    }
    assert all(set(e) == {"field", "rule", "message"} for e in rejected[0]["_errors"])
    table = pa.Table.from_pylist(
        rejected, schema=pa.schema([("_record", pa.string()), ("_errors", REJECTED_ERRORS_TYPE)])
    )
    assert table.num_rows == 1


# ---------------------------------------------------------------- uniqueness across the run


def test_primary_key_and_unique_across_batches(orders: Contract) -> None:
    validator = Validator(orders)
    first = validator.validate([order(1), order(2), order(2, invoice_no=5000)], first_position=1)
    assert rules_of(first) == {
        (3, "tenant_id,order_id", "primary_key"),
        (3, "customer_email,order_date", "duplicateValues"),
    }
    second = validator.validate(
        [order(3, invoice_no=1001), order(1), order(4, customer_email="user1@acme.example")], first_position=4
    )
    assert rules_of(second) == {
        (4, "invoice_no", "unique"),
        (5, "tenant_id,order_id", "primary_key"),
        (5, "invoice_no", "unique"),
        (5, "customer_email,order_date", "duplicateValues"),
        (6, "customer_email,order_date", "duplicateValues"),
    }
    assert validator.keys_held == 2 * 4  # two accepted rows × (pk, invoice_no, email+date, sku count)
    other_tenant = validator.validate([order(1, tenant_id="other", invoice_no=9, customer_email="z@z.zz")], 7)
    assert other_tenant.errors == []  # the composite key differs


def test_rejected_rows_do_not_claim_keys(person: Contract) -> None:
    base = {"email": "a@b.com", "status": "active", "country": "DE", "updated_at": "2024-01-01T00:00:00Z"}
    validator = Validator(person)
    result = validator.validate([dict(base, id=10, country="XXX"), dict(base, id=10)], first_position=1)
    assert rules_of(result) == {(1, "country", "maxLength")}
    again = validator.validate([dict(base, id=10, country="XXX")], first_position=3)
    assert rules_of(again) == {(3, "country", "maxLength"), (3, "id", "primary_key")}


def test_upsert_mode_skips_primary_key_uniqueness(person: Contract) -> None:
    base = {"email": "a@b.com", "status": "active", "country": "DE", "updated_at": "2024-01-01T00:00:00Z"}
    validator = Validator(person, primary_key_unique=False)
    assert validator.validate([dict(base, id=1), dict(base, id=1)], first_position=1).errors == []


# ---------------------------------------------------------------- finish: run-level quality


def test_row_count_and_run_level_thresholds(orders: Contract) -> None:
    validator = Validator(orders)
    validator.validate([order(1, sku="ABC-0001"), order(2, sku="ABC-0001")], first_position=1)
    failures = validator.finish()
    assert {f.rule for f in failures} == {"rowCount"}  # 2 rows, must be > 2; 1 duplicate sku < 2 is fine
    assert "rowCount is 2; it must be greater than 2" in failures[0].message
    validator.validate([order(3, sku="ABC-0001")], first_position=3)
    failures = validator.finish()
    assert [(f.rule, f.field, f.observed) for f in failures] == [("duplicateValues", "sku", 2)]
    assert validator.finish(total_rows=0)[0].rule == "rowCount"


def test_row_count_between(tmp_path: Path) -> None:
    clicks = load_contract(CONTRACTS / "events_v320.odcs.yaml", stream="clicks")
    validator = Validator(clicks)
    assert [f.expected for f in validator.finish()] == ["must be between [1, 1000]"]
    validator.validate([{"click_id": "a"}], first_position=1)
    assert validator.finish() == []


def test_percent_threshold(tmp_path: Path) -> None:
    path = tmp_path / "c.odcs.yaml"
    path.write_text(
        "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: '1'\nstatus: active\nschema:\n"
        "  - name: t\n    properties:\n      - name: v\n        logicalType: string\n"
        "        quality:\n          - metric: nullValues\n            mustBeLessThan: 30\n            unit: percent\n"
    )
    validator = Validator(load_contract(path))
    result = validator.validate([{"v": None}, {"v": "a"}, {"v": "b"}, {"v": "c"}], first_position=1)
    assert result.errors == []  # a threshold above zero never rejects a row
    assert validator.finish() == []  # 25 % < 30 %
    validator.validate([{"v": None}], first_position=5)
    assert [(f.rule, f.observed) for f in validator.finish()] == [("nullValues", 40.0)]


# ---------------------------------------------------------------- inputs, summary


def test_column_input_matches_record_input(orders: Contract) -> None:
    records = [order(1), order(2, quantity="x", extra="y"), order(3)]
    by_records = Validator(orders).validate(records, first_position=1)
    columns = {key: [r.get(key) for r in records] for key in {k for r in records for k in r}}
    by_columns = Validator(orders).validate(columns, first_position=1)
    assert (
        rules_of(by_columns)
        == rules_of(by_records)
        == {(2, "quantity", "type"), (2, "extra", "unknown_field")}
    )
    assert by_columns.table.equals(by_records.table)
    assert json.loads(by_columns.rejected_rows(columns)[0]["_record"])["extra"] == "y"


def test_unknown_fields_warn_mode(orders: Contract) -> None:
    validator = Validator(orders, unknown_fields="warn")
    result = validator.validate([order(1, referrer="ads"), order(2)], first_position=1)
    assert result.errors == [] and result.table.num_rows == 2
    assert [(w.position, w.field, w.rule, w.value) for w in result.warnings] == [
        (1, "referrer", "unknown_field", "ads")
    ]
    assert "referrer" not in result.table.column_names
    summary = ErrorSummary()
    summary.add(result)
    assert summary.as_dict()["violations"][0]["rule"] == "unknown_field"
    assert summary.as_dict()["rejected_records"] == 0
    with pytest.raises(ValueError, match="unknown_fields"):
        Validator(orders, unknown_fields="drop")


def test_source_fields_bind_other_spellings(person: Contract) -> None:
    validator = Validator(person, source_fields=["ID", "Email", "status", "country", "updated_at"])
    row = {"ID": 1, "Email": "a@b.com", "status": "active", "country": "DE", "updated_at": "2024-01-01"}
    result = validator.validate([row], first_position=1)
    assert result.errors == [] and result.table.column("id").to_pylist() == [1]


def test_error_summary_shape(person: Contract) -> None:
    base = {"email": "a@b.com", "status": "active", "updated_at": "2024-01-01T00:00:00Z"}
    rows = [dict(base, id=i, country="XYZ") for i in range(1, 8)] + [dict(base, id=8, country="DE", age=-1)]
    summary = ErrorSummary()
    result = Validator(person).validate(rows, first_position=101)
    summary.add(result)
    data = summary.as_dict()
    assert data["records"] == 8 and data["rejected_records"] == 8 and data["errors"] == 8
    first, second = data["violations"]
    assert (first["field"], first["rule"], first["count"]) == ("country", "maxLength", 7)
    assert [e["position"] for e in first["examples"]] == [101, 102, 103, 104, 105]
    assert first["examples"][0]["value"] == "XYZ"
    assert (second["field"], second["rule"], second["count"]) == ("age", "minimum", 1)
    assert json.dumps(data)  # JSON-ready
    assert "country/maxLength: 7" in str(summary) and bool(summary)
    assert not ErrorSummary()


def test_empty_batch(orders: Contract) -> None:
    result = Validator(orders).validate([], first_position=1)
    assert result.rows == 0 and result.table.num_rows == 0 and result.errors == []


# ---------------------------------------------------------------- coercions (fast and slow paths agree)

TS = datetime.datetime(2024, 3, 1, 10, tzinfo=UTC)
COERCIONS = [
    ("bigint", "123", 123),
    ("bigint", " 42 ", 42),
    ("bigint", "+7", 7),
    ("bigint", "-7", -7),
    ("bigint", "1.0", 1),
    ("bigint", 5.0, 5),
    ("bigint", Decimal("3"), 3),
    ("bigint", "1.5", None),
    ("bigint", 1.5, None),
    ("bigint", True, None),
    ("bigint", "abc", None),
    ("bigint", "1e3", None),
    ("bigint", 2**70, None),
    ("bigint", "0x1F", None),
    ("bigint", "\u0661\u0662\u0663", None),  # Arabic-Indic digits are not ASCII digits
    ("bigint", float("nan"), None),
    ("int", 2**31, None),
    ("int", "2147483647", 2147483647),
    ("double", "1.5", 1.5),
    ("double", "1e3", 1000.0),
    ("double", " 2.5 ", 2.5),
    ("double", 3, 3.0),
    ("double", Decimal("2.25"), 2.25),
    ("double", "nan", None),
    ("double", "inf", None),
    ("double", True, None),
    ("double", "1e400", None),
    ("double", float("inf"), None),
    ("float", "1.5", 1.5),
    ("decimal(12,2)", "12.5", Decimal("12.50")),
    ("decimal(12,2)", 3, Decimal("3.00")),
    ("decimal(12,2)", 1.25, Decimal("1.25")),
    ("decimal(12,2)", Decimal("-0.10"), Decimal("-0.10")),
    ("decimal(12,2)", "1.234", None),
    ("decimal(4,2)", "123.4", None),
    ("decimal(12,2)", "1e3", Decimal("1000.00")),
    ("decimal(38,0)", "3.5e38", None),
    ("boolean", "true", True),
    ("boolean", " FALSE ", False),
    ("boolean", True, True),
    ("boolean", "yes", None),
    ("boolean", 1, None),
    ("date", "2024-03-01", datetime.date(2024, 3, 1)),
    ("date", datetime.date(2024, 3, 1), datetime.date(2024, 3, 1)),
    ("date", datetime.datetime(2024, 3, 1), datetime.date(2024, 3, 1)),
    ("date", "2024-03-01T00:00:00Z", datetime.date(2024, 3, 1)),
    ("date", "2024-03-01T10:00:00", None),
    ("date", "2024-02-30", None),
    ("date", 20240301, None),
    ("timestamp", "2024-03-01T10:00:00Z", TS),
    ("timestamp", "2024-03-01T12:00:00+02:00", TS),
    ("timestamp", "2024-03-01T04:30:00-05:30", TS),
    ("timestamp", "2024-03-01T10:00:00", TS),
    ("timestamp", "2024-03-01 10:00:00", TS),
    ("timestamp", "2024-03-01T10:00:00.000000Z", TS),
    ("timestamp", "2024-03-01", datetime.datetime(2024, 3, 1, tzinfo=UTC)),
    ("timestamp", datetime.datetime(2024, 3, 1, 10), TS),
    (
        "timestamp",
        datetime.datetime(2024, 3, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        TS,
    ),
    ("timestamp", "not a time", None),
    ("timestamp", 1709287200, None),
    ("timestamp_ntz", "2024-03-01T12:00:00+02:00", datetime.datetime(2024, 3, 1, 10)),
    ("timestamp_ntz", "2024-03-01T10:00:00", datetime.datetime(2024, 3, 1, 10)),
    ("time", "10:30:00", datetime.time(10, 30)),
    ("time", "25:00", None),
    ("string", "x", "x"),
    ("string", 123, "123"),
    ("string", True, "true"),
    ("string", Decimal("1.50"), "1.50"),
    ("string", 1.5, "1.5"),
    ("string", {"a": 1}, None),
    ("json", {"a": 1}, '{"a": 1}'),
    ("json", [1, 2], "[1, 2]"),
    ("json", '{"b": 2}', '{"b": 2}'),
    ("json", 5, None),
]


@pytest.mark.parametrize(
    ("type_name", "raw", "expected"), COERCIONS, ids=[f"{c[0]}-{c[1]!r}" for c in COERCIONS]
)
def test_coercion(type_name: str, raw: Any, expected: Any) -> None:
    resolved = resolve_flat_type(type_name, None, "t")
    arrow_type = _arrow_type(resolved)
    for values in ([raw, None], [raw, object()]):  # Arrow fast path, then the per-value path
        array, bad = coerce_column(values, resolved, arrow_type)
        assert array.type == arrow_type
        assert array[0].as_py() == expected, values
        assert (bad is not None and bad[0].as_py()) is (expected is None), values


def _arrow_type(resolved: ResolvedType) -> pa.DataType:
    return Schema(NestedField(1, "c", resolved.iceberg, required=False)).as_arrow().field("c").type


@pytest.mark.parametrize(
    "type_name", ["bigint", "int", "double", "decimal(12,2)", "boolean", "date", "timestamp", "time"]
)
def test_blank_string_is_null_not_a_type_violation(type_name: str) -> None:
    resolved = resolve_flat_type(type_name, None, "t")
    for values in (["", "  ", None], ["", "  ", object()]):
        array, bad = coerce_column(values, resolved, _arrow_type(resolved))
        assert array.to_pylist()[:2] == [None, None]
        assert bad is None or bad.to_pylist()[:2] == [False, False]


def test_blank_strings_are_null_in_typed_columns(orders: Contract) -> None:
    rows = [order(1, quantity="", discount="  ", gift="", order_date="2024-03-02"), order(2, amount="")]
    result = Validator(orders).validate(rows, first_position=1)
    assert rules_of(result) == {(2, "amount", "required")}
    assert result.table.to_pylist()[0]["quantity"] is None
    assert result.table.to_pylist()[0]["gift"] is None
    strings = Validator(orders).validate([order(3, status="")], first_position=1)
    assert rules_of(strings) == {(1, "status", "validValues")}  # a string column keeps ""


def test_mixed_python_types_in_one_column(orders: Contract) -> None:
    rows = [order(1, quantity="4"), order(2, quantity=5), order(3, quantity=None), order(4, quantity="x")]
    result = Validator(orders).validate(rows, first_position=1)
    assert rules_of(result) == {(4, "quantity", "type")}
    assert result.table.column("quantity").to_pylist() == [4, 5, None]


def test_singer_sdk_style_values(orders: Contract) -> None:
    """The SDK hands Decimals for JSON numbers and datetimes for date-time strings."""
    rows = [
        order(1, amount=Decimal("12.5"), discount=Decimal("0.25"), created_at=TS),
        order(2, amount=Decimal("7"), discount=Decimal("0.1"), created_at=TS),
    ]
    result = Validator(orders).validate(rows, first_position=1)
    assert result.errors == []
    assert result.table.column("amount").to_pylist() == [Decimal("12.50"), Decimal("7.00")]
    assert result.table.column("discount").to_pylist() == [0.25, 0.1]


def test_regex_outside_re2_falls_back_to_python(tmp_path: Path) -> None:
    path = tmp_path / "c.odcs.yaml"
    path.write_text(
        "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: '1'\nstatus: active\nschema:\n"
        "  - name: t\n    properties:\n      - name: code\n        logicalType: string\n"
        "        logicalTypeOptions:\n          pattern: '^(?!test)[a-z]+$'\n"
    )
    result = Validator(load_contract(path)).validate(
        [{"code": "prod"}, {"code": "testing"}], first_position=1
    )
    assert rules_of(result) == {(2, "code", "pattern")}


FORMATS = [
    ("email", ["a@b.co", "first.last+tag@sub.example.org"], ["a@b", "a b@c.de", "@b.co", "plain"]),
    (
        "uuid",
        ["123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000"],
        ["123e4567", "g23e4567-e89b-12d3-a456-426614174000"],
    ),
    (
        "uri",
        ["https://x.example/a?b=c", "urn:isbn:0451450523", "s3://bucket/key"],
        ["no scheme", "://x", "http://a b"],
    ),
    ("date", ["2024-02-29", "1999-12-31"], ["2023-02-29", "2024-13-01", "2024-1-1", "20240101"]),
    (
        "date-time",
        ["2024-02-29T10:00:00Z", "2024-02-29T10:00:00.123+02:00", "2024-02-29t10:00:00z"],
        ["2024-02-29", "2024-02-29T25:00:00Z", "2024-02-29T10:00:00", "2023-02-29T10:00:00Z"],
    ),
    (
        "hostname",
        ["example.com", "a-b.c.example", "localhost"],
        ["-bad.example", "a..b", "x" * 64 + ".example", "under_score.example"],
    ),
    ("ipv4", ["192.168.0.1", "0.0.0.0", "255.255.255.255"], ["256.1.1.1", "1.2.3", "01.2.3.4.5"]),
    ("ipv6", ["::1", "2001:db8::8a2e:370:7334"], ["2001:db8::g", "1.2.3.4", ":::"]),
]


@pytest.mark.parametrize(("fmt", "good", "bad"), FORMATS, ids=[f[0] for f in FORMATS])
def test_string_formats(fmt: str, good: list[str], bad: list[str]) -> None:
    values = pa.array([*good, None, *bad], type=pa.large_string())
    assert format_violations(values, fmt).to_pylist() == [False] * (len(good) + 1) + [True] * len(bad)


def test_primary_key_already_on_the_branch_is_a_duplicate(orders: Contract) -> None:
    """append-only: keys read from the branch (composite, strings) reject a re-sent record, naming
    the branch; new keys pass. (Integer keys, hot path: tests/test_safe_defaults.py.)"""
    validator = Validator(orders)
    on_branch = [
        pa.chunked_array([["acme", "acme"]]),
        pa.chunked_array([[str(uuid.UUID(int=1)), str(uuid.UUID(int=2))]]),
    ]
    assert validator.uniqueness.seed_existing(on_branch, "acme")
    result = validator.validate([order(2), order(3)], first_position=1)
    assert rules_of(result) == {(1, "tenant_id,order_id", "primary_key")}
    assert "already on branch 'acme'" in result.errors[0].message
    assert validator.validate([order(4)], first_position=3).errors == []
    upsert = Validator(orders, primary_key_unique=False)  # upsert: no primary key check to seed
    assert not upsert.uniqueness.seed_existing(on_branch, "acme")
