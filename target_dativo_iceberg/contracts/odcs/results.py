"""Validation results: row errors, the batch result, rejected rows, the error summary.

Shapes the callers need: strict mode logs `ErrorSummary` (counts per field and
rule, up to 5 example values and record positions each); warn mode writes
`BatchResult.rejected_rows` (`_record` JSON + `_errors` list of {field, rule, message}, every reason
of the row) to `{table}__rejected`, whose `_errors` Arrow type is `REJECTED_ERRORS_TYPE`.
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import pyarrow as pa

from target_dativo_iceberg.unicode import lone_surrogate, surrogate_message

Batch = Union[Sequence[Mapping[str, Any]], Mapping[str, Sequence[Any]]]

MAX_EXAMPLES = 5
REJECTED_ERRORS_TYPE = pa.list_(
    pa.struct([("field", pa.string()), ("rule", pa.string()), ("message", pa.string())])
)


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def record_json(record: Mapping[str, Any]) -> str:
    """A raw record as JSON text for `_record`; a lone surrogate stays its `\\udxxx` escape (the
    text must be valid UTF-8 to be stored)."""
    text = json.dumps(record, default=_json_default, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def short_repr(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def value_message(detail: str, value: Any) -> str:
    """`detail: value`, saying why when the value holds text that is not valid Unicode (its repr
    looks like an ordinary escape)."""
    found = lone_surrogate(value)
    reason = f" ({surrogate_message(found[1])})" if found is not None else ""
    return f"{detail}: {short_repr(value)}{reason}"


@dataclass(frozen=True)
class RowError:
    """One violation: record position (1-based, across the run), field, rule, message, raw value."""

    position: int
    field: str
    rule: str
    message: str
    value: Any


@dataclass
class BatchResult:
    """What `validate` found in one batch."""

    table: pa.Table  # valid rows, typed per the contract's Arrow schema
    valid_indices: list[int]  # batch-relative indices of the rows in `table`
    errors: list[RowError]  # ordered by position
    rows: int
    first_position: int
    warnings: list[RowError] = field(default_factory=list)  # unknown fields when they do not reject

    @property
    def rejected(self) -> int:
        """Number of invalid rows."""
        return self.rows - len(self.valid_indices)

    def errors_by_position(self) -> dict[int, list[RowError]]:
        """Every reason, per invalid record position."""
        grouped: dict[int, list[RowError]] = {}
        for error in self.errors:
            grouped.setdefault(error.position, []).append(error)
        return grouped

    def rejected_rows(self, batch: Batch) -> list[dict[str, Any]]:
        """`{_record: JSON of the raw record, _errors: [{field, rule, message}]}` per invalid row."""
        rows = []
        for position, errors in self.errors_by_position().items():
            index = position - self.first_position
            if isinstance(batch, Mapping):
                record = {key: values[index] for key, values in batch.items()}
            else:
                record = dict(batch[index])
            rows.append(
                {
                    "_record": record_json(record),
                    "_errors": [{"field": e.field, "rule": e.rule, "message": e.message} for e in errors],
                }
            )
        return rows


class ErrorSummary:
    """Counts per (field, rule) with up to 5 example values and positions; accumulates batches."""

    def __init__(self, max_examples: int = MAX_EXAMPLES) -> None:
        self.max_examples = max_examples
        self.records = 0
        self.rejected = 0
        self._counts: dict[tuple[str, str], int] = {}
        self._examples: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def add(self, result: BatchResult) -> None:
        """Fold one batch's result in."""
        self.records += result.rows
        self.rejected += result.rejected
        for error in result.errors + result.warnings:
            key = (error.field, error.rule)
            self._counts[key] = self._counts.get(key, 0) + 1
            examples = self._examples.setdefault(key, [])
            if len(examples) < self.max_examples:
                value = json.loads(json.dumps(error.value, default=_json_default))
                examples.append({"position": error.position, "value": value, "message": error.message})

    def __bool__(self) -> bool:
        return bool(self._counts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: totals and one entry per (field, rule), most frequent first."""
        violations = [
            {"field": f, "rule": r, "count": n, "examples": self._examples[(f, r)]}
            for (f, r), n in sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))
        ]
        return {
            "records": self.records,
            "rejected_records": self.rejected,
            "errors": sum(self._counts.values()),
            "violations": violations,
        }

    def __str__(self) -> str:
        parts = []
        for entry in self.as_dict()["violations"]:
            shown = ", ".join(
                f"record {e['position']}: {short_repr(e['value'], 60)}" for e in entry["examples"]
            )
            parts.append(f"{entry['field']}/{entry['rule']}: {entry['count']} (e.g. {shown})")
        return f"{self.rejected} of {self.records} records invalid; " + "; ".join(parts)


@dataclass(frozen=True)
class QualityFailure:
    """A run-level check that failed in `finish` (rowCount, thresholds other than zero)."""

    rule: str
    field: str | None
    observed: float
    expected: str
    message: str
