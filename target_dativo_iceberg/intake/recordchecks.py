"""Per-record checks of streams without a contract: Singer schema, key properties, valid Unicode.

Streams with a contract are judged a batch at a time by the contract validator; the others are
checked here as each record arrives (the sink's `validate_and_parse` hook), like the SDK does, but
every finding names the stream, the record position and the field, and the mode decides: strict
fails the run at the first bad record (nothing of its batch is committed), warn buffers the record
as `Rejected` so it lands in `{table}__rejected` with every reason while the valid records commit.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from target_dativo_iceberg.contracts.jsonschema_rules import Node, Unsupported, compile_rules
from target_dativo_iceberg.contracts.odcs.results import BatchResult, ErrorSummary, RowError, record_json
from target_dativo_iceberg.errors import KeyPropertyMissingError, RecordError
from target_dativo_iceberg.intake.inputs import (
    preview,
    printable,
    where,
)
from target_dativo_iceberg.unicode import lone_surrogate, may_hold_surrogates, surrogate_message

if TYPE_CHECKING:
    from target_dativo_iceberg.intake.buffer import LineSource

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
    """The per-record checks of a stream without a contract."""

    def __init__(
        self,
        stream: str,
        key_properties: list[str] | None,
        validation_mode: str,
        lines: LineSource,
        schema_validator: t.Callable[[], Any],
        next_position: t.Callable[[], int],
        schema: dict[str, Any] | None = None,
        parse_timestamps: t.Callable[[dict], None] = lambda _record: None,
    ) -> None:
        self.stream = stream
        self.key_properties = list(key_properties or [])
        self.strict = validation_mode == "strict"
        self._lines = lines  # the raw line of the record being checked (surrogates show in it)
        self._schema_validator = (
            schema_validator  # the SDK's JSON Schema validator (None: validate_records off)
        )
        self.next_position = next_position  # position (1-based, run-wide) of the stream's next record
        self._findings: list[RowError] | None = None  # warn mode: the record just checked is rejected
        self._parse_timestamps = parse_timestamps  # the SDK's parsing of top-level date-like values
        #: The schema's column rules (the columnar path), or why the stream is checked record by record.
        self.validate = schema_validator() is not None
        self.rules: Node | Unsupported = compile_rules(schema or {}, self.validate)

    def judge_record(self, record: dict, position: int, line: bytes) -> dict | Rejected:
        """A record of a columnar batch re-checked on the record path: the same checks and parsing
        as a record arriving one by one (strict mode raises)."""
        findings = self.record_errors(record, full=True, position=position, line=line)
        if findings:
            return Rejected(record, self.reject_or_fail(findings))
        self._parse_timestamps(record)
        return record

    def check(self, record: dict) -> bool:
        """Check a RECORD message's record: True when it passes; strict fails the run, warn keeps the
        findings for `take_findings` (the record is then buffered as `Rejected`)."""
        findings = self.record_errors(record, full=True)
        if findings:
            self._findings = self.reject_or_fail(findings)
        return not findings

    def check_batch_record(self, record: dict) -> None:
        """A BATCH JSONL record: lone surrogates only (the SDK checks nothing else there either)."""
        if findings := self.record_errors(record, full=False):
            self._findings = self.reject_or_fail(findings)

    def take_findings(self) -> list[RowError] | None:
        """The findings on the record just checked (warn mode), once."""
        findings, self._findings = self._findings, None
        return findings

    def record_errors(
        self, record: dict, full: bool, position: int | None = None, line: bytes | None = None
    ) -> list[RowError]:
        """Every finding on a record (default: the next one, its line the reader's current line):
        lone surrogates, and with `full` the Singer schema and key properties (BATCH files skip
        those, as in the SDK)."""
        position = self.next_position() if position is None else position
        errors: list[RowError] = []
        if may_hold_surrogates(self._lines.current_line if line is None else line):
            found = lone_surrogate(record)
            if found is not None:
                field, char = found
                errors.append(RowError(position, printable(field), "type", surrogate_message(char), None))
        if not full:
            return errors
        validator = self._schema_validator()
        if validator is not None:
            for error in validator.validator.iter_errors(record):
                errors.extend(_schema_findings(error, position))
        missing = [key for key in self.key_properties if key not in record]
        if missing and not any(e.rule == "required" and e.field in missing for e in errors):
            keys = ", ".join(self.key_properties)
            errors.extend(
                RowError(position, key, "required", f"key property missing (key_properties: {keys})", None)
                for key in missing
            )
        return errors

    def reject_or_fail(self, errors: list[RowError]) -> list[RowError]:
        """strict: fail the run naming the record; warn: the findings, for the record to be buffered
        as `Rejected`."""
        if not self.strict:
            return errors
        first = errors[0]
        more = f" (and {len(errors) - 1} more finding(s))" if len(errors) > 1 else ""
        key = first.rule == "required" and first.field in self.key_properties
        raise (KeyPropertyMissingError if key else RecordError)(
            f"{where(stream=self.stream, position=first.position, field=first.field)}: "
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
