"""Singer JSON Schema → Iceberg schema, and Singer records → Arrow columns.

Mapping: integer→long, number→double, string, boolean, `date-time`→timestamptz
(naive input taken as UTC), `date`, `time`, object with properties→struct, array→list; objects
without properties, `{}` and unions other than nullable → string holding JSON. Column names are
lower-cased with non-alphanumerics turned into `_`; two source names landing on one column is an error.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DateType,
    DoubleType,
    IcebergType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
    TimestamptzType,
    TimeType,
)

from target_dativo_iceberg.errors import RecordError, SchemaError

_NON_ALNUM = re.compile(r"[^a-z0-9_]")


def sanitize_name(name: str) -> str:
    """The one rule for namespace, table and column names: lower-case, non-alphanumerics → `_`,
    never empty, never starting with a digit (`_` goes in front: SQL engines take a name that
    starts with a digit only quoted). Documented in docs/iceberg.md, "Tables"."""
    clean = _NON_ALNUM.sub("_", str(name).strip().lower())
    if not clean:
        clean = "_"
    if clean[0].isdigit():
        clean = f"_{clean}"
    return clean


class _Ids:
    """Allocates Iceberg field ids in schema order."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self) -> int:
        self.next += 1
        return self.next


def _json_types(prop: dict[str, Any]) -> tuple[list[str], bool]:
    """The non-null JSON types a property allows, and whether null is allowed."""
    if "anyOf" in prop or "oneOf" in prop:
        options = prop.get("anyOf") or prop.get("oneOf") or []
        types: list[str] = []
        nullable = False
        for option in options:
            sub, sub_null = _json_types(option)
            nullable = nullable or sub_null
            types.extend(t for t in sub if t not in types)
        return types, nullable
    raw = prop.get("type")
    if raw is None:
        return [], True
    type_list = [raw] if isinstance(raw, str) else list(raw)
    return [t for t in type_list if t != "null"], "null" in type_list


def _pick_option(prop: dict[str, Any], json_type: str) -> dict[str, Any]:
    """For an anyOf/oneOf, the option carrying `json_type` (so its format/properties are used)."""
    for option in prop.get("anyOf") or prop.get("oneOf") or []:
        sub, _ = _json_types(option)
        if json_type in sub:
            return option
    return prop


@dataclass
class ColumnKind:
    """How a JSON value becomes an Arrow value for one column (recursive for structs/lists)."""

    kind: str  # long, double, string, json, boolean, timestamptz, date, time, struct, list
    children: dict[str, tuple[str, ColumnKind]] = field(default_factory=dict)  # src name → (col, kind)
    element: ColumnKind | None = None


def iceberg_type_for(prop: dict[str, Any], ids: _Ids, path: str) -> tuple[IcebergType, ColumnKind, bool]:
    """Iceberg type, value conversion and nullability for one JSON Schema property."""
    types, nullable = _json_types(prop)
    if len(types) != 1:
        # {} (any), or a real union such as ["string", "integer"]: keep the value as JSON text.
        if len(types) == 2 and set(types) == {"integer", "number"}:
            return DoubleType(), ColumnKind("double"), nullable
        return StringType(), ColumnKind("json"), True
    json_type = types[0]
    prop = _pick_option(prop, json_type)
    fmt = prop.get("format")
    if json_type == "integer":
        return LongType(), ColumnKind("long"), nullable
    if json_type == "number":
        return DoubleType(), ColumnKind("double"), nullable
    if json_type == "boolean":
        return BooleanType(), ColumnKind("boolean"), nullable
    if json_type == "string":
        if fmt == "date-time":
            return TimestamptzType(), ColumnKind("timestamptz"), nullable
        if fmt == "date":
            return DateType(), ColumnKind("date"), nullable
        if fmt == "time":
            return TimeType(), ColumnKind("time"), nullable
        return StringType(), ColumnKind("string"), nullable
    if json_type == "object":
        props = prop.get("properties")
        if not props:
            return StringType(), ColumnKind("json"), nullable
        fields, kind = struct_fields(props, prop.get("required") or [], ids, path)
        return StructType(*fields), kind, nullable
    if json_type == "array":
        items = prop.get("items")
        if not isinstance(items, dict) or not items:
            return StringType(), ColumnKind("json"), nullable
        element_id = ids()
        element_type, element_kind, element_nullable = iceberg_type_for(items, ids, f"{path}[]")
        list_type = ListType(element_id, element_type, element_required=not element_nullable)
        return list_type, ColumnKind("list", element=element_kind), nullable
    raise SchemaError(f"field {path!r}: unsupported JSON Schema type {json_type!r}")


def struct_fields(
    properties: dict[str, Any], required: Iterable[str], ids: _Ids, path: str = ""
) -> tuple[list[NestedField], ColumnKind]:
    """Fields of a struct (or of the top-level record) with collision checks on sanitized names."""
    required_set = set(required)
    seen: dict[str, str] = {}
    pending: list[tuple[int, str, dict[str, Any]]] = []
    for name, prop in properties.items():
        col = sanitize_name(name)
        if col in seen:
            where = f" in {path!r}" if path else ""
            raise SchemaError(
                f"columns {seen[col]!r} and {name!r}{where} both map to Iceberg column {col!r}; rename one"
            )
        seen[col] = name
        pending.append((ids(), name, prop))
    fields: list[NestedField] = []
    kind = ColumnKind("struct")
    for field_id, name, prop in pending:
        col = sanitize_name(name)
        child_path = f"{path}.{name}" if path else name
        ice_type, child_kind, nullable = iceberg_type_for(
            prop if isinstance(prop, dict) else {}, ids, child_path
        )
        is_required = name in required_set and not nullable
        fields.append(NestedField(field_id, col, ice_type, required=is_required))
        kind.children[name] = (col, child_kind)
    return fields, kind


