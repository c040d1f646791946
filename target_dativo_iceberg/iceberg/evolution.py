"""Schema evolution rules (design §4): compare an incoming schema with the table's.

- a new column, or a safe widening (int→long, float→double, a struct gaining fields) evolves the
  table, in the same transaction as the data;
- a value type the existing column holds losslessly (integers into a string column) is written into
  it, with a `schema_coerced` warning event;
- anything else (a type the column cannot hold) is a breaking change: SchemaChangeError, exit 2;
- so is a change of the table's key (its identifier fields: contract primaryKey or key_properties).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyiceberg.schema import Schema
from pyiceberg.types import (
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
)

from target_dativo_iceberg.errors import SchemaChangeError
from target_dativo_iceberg.events import EventLog

_PROMOTIONS = {(IntegerType, LongType), (FloatType, DoubleType)}
_NARROWER = {(LongType, IntegerType), (DoubleType, FloatType)}


@dataclass
class EvolutionPlan:
    """What a commit must do to the table's schema before writing."""

    union: Schema | None = None  # schema to `union_by_name` into the table, None when unchanged
    into_string: set[str] = field(default_factory=set)  # columns whose values are written as strings
    added: list[str] = field(default_factory=list)  # new columns (schema history: `added`, else `widened`)


def optional(f: NestedField) -> NestedField:
    """The same field, optional (new columns must be optional to be added to existing rows)."""
    return NestedField(f.field_id, f.name, f.field_type, required=False, doc=f.doc)


def plan_evolution(stream: str, existing: Schema, incoming: Schema, events: EventLog) -> EvolutionPlan:
    """Classify every top-level incoming column against the table's schema."""
    plan = EvolutionPlan()
    evolve = False
    union_fields: list[NestedField] = []
    by_name = {f.name: f for f in existing.fields}
    for f in incoming.fields:
        current = by_name.get(f.name)
        if current is None:
            evolve = True
            plan.added.append(f.name)
            union_fields.append(optional(f))
            continue
        change = type_change(current.field_type, f.field_type)
        keep = NestedField(f.field_id, f.name, current.field_type, required=current.required)
        if change in ("same", "narrower-fits"):
            union_fields.append(keep)
        elif change == "widen":
            evolve = True
            union_fields.append(NestedField(f.field_id, f.name, f.field_type, required=current.required))
        elif change == "into-string":
            events.emit(
                "schema_coerced",
                stream=stream,
                column=f.name,
                table_type=str(current.field_type),
                stream_type=str(f.field_type),
                message=f"values of column {f.name!r} are written as strings into the existing column",
            )
            plan.into_string.add(f.name)
            union_fields.append(keep)
        else:
            raise SchemaChangeError(
                f"stream {stream!r}: column {f.name!r} changes type from {current.field_type} "
                f"to {f.field_type}, which the table cannot hold; nothing was committed"
            )
    plan.union = Schema(*union_fields) if evolve else None
    return plan


def check_key(stream: str, table: str, existing: Schema, incoming: Schema) -> None:
    """SchemaChangeError when the stream's key (identifier fields) is not the table's."""
    have = [existing.find_column_name(i) for i in existing.identifier_field_ids]
    want = [incoming.find_column_name(i) for i in incoming.identifier_field_ids]
    if sorted(map(str, have)) != sorted(map(str, want)):
        raise SchemaChangeError(
            f"stream {stream!r}: table {table} is keyed on {', '.join(map(str, have)) or 'no key'}, "
            f"the stream on {', '.join(map(str, want)) or 'no key'}; a primary key change is a breaking "
            "change (land it in a new table, or recreate this one); nothing was committed"
        )


def type_change(current: IcebergType, incoming: IcebergType) -> str:
    """Classify a type change ignoring field ids: same, widen, narrower-fits, into-string, breaking."""
    if isinstance(current, StructType) and isinstance(incoming, StructType):
        existing = {f.name: f.field_type for f in current.fields}
        result = "same"
        for child in incoming.fields:
            if child.name not in existing:
                result = "widen"
                continue
            sub = type_change(existing[child.name], child.field_type)
            if sub in ("breaking", "into-string"):
                return "breaking"
            if sub == "widen":
                result = "widen"
        return result
    if isinstance(current, ListType) and isinstance(incoming, ListType):
        sub = type_change(current.element_type, incoming.element_type)
        return "breaking" if sub == "into-string" else sub
    if current == incoming:
        return "same"
    if (type(current), type(incoming)) in _PROMOTIONS:
        return "widen"
    if (type(current), type(incoming)) in _NARROWER:
        return "narrower-fits"
    if isinstance(current, StringType) and incoming.is_primitive:
        return "into-string"
    return "breaking"
