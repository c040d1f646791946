"""Per-record checks of streams without a contract: Singer schema, key properties, valid Unicode.

Streams with a contract are judged a batch at a time by the contract validator; the others are
checked here as each record arrives, like the SDK does, but every finding names the stream, the
record position and the field, and the mode decides: strict fails the run at the first bad
record (nothing of its batch is committed), warn buffers the record as `Rejected` so it lands in
`{table}__rejected` with every reason while the valid records commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from target_dativo_iceberg.errors import KeyPropertyMissingError, RecordError
from target_dativo_iceberg.inputs import (
    lone_surrogate,
    may_hold_surrogates,
    preview,
    printable,
    surrogate_message,
    where,
)
from target_dativo_iceberg.odcs.results import BatchResult, ErrorSummary, RowError, record_json

if TYPE_CHECKING:
    from target_dativo_iceberg.enforcement import Enforcer
    from target_dativo_iceberg.target import TargetDativoIceberg

MESSAGE_CHARS = 200


@dataclass(frozen=True)
class Rejected:
    """A record that failed its checks in warn mode, buffered in place (positions stay exact)."""

    record: dict[str, Any]
    errors: list[RowError]


def split_rejected(
    records: list[Any], first_position: int
) -> tuple[list[dict[str, Any]], list[int] | None, list[RowError], list[dict[str, Any]]]:
    """(kept records, their positions or None if all were kept, every finding, `__rejected` rows)."""
    if not any(isinstance(item, Rejected) for item in records):
        return records, None, [], []
    kept: list[dict[str, Any]] = []
    positions: list[int] = []
    findings: list[RowError] = []
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(records):
        if isinstance(item, Rejected):
            findings.extend(item.errors)
            reasons = [{"field": e.field, "rule": e.rule, "message": e.message} for e in item.errors]
            rows.append({"_record": record_json(item.record), "_errors": reasons})
        else:
            kept.append(item)
            positions.append(first_position + index)
    return kept, positions, findings, rows


def rejection_summary(findings: list[RowError], records: int, rejected: int, first_position: int) -> dict:
    """The `validation_errors` event fields for a batch's rejected records (as contracts report)."""
    summary = ErrorSummary()
    valid = list(range(records - rejected))
    summary.add(BatchResult(pa.table({}), valid, findings, records, first_position))
    return summary.as_dict()


class RecordChecks:
    """The checks of `IcebergSink` for streams without a contract (a mixin)."""

    dativo: TargetDativoIceberg
    enforcer: Enforcer | None
    stream_name: str
    schema: dict
    key_properties: list[str]
    datetime_error_treatment: Any
    _validator: Any  # the SDK's JSON Schema validator; None when `validate_records` is off
    _total_records_read: int
    #: Findings of the record `_validate_and_parse` just checked, for `process_record` (warn mode).
    intake_errors: list[RowError] | None = None

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: Any) -> None: ...

    @property
    def next_position(self) -> int:
        """Position (1-based, run-wide) of the stream's next record: error messages name it."""
        return self._total_records_read + 1

    def _validate_and_parse(self, record: dict) -> dict:
        """With a contract, records stay raw (the contract validator judges whole batches); without
        one, the record is checked here (the SDK's own check names neither stream nor record)."""
        if self.enforcer is not None:
            return record
        errors = self.record_errors(record, full=True)
        if errors:
            self.reject_or_fail(errors)
            return record
        self._parse_timestamps_in_record(
            record=record, schema=self.schema, treatment=self.datetime_error_treatment
        )
        return record

    def _singer_validate_message(self, record: dict) -> None:
        """Key properties: checked in `_validate_and_parse` for streams without a contract."""
        if self.enforcer is not None:
            super()._singer_validate_message(record)  # type: ignore[misc]

    def record_errors(self, record: dict, full: bool) -> list[RowError]:
        """Every finding on the next record: lone surrogates, and with `full` the Singer schema and
        key properties (BATCH files skip those, as in the SDK)."""
        position = self.next_position
        errors: list[RowError] = []
        if may_hold_surrogates(self.dativo.message_reader.current_line):
            found = lone_surrogate(record)
            if found is not None:
                field, char = found
                errors.append(RowError(position, printable(field), "type", surrogate_message(char), None))
        if not full:
            return errors
        if self._validator is not None:
            for error in self._validator.validator.iter_errors(record):
                errors.extend(_schema_findings(error, position))
        missing = [key for key in self.key_properties or [] if key not in record]
        if missing and not any(e.rule == "required" and e.field in missing for e in errors):
            keys = ", ".join(self.key_properties)
            errors.extend(
                RowError(position, key, "required", f"key property missing (key_properties: {keys})", None)
                for key in missing
            )
        return errors

    def reject_or_fail(self, errors: list[RowError]) -> None:
        """strict: fail the run naming the record; warn: `process_record` buffers it as Rejected."""
        if self.dativo.validation_mode != "strict":
            self.intake_errors = errors
            return
        first = errors[0]
        more = f" (and {len(errors) - 1} more finding(s))" if len(errors) > 1 else ""
        key = first.rule == "required" and first.field in (self.key_properties or [])
        raise (KeyPropertyMissingError if key else RecordError)(
            f"{where(stream=self.stream_name, position=first.position, field=first.field)}: "
            f"{first.message}{more}. Nothing of this batch was committed"
        )


def _schema_findings(error: Any, position: int) -> list[RowError]:
    """A jsonschema ValidationError as findings: field path, rule (the schema keyword), message."""
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        return [
            RowError(
                position, f"{path}.{key}" if path else key, "required", "required property is missing", None
            )
            for key in missing
        ]
    message = preview(str(error.message), MESSAGE_CHARS)
    return [RowError(position, printable(path) or "(record)", str(error.validator), message, error.instance)]