@dataclass
class StreamSchema:
    """A Singer stream's schema resolved for Iceberg: the schema and how to convert its records."""

    iceberg: Schema
    kind: ColumnKind
    key_columns: list[str]


def singer_to_iceberg(stream: str, schema: dict[str, Any], key_properties: Iterable[str]) -> StreamSchema:
    """Map a Singer SCHEMA message's schema to an Iceberg schema."""
    properties = schema.get("properties") or {}
    ids = _Ids()
    try:
        fields, kind = struct_fields(properties, schema.get("required") or [], ids)
    except SchemaError as exc:
        raise SchemaError(f"stream {stream!r}: {exc}") from exc
    key_columns = []
    for key in key_properties or []:
        if key not in properties:
            raise SchemaError(f"stream {stream!r}: key property {key!r} is not in the schema")
        key_columns.append(sanitize_name(key))
    return StreamSchema(iceberg=Schema(*fields), kind=kind, key_columns=key_columns)


# ---------------------------------------------------------------- value conversion


def _to_datetime(value: Any) -> datetime.datetime:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.timezone.utc)
    raise ValueError(f"not a timestamp: {value!r}")


def _to_date(value: Any) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        return datetime.date.fromisoformat(value[:10])
    raise ValueError(f"not a date: {value!r}")


def _to_time(value: Any) -> datetime.time:
    if isinstance(value, datetime.time):
        return value
    if isinstance(value, str):
        return datetime.time.fromisoformat(value)
    raise ValueError(f"not a time: {value!r}")


_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def _to_long(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"boolean {value!r} is not an integer")
    if isinstance(value, int):
        result = value
    elif isinstance(value, (float, decimal.Decimal)) and value == int(value):
        result = int(value)
    elif isinstance(value, str):
        result = int(value.strip())
    else:
        raise ValueError(f"not an integer: {value!r}")
    if not _LONG_MIN <= result <= _LONG_MAX:
        raise ValueError("out of range for a 64-bit long")
    return result


def _to_double(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"boolean {value!r} is not a number")
    return float(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"not a boolean: {value!r}")


def json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def _to_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=json_default, ensure_ascii=False)


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return _to_json(value)


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "long": _to_long,
    "double": _to_double,
    "string": _to_string,
    "json": _to_json,
    "boolean": _to_bool,
    "timestamptz": _to_datetime,
    "date": _to_date,
    "time": _to_time,
}


def convert_value(value: Any, kind: ColumnKind) -> Any:
    """Convert one JSON value to what Arrow expects for the column kind."""
    if value is None:
        return None
    scalar = _SCALARS.get(kind.kind)
    if scalar is not None:
        return scalar(value)
    if kind.kind == "struct":
        if not isinstance(value, dict):
            raise ValueError(f"expected an object, got {type(value).__name__}")
        return {col: convert_value(value.get(src), ck) for src, (col, ck) in kind.children.items()}
    if kind.kind == "list":
        if not isinstance(value, list):
            raise ValueError(f"expected an array, got {type(value).__name__}")
        assert kind.element is not None
        return [convert_value(v, kind.element) for v in value]
    raise ValueError(f"unknown column kind {kind.kind}")


def records_to_arrow(
    stream: str,
    records: list[dict[str, Any]],
    kind: ColumnKind,
    arrow_schema: pa.Schema,
    first_position: int = 1,
    required: frozenset[str] = frozenset(),
    positions: list[int] | None = None,
) -> pa.Table:
    """Build an Arrow table in the table's column order; columns the stream lacks are null.

    `required` names columns the stream's schema declares required: a null there is an error even
    when the table column itself is optional. A value that cannot be converted raises RecordError
    naming stream, record position (`positions[i]`, else `first_position + i`) and field.
    """

    def position(index: int) -> int:
        return positions[index] if positions is not None else first_position + index

    columns: dict[str, list[Any]] = {}
    for src, (col, ck) in kind.children.items():
        values: list[Any] = []
        append = values.append
        for idx, record in enumerate(records):
            raw = record.get(src)
            try:
                append(convert_value(raw, ck))
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise RecordError(
                    f"stream {stream!r}, record {position(idx)}, field {src!r}: "
                    f"cannot convert {raw!r} to {ck.kind} ({exc})"
                ) from exc
        columns[col] = values
    arrays = []
    for arrow_field in arrow_schema:
        values = columns.get(arrow_field.name)
        if values is None:
            if not arrow_field.nullable or arrow_field.name in required:
                raise RecordError(
                    f"stream {stream!r}: required column {arrow_field.name!r} is missing from the stream"
                )
            arrays.append(pa.nulls(len(records), type=arrow_field.type))
            continue
        try:
            array = pa.array(values, type=arrow_field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise RecordError(f"stream {stream!r}, field {arrow_field.name!r}: {exc}") from exc
        if array.null_count and (not arrow_field.nullable or arrow_field.name in required):
            raise RecordError(
                f"stream {stream!r}, record {position(values.index(None))}, field {arrow_field.name!r}: "
                "null or missing value for a required column"
            )
        arrays.append(array)
    try:
        return pa.Table.from_arrays(arrays, schema=arrow_schema)
    except pa.ArrowInvalid as exc:
        raise RecordError(f"stream {stream!r}: {exc}") from exc
