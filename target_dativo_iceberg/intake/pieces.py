"""Typed values of a stream's buffer: what arrived (pieces) and what validation made of it.

A sink's buffer holds its input in arrival order — runs of RECORD lines parsed as Arrow, the rows of
a Parquet BATCH file, records of the per-record path — and a commit turns it into one `Validated`.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

if t.TYPE_CHECKING:
    from target_dativo_iceberg.iceberg.evolution import EvolutionPlan

#: Builds the batch's Arrow table for the table's Arrow schema (after any schema evolution).
Builder = t.Callable[[pa.Schema, "EvolutionPlan"], pa.Table]


@dataclass(frozen=True)
class ArrowRows:
    """Rows as Arrow columns: a hot run of RECORD lines (`lines` kept for the record path and the
    replay digest), or a Parquet BATCH file's rows (`lines` is None)."""

    lines: pa.Array | None
    table: pa.Table

    @property
    def count(self) -> int:
        return self.table.num_rows


@dataclass
class RecordRows:
    """Records of the per-record path: Python dicts, and in warn mode `recordchecks.Rejected` ones
    that failed their Singer-schema checks (kept in place so record positions stay exact)."""

    records: list[Any] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.records)


Piece = ArrowRows | RecordRows


@dataclass(frozen=True)
class Validated:
    """A batch after validation: how to build its rows, how many land, the rejected ones, and
    whether it was judged as Arrow (`hot`) or record by record."""

    build: Builder
    landed: int
    rejected: list[dict[str, Any]]
    hot: bool
