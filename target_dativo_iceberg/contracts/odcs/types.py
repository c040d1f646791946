"""ODCS `logicalType` refined by `physicalType` → Iceberg type.

`logicalType` picks the family, `physicalType` (if it names a type we know) picks the exact type
within it: `integer` + `int` → int, `integer` + `bigint` → long, `number` + `decimal(12,2)` →
decimal(12, 2), `date` + `timestamp` → timestamptz (ODCS v3.0 has no `timestamp` logicalType), … A
physicalType outside the family (`boolean` + `bigint`) is a contract error; an unknown one
(`NUMBER(38,0)` style names we do not list, vendor types) falls back to the logical default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyiceberg.types import (
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

from target_dativo_iceberg.errors import ContractProblem

LOGICAL_TYPES = ("string", "integer", "number", "boolean", "date", "timestamp", "time", "object", "array")
# ODCS logical types without a flat Iceberg equivalent: stored as JSON text.
JSON_LOGICAL_TYPES = ("object", "array", "map", "vector")

_DEFAULT_DECIMAL = (38, 18)

_PHYSICAL_KINDS: dict[str, str] = {}
for _kind, _names in {
    "long": "bigint long int64 int8 bigserial serial8 uint32 u32 i64",
    "int": "int integer int32 int4 smallint int2 int16 tinyint mediumint serial serial4 smallserial i8 i16 i32 u8 u16",
    "float": "float float4 float32 real f32",
    "double": "double float8 float64 f64 double_precision",
    "decimal": "decimal numeric number dec",
    "string": "string varchar char text nvarchar nchar clob character character_varying uuid json jsonb",
    "boolean": "boolean bool",
    "date": "date",
    "time": "time time_without_time_zone",
    "timestamptz": "timestamp timestamptz timestamp_tz timestamp_ltz datetime datetimeoffset timestamp_with_time_zone",
    "timestamp": "timestamp_ntz timestamp_without_time_zone datetime2",
}.items():
    for _name in _names.split():
        _PHYSICAL_KINDS[_name] = _kind

# kinds a logical type may be refined to; the first is the default.
_FAMILIES: dict[str, tuple[str, ...]] = {
    "string": ("string",),
    "integer": ("long", "int", "decimal"),
    "number": ("double", "float", "decimal", "long", "int"),
    "boolean": ("boolean",),
    "date": ("date", "timestamptz", "timestamp", "time"),
    "timestamp": ("timestamptz", "timestamp"),
    "time": ("time",),
}

_PHYSICAL = re.compile(r"^\s*([a-z][a-z0-9_ ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")

_INT_FORMATS = {
    "i8": "int",
    "i16": "int",
    "i32": "int",
    "u8": "int",
    "u16": "int",
    "i64": "long",
    "u32": "long",
}


@dataclass(frozen=True)
class ResolvedType:
    """An Iceberg type plus the coercion kind the validator uses for it."""

    iceberg: IcebergType
    kind: str  # int long float double decimal string json boolean date time timestamp timestamptz


def _parse_physical(physical: str) -> tuple[str | None, int | None, int | None]:
    match = _PHYSICAL.match(physical.lower())
    if not match:
        return None, None, None
    base = re.sub(r"\s+", "_", match.group(1))
    precision = int(match.group(2)) if match.group(2) else None
    scale = int(match.group(3)) if match.group(3) else None
    return _PHYSICAL_KINDS.get(base), precision, scale


def physical_decimal(physical: str) -> tuple[int, int | None] | None:
    """(precision, scale) of a decimal physicalType that spells its precision (`decimal(12,2)`,
    `NUMERIC(10)`: scale None); None for any other physicalType."""
    kind, precision, scale = _parse_physical(physical)
    return (precision, scale) if kind == "decimal" and precision is not None else None


def _build(kind: str, precision: int | None, scale: int | None, location: str) -> ResolvedType:
    if kind == "decimal":
        if precision is None:
            precision, scale = _DEFAULT_DECIMAL
        scale = scale or 0
        if not 1 <= precision <= 38 or scale > precision:
            raise ContractProblem(location, f"decimal({precision},{scale}) is not a valid Iceberg decimal")
        return ResolvedType(DecimalType(precision, scale), "decimal")
    iceberg: IcebergType = {
        "long": LongType(),
        "int": IntegerType(),
        "float": FloatType(),
        "double": DoubleType(),
        "string": StringType(),
        "json": StringType(),
        "boolean": BooleanType(),
        "date": DateType(),
        "time": TimeType(),
        "timestamptz": TimestamptzType(),
        "timestamp": TimestampType(),
    }[kind]
    return ResolvedType(iceberg, kind)


def _logical_default(logical: str, options: dict) -> str:
    fmt = str(options.get("format", "")).lower()
    if logical == "integer":
        if fmt in ("u64", "i128", "u128"):
            return "decimal"
        return _INT_FORMATS.get(fmt, "long")
    if logical == "number":
        return "float" if fmt == "f32" else "double"
    if logical == "timestamp" and options.get("timezone") is False:
        return "timestamp"
    return _FAMILIES[logical][0]


def resolve_type(
    logical: str | None, physical: str | None, options: dict, location: str, physical_location: str
) -> ResolvedType:
    """The Iceberg type of one property; `location`/`physical_location` point at the two keys."""
    if logical in JSON_LOGICAL_TYPES:
        return ResolvedType(StringType(), "json")
    if logical is not None and logical not in _FAMILIES:
        raise ContractProblem(location, f"unsupported logical type {logical!r}")
    kind, precision, scale = _parse_physical(physical) if physical else (None, None, None)
    if physical and physical.strip().lower() in ("json", "jsonb") and logical in (None, "string"):
        return ResolvedType(StringType(), "json" if logical is None else "string")
    if kind is None:
        if logical is None:
            return ResolvedType(StringType(), "string")
        kind = _logical_default(logical, options)
        if kind == "decimal":
            return _build("decimal", 38, 0, location)
        return _build(kind, None, None, location)
    if logical is not None and kind not in _FAMILIES[logical]:
        raise ContractProblem(
            physical_location, f"physicalType {physical!r} contradicts logicalType {logical!r}"
        )
    if kind == "decimal" and logical == "integer":
        if scale:
            raise ContractProblem(
                physical_location, f"physicalType {physical!r} has a scale; logicalType 'integer' has none"
            )
        precision = precision or 38
    return _build(kind, precision, scale, physical_location)


def resolve_flat_type(type_name: str, physical: str | None, location: str) -> ResolvedType:
    """A flat-flavour `type` (`integer`, `bigint`, `decimal(10,2)`, `timestamp`, …)."""
    name = type_name.strip().lower()
    if name in LOGICAL_TYPES:
        return resolve_type(name, physical, {}, location, location)
    kind, precision, scale = _parse_physical(name)
    if kind is None:
        raise ContractProblem(
            location,
            f"unsupported type {type_name!r}; use one of {', '.join(LOGICAL_TYPES)} or a physical type "
            "such as bigint, int, double, float, decimal(p,s), timestamp, timestamp_ntz, varchar",
        )
    if kind == "string" and name in ("json", "jsonb"):
        return ResolvedType(StringType(), "json")
    return _build(kind, precision, scale, location)


def can_identify(resolved: ResolvedType) -> bool:
    """Iceberg identifier fields may not be float, double or nested."""
    return resolved.kind not in ("float", "double")
