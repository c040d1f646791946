"""Contract enforcement for one stream: validate a batch, split valid rows from rejected ones.

strict: any violation fails the run (exit 2) before anything of the batch is committed.
warn: valid rows are committed; invalid ones go to `{table}__rejected` with every reason, and the
run ends with exit code 1. Fields the contract does not know: strict rejects the stream at SCHEMA
time; warn drops them (a `validation_errors` event says which).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import ListType, NestedField, StringType, StructType, TimestamptzType

from target_dativo_iceberg.contracts.contract import Contract
from target_dativo_iceberg.contracts.validator import BatchResult, ErrorSummary, QualityFailure, Validator
from target_dativo_iceberg.errors import ContractViolation, SchemaError
from target_dativo_iceberg.events import EventLog

REJECTED_SUFFIX = "__rejected"

REJECTED_SCHEMA = Schema(
    NestedField(1, "_rejected_at", TimestamptzType(), required=False),
    NestedField(2, "_run_id", StringType(), required=False),
    NestedField(3, "_stream", StringType(), required=False),
    NestedField(4, "_record", StringType(), required=False),
    NestedField(
        5,
        "_errors",
        ListType(
            6,
            StructType(
                NestedField(7, "field", StringType(), required=False),
                NestedField(8, "rule", StringType(), required=False),
                NestedField(9, "message", StringType(), required=False),
            ),
            element_required=False,
        ),
        required=False,
    ),
)


@dataclass
class Outcome:
    """A validated batch: typed valid rows, rejected rows (warn mode), and the raw result."""

    valid: pa.Table
    valid_indices: list[int]
    rejected: list[dict[str, Any]]
    result: BatchResult


class Enforcer:
    """Validates one stream's batches against its contract under the configured mode."""

    def __init__(
        self,
        stream: str,
        contract: Contract,
        singer_schema: dict[str, Any],
        mode: str,
        upsert: bool,
        events: EventLog,
    ) -> None:
        self.stream = stream
        self.contract = contract
        self.mode = mode
        self.events = events
        self.summary = ErrorSummary()
        compat = contract.check_stream_schema(singer_schema)
        unknown = [f for f in compat.unknown_fields if not f.startswith("_sdc_")]
        problems = list(compat.incompatible)
        if compat.missing_required:
            problems.append(
                f"required contract field(s) missing from the stream: {', '.join(compat.missing_required)}"
            )
        if unknown and mode == "strict":
            problems.append(
                f"field(s) not in the contract: {', '.join(unknown)} "
                "(schema_validation_mode strict rejects them; warn drops them)"
            )
        if problems:
            raise SchemaError(
                f"stream {stream!r} does not match contract {contract.path}: "
                + "; ".join(str(p) for p in problems)
            )
        if unknown:
            events.emit(
                "validation_errors",
                stream=stream,
                mode=mode,
                rule="unknown_field",
                fields=unknown,
                message="fields not in the contract are dropped",
            )
        self.validator = Validator(
            contract,
            source_fields=list((singer_schema.get("properties") or {}).keys()),
            primary_key_unique=not upsert,
            unknown_fields="reject" if mode == "strict" else "warn",
        )
        events.emit(
            "validator_initialized",
            stream=stream,
            contract=contract.path,
            contract_id=contract.id,
            contract_version=contract.version,
            mode=mode,
            fields=len(contract.fields),
        )

    def validate(self, records: list[dict[str, Any]], first_position: int) -> Outcome:
        """Validate a batch; strict mode raises ContractViolation on any invalid record."""
        result = self.validator.validate(records, first_position)
        if not result.errors and not result.warnings:
            return Outcome(result.table, result.valid_indices, [], result)
        batch_summary = ErrorSummary()
        batch_summary.add(result)
        self.summary.add(result)
        self.events.emit("validation_errors", stream=self.stream, mode=self.mode, **batch_summary.as_dict())
        if result.errors and self.mode == "strict":
            raise ContractViolation(
                f"stream {self.stream!r} violates contract {self.contract.path} "
                f"(records {first_position}-{first_position + len(records) - 1}): {batch_summary}. "
                "Nothing of this batch was committed"
            )
        return Outcome(result.table, result.valid_indices, result.rejected_rows(records), result)

    def validate_arrow(self, table: pa.Table, first_position: int) -> Outcome | None:
        """Hot path: a clean Arrow batch; None when it needs `validate` (any finding at all)."""
        result = self.validator.validate_arrow(table, first_position)
        if result is None:
            return None
        return Outcome(result.table, result.valid_indices, [], result)

    def finish(self, total_rows: int) -> list[QualityFailure]:
        """Object-level quality (rowCount …) over the table's rows; strict raises on failure."""
        failures = self.validator.finish(total_rows)
        if failures:
            messages = [f.message for f in failures]
            self.events.emit("validation_errors", stream=self.stream, mode=self.mode, quality=messages)
            if self.mode == "strict":
                raise ContractViolation(
                    f"stream {self.stream!r}: contract {self.contract.path} quality check failed: "
                    + "; ".join(messages)
                    + ". Nothing of the final batch was committed"
                )
        return failures


def seed_branch_keys(
    enforcer: Enforcer,
    load: Callable[[tuple[str, str]], Table | None],
    identifier: tuple[str, str],
    branch: str,
) -> None:
    """Append-only: the primary keys already on the branch (main's when the branch is not cut yet)
    join the run's uniqueness check, so a row sent again is a duplicate (strict: exit 2; warn:
    rejected, rule `primary_key`). Costs one scan of the key columns per stream and run."""
    keys = enforcer.contract.identifier_columns()
    if not keys or not any(g.rule == "primary_key" for g in enforcer.validator.uniqueness.groups):
        return
    table = load(identifier)
    snapshot = None if table is None else table.snapshot_by_name(branch) or table.snapshot_by_name("main")
    if table is None or snapshot is None:
        return
    rows = table.scan(selected_fields=tuple(keys), snapshot_id=snapshot.snapshot_id).to_arrow()
    enforcer.validator.uniqueness.seed_existing([rows.column(k) for k in keys], branch)


def rejected_table(rows: list[dict[str, Any]], run_id: str, stream: str, arrow_schema: pa.Schema) -> pa.Table:
    """Rows for `{table}__rejected`: when, which run and stream, the raw record and every reason."""
    now = datetime.datetime.now(datetime.timezone.utc)
    data = {
        "_rejected_at": [now] * len(rows),
        "_run_id": [run_id] * len(rows),
        "_stream": [stream] * len(rows),
        "_record": [r["_record"] for r in rows],
        "_errors": [r["_errors"] for r in rows],
    }
    return pa.Table.from_pydict(data, schema=arrow_schema)


def errors_json(rows: list[dict[str, Any]]) -> str:
    """Compact JSON of rejected rows' reasons (for log lines)."""
    return json.dumps([r["_errors"] for r in rows][:5])
