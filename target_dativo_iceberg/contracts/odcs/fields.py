"""Contract properties → `ContractField`s (types, keys, rules), and Singer SCHEMA compatibility.

Primary key: `primaryKey: true` or a `primaryKeyPosition` ≥ 1 (flat flavour also `primary_key`),
ordered by position, then document order; a key column is required (an Iceberg identifier field
must be). Partitioning likewise from `partitioned`/`partitionKeyPosition`. Iceberg column name:
`physicalName` or `name`, sanitized like every other name in the target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyiceberg.types import IcebergType

from target_dativo_iceberg.contracts.odcs import join_location
from target_dativo_iceberg.contracts.odcs.rules import (
    FieldRules,
    QualityCheck,
    parse_field_rules,
    parse_quality,
    value_set_check,
)
from target_dativo_iceberg.contracts.odcs.types import (
    JSON_LOGICAL_TYPES,
    can_identify,
    resolve_flat_type,
    resolve_type,
)
from target_dativo_iceberg.errors import ContractProblem
from target_dativo_iceberg.iceberg.schema import sanitize_name

# Singer JSON types → coercion kinds whose values they can carry (strings reach every kind).
_CARRIES = {
    "string": None,
    "integer": {"int", "long", "float", "double", "decimal", "string"},
    "number": {"int", "long", "float", "double", "decimal", "string"},
    "boolean": {"boolean", "string"},
    "object": {"json"},
    "array": {"json"},
}


@dataclass(frozen=True)
class ContractField:
    """One property of the contract's schema object: one Iceberg column and its rules."""

    name: str  # property name: the key of the value in Singer records
    column: str  # Iceberg column: physicalName or name, sanitized
    logical_type: str | None
    physical_type: str | None
    iceberg_type: IcebergType
    kind: str  # coercion kind (int long float double decimal string json boolean date time timestamp[tz])
    required: bool
    primary_key_position: int | None = None
    unique: bool = False
    partition_key_position: int | None = None
    classification: str | None = None
    description: str | None = None
    rules: FieldRules = field(default_factory=FieldRules)
    quality: tuple[QualityCheck, ...] = ()
    location: str = ""


@dataclass(frozen=True)
class StreamCompatibility:
    """How a Singer stream's SCHEMA lines up with the contract (`Contract.check_stream_schema`)."""

    unknown_fields: tuple[str, ...]  # stream properties the contract does not define
    missing_fields: tuple[str, ...]  # contract fields the stream lacks: they land as null
    missing_required: tuple[str, ...]  # ... of which required: every record would be rejected
    incompatible: tuple[str, ...]  # messages: a stream type the column can never hold

    @property
    def ok(self) -> bool:
        """No unknown fields, no required field missing, no impossible type."""
        return not (self.unknown_fields or self.missing_required or self.incompatible)

    def problems(self) -> list[str]:
        """One message per problem, for logs and errors."""
        out = [f"field {name!r} is not in the contract" for name in self.unknown_fields]
        out += [f"required field {name!r} is not in the stream" for name in self.missing_required]
        return out + list(self.incompatible)


def bind_source_key(field: ContractField, available: Iterable[str] | None) -> str | None:
    """The stream property carrying a field: its name, else its column name, else a case-insensitive
    match of the name; None when the stream has none (or, without `available`, the name)."""
    if available is None:
        return field.name
    names = set(available)
    if field.name in names:
        return field.name
    if field.column in names:
        return field.column
    lowered = {name.lower(): name for name in names}
    return lowered.get(field.name.lower())


def _json_types(prop: Any) -> set[str]:
    if not isinstance(prop, Mapping):
        return set()
    types: set[str] = set()
    for option in prop.get("anyOf") or prop.get("oneOf") or []:
        types |= _json_types(option)
    raw = prop.get("type")
    types |= {raw} if isinstance(raw, str) else set(raw or [])
    return types - {"null"}


