"""Partition terms: `col`, `ingest_date`, `year|month|day|hour(col)`, `bucket(N, col)`, `truncate(W, col)`.

The `partitioning` setting (or, without it, the contract's `partitioned` columns) becomes the table's
partition spec when the table is created; when the terms change later, the spec evolves (Iceberg
partition evolution: old files keep their old layout, new files use the new one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    Transform,
    TruncateTransform,
    YearTransform,
)

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.iceberg.schema import sanitize_name

INGEST_DATE = "ingest_date"
_TERM = re.compile(r"^\s*(\w+)\s*\(\s*(?:(\d+)\s*,\s*)?([^()\s,]+)\s*\)\s*$")
_TIME = {"year": YearTransform, "month": MonthTransform, "day": DayTransform, "hour": HourTransform}


@dataclass(frozen=True)
class PartitionTerm:
    """One partition field: source column, transform, partition field name."""

    column: str
    transform: Transform
    name: str
    text: str


def parse_term(text: str, sanitize: bool = True) -> PartitionTerm:
    """Parse one term of the `partitioning` setting."""
    fix = sanitize_name if sanitize else (lambda s: s)
    match = _TERM.match(text)
    if match is None:
        if not text.strip() or "(" in text or ")" in text:
            raise ConfigError(
                f"partitioning: cannot parse {text!r} (expected col, day(col), bucket(N, col) ...)"
            )
        column = fix(text.strip())
        return PartitionTerm(column, IdentityTransform(), column, text)
    func, number, column = match.group(1).lower(), match.group(2), fix(match.group(3))
    if func in _TIME and number is None:
        return PartitionTerm(column, _TIME[func](), f"{column}_{func}", text)
    if func == "bucket" and number:
        return PartitionTerm(column, BucketTransform(int(number)), f"{column}_bucket_{number}", text)
    if func == "truncate" and number:
        return PartitionTerm(column, TruncateTransform(int(number)), f"{column}_trunc_{number}", text)
    if func == "identity" and number is None:
        return PartitionTerm(column, IdentityTransform(), column, text)
    raise ConfigError(
        f"partitioning: unknown transform in {text!r} (year, month, day, hour, bucket(N, c), truncate(W, c))"
    )


def parse_terms(texts: Iterable[str]) -> list[PartitionTerm]:
    """Parse every term; duplicates are an error."""
    terms = [parse_term(t) for t in texts]
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
        raise ConfigError(f"partitioning: duplicate partition fields in {list(texts)}")
    return terms


def build_spec(schema: Schema, terms: list[PartitionTerm]) -> PartitionSpec:
    """The partition spec for a new table; every source column must exist in the schema."""
    fields = []
    for i, term in enumerate(terms):
        try:
            source = schema.find_field(term.column, case_sensitive=False)
        except ValueError:
            raise ConfigError(
                f"partitioning: column {term.column!r} of {term.text!r} is not in the table"
            ) from None
        fields.append(
            PartitionField(
                source_id=source.field_id, field_id=1000 + i, transform=term.transform, name=term.name
            )
        )
    return PartitionSpec(*fields)


def evolve_spec(table: Table, terms: list[PartitionTerm]) -> bool:
    """Bring the table's spec to `terms` (add missing fields, drop others); True when it changed."""
    current = {(f.name, str(f.transform)) for f in table.spec().fields}
    wanted = {(t.name, str(t.transform)) for t in terms}
    if current == wanted:
        return False
    with table.update_spec() as update:
        for f in table.spec().fields:
            if (f.name, str(f.transform)) not in wanted:
                update.remove_field(f.name)
        for t in terms:
            if (t.name, str(t.transform)) not in current:
                update.add_field(t.column, t.transform, t.name)
    return True