def stream_compatibility(fields: tuple[ContractField, ...], schema: Mapping[str, Any]) -> StreamCompatibility:
    """Compare a Singer SCHEMA (`{"properties": {...}}`) with the contract's fields."""
    properties = schema.get("properties") or {}
    bound: dict[str, ContractField] = {}
    missing, missing_required, incompatible = [], [], []
    for f in fields:
        key = bind_source_key(f, properties)
        if key is None:
            missing.append(f.name)
            if f.required:
                missing_required.append(f.name)
            continue
        bound[key] = f
        for json_type in sorted(_json_types(properties[key])):
            allowed = _CARRIES.get(json_type)
            if allowed is not None and f.kind not in allowed:
                incompatible.append(f"field {key!r}: stream type {json_type} cannot become {f.iceberg_type}")
    unknown = tuple(name for name in properties if name not in bound)
    return StreamCompatibility(unknown, tuple(missing), tuple(missing_required), tuple(incompatible))


# ---------------------------------------------------------------- properties → fields


def _positions(props: list[tuple[dict, str]], flag: str, key: str) -> dict[int, int]:
    """Index of property → 1-based position for primary/partition keys (flag or position ≥ 1)."""
    chosen: list[tuple[int, int, int]] = []
    seen: dict[int, str] = {}
    for index, (prop, location) in enumerate(props):
        position = prop.get(key)
        flagged = prop.get(flag) is True or (flag == "primaryKey" and prop.get("primary_key") is True)
        has_position = isinstance(position, int) and not isinstance(position, bool) and position >= 1
        if prop.get(flag) is False or not (flagged or has_position):
            continue  # an explicit `primaryKey: false` / `partitioned: false` wins over a position
        if has_position:
            if position in seen:
                raise ContractProblem(
                    join_location(location, key), f"{key} {position} is also used by {seen[position]}"
                )
            seen[position] = str(prop.get("name"))
        chosen.append((0 if has_position else 1, position if has_position else index, index))
    return {index: rank for rank, (_, _, index) in enumerate(sorted(chosen), start=1)}


def build_fields(props: list[tuple[dict, str]], flat: bool, notes: list[str]) -> tuple[ContractField, ...]:
    """Fields from (property, location) pairs; `notes` collects what is read but not enforced."""
    keys = _positions(props, "primaryKey", "primaryKeyPosition")
    parts = _positions(props, "partitioned", "partitionKeyPosition")
    fields: list[ContractField] = []
    columns: dict[str, str] = {}
    for index, (prop, location) in enumerate(props):
        name = str(prop["name"])
        logical, physical = prop.get("logicalType"), prop.get("physicalType")
        if flat:
            resolved = resolve_flat_type(str(prop["type"]), physical, join_location(location, "type"))
            logical = str(prop["type"])
        else:
            options = prop.get("logicalTypeOptions") or {}
            resolved = resolve_type(
                logical,
                physical,
                options,
                join_location(location, "logicalType"),
                join_location(location, "physicalType"),
            )
            if logical in JSON_LOGICAL_TYPES and prop.get("properties"):
                notes.append(
                    f"{location}: nested properties of {name!r} are stored as JSON text, not checked"
                )
        column = sanitize_name(str(prop.get("physicalName") or name))
        if column in columns:
            raise ContractProblem(
                location, f"{name!r} and {columns[column]!r} both map to Iceberg column {column!r}"
            )
        columns[column] = name
        if index in keys and not can_identify(resolved):
            raise ContractProblem(
                location, f"primary key {name!r} cannot be a {resolved.kind} (Iceberg identifier)"
            )
        checks = parse_quality(prop.get("quality"), join_location(location, "quality"), name, resolved, notes)
        for key in ("validValues", "valid_values", "enum"):
            if key in prop:
                checks.insert(0, value_set_check(prop[key], name, resolved, join_location(location, key)))
        required = prop.get("required") is True or prop.get("nullable") is False or index in keys
        fields.append(
            ContractField(
                name=name,
                column=column,
                logical_type=logical,
                physical_type=physical,
                iceberg_type=resolved.iceberg,
                kind=resolved.kind,
                required=required,
                primary_key_position=keys.get(index),
                unique=prop.get("unique") is True,
                partition_key_position=parts.get(index),
                classification=prop.get("classification"),
                description=prop.get("description") if isinstance(prop.get("description"), str) else None,
                rules=parse_field_rules(prop, resolved, location, notes),
                quality=tuple(checks),
                location=location,
            )
        )
    return tuple(fields)
