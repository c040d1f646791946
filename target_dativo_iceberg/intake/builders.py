"""Turning a sink's buffer into the Arrow table a commit appends.

Hot path: the buffered Arrow pieces are concatenated and judged with whole-array operations — by
`Validator.validate_arrow` with a contract, else by the Singer schema's column rules
(`contracts.jsonschema_arrow.judge`). Anything it cannot settle (a violation, a value needing the
one-at-a-time rules, a record-path piece) makes the whole batch take the record path: Python
records, parsed from the kept lines exactly as the SDK parses them, so both paths land the same rows.
Without a contract, in warn mode, rows the column rules flag are re-checked one by one and the
invalid ones go to `__rejected` while the rest of the batch stays columnar.

Measured (2-core machine shared with other jobs, load ~9, so CPU seconds: user+sys; 200k records of
bench/generate.py, 10 fields, `validate_records` on, one run each): a stream without a contract took
20.3 CPU-s per record and 2.85 CPU-s here (1.2 s of it start-up: ~120k records per CPU-s after it);
the contract path took 2.56 CPU-s, the SDK's no-op target 3.9 CPU-s with validation off (0.5 s
start-up) and 15.9 CPU-s with it on.

With `add_record_metadata` the hot pieces carry the SDK's `_sdc_*` columns (`intake.metadata`); a
contract batch converts them as the no-contract path does, and a batch taking the record path puts
their values back into its records. Measured as above: a contract stream with the metadata took
3.05–3.3 CPU-s here against 11.1 per record (2.9–3.25 without the metadata).
"""

from __future__ import annotations

import typing as t
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.schema import Schema
from pyiceberg.types import DateType, NestedField

from target_dativo_iceberg.contracts.jsonschema_arrow import conform, judge
from target_dativo_iceberg.contracts.jsonschema_rules import Node
from target_dativo_iceberg.errors import Undecided
from target_dativo_iceberg.iceberg.evolution import EvolutionPlan
from target_dativo_iceberg.iceberg.partitioning import INGEST_DATE, PartitionTerm
from target_dativo_iceberg.iceberg.schema import ColumnKind, records_to_arrow
from target_dativo_iceberg.intake.pieces import Builder, Piece, RecordRows, Validated
from target_dativo_iceberg.intake.recordchecks import Rejected, rejection_summary, split_rejected
from target_dativo_iceberg.sdk_compat import SDK_METADATA_COLUMNS

if TYPE_CHECKING:
    from target_dativo_iceberg.contracts.enforcement import Enforcer
    from target_dativo_iceberg.events import EventLog
    from target_dativo_iceberg.iceberg.schema import StreamSchema
    from target_dativo_iceberg.intake.recordchecks import RecordChecks

#: Record keys the SDK drops from records unless `add_record_metadata` is on.
SDK_METADATA = frozenset(SDK_METADATA_COLUMNS)
#: Column kinds of the SDK's `_sdc_*` properties the columnar path converts (date-time strings, integers).
_METADATA_KINDS = frozenset({"timestamptz", "long", "string"})


def with_ingest_date(schema: Schema, terms: list[PartitionTerm]) -> Schema:
    """Add the target's `ingest_date` column (UTC date of the run) when a partition term uses it."""
    if not any(t.column == INGEST_DATE for t in terms) or INGEST_DATE in schema.column_names:
        return schema
    field = NestedField(schema.highest_field_id + 1, INGEST_DATE, DateType(), required=False)
    return Schema(*schema.fields, field, identifier_field_ids=schema.identifier_field_ids)


def fill_ingest_date(data: pa.Table, day: Any) -> pa.Table:
    """Set `ingest_date` (if the table has it) to the run's date."""
    index = data.schema.get_field_index(INGEST_DATE)
    if index < 0:
        return data
    field = data.schema.field(index)
    return data.set_column(index, field, pa.array([day] * data.num_rows, field.type))


class BatchBuilder:
    """Validates a stream's buffered pieces and builds the Arrow table its commit appends."""

    def __init__(
        self,
        stream: str,
        enforcer: Enforcer | None,
        stream_schema: StreamSchema,
        sdc_fields: list[NestedField],
        ingest_date: Any,
        parse_line: t.Callable[[bytes, int], dict[str, Any]],
        strip_sdc: t.Callable[[dict[str, Any]], None],
        events: EventLog,
        checks: RecordChecks | None = None,
        metadata: bool = False,
    ) -> None:
        self.stream_name = stream
        self.checks = checks  # without a contract: the Singer schema's checks
        self.enforcer = enforcer
        self.stream_schema = stream_schema
        self._sdc = sdc_fields
        self._ingest_date = ingest_date
        self._parse_line = parse_line  # a RECORD line (and its record position) parsed as the SDK parses it
        self._strip_sdc = strip_sdc
        self._events = events
        self._metadata = metadata  # add_record_metadata: hot pieces carry the `_sdc_*` columns
        self._position = 0  # records of the stream seen so far (error messages name positions)

    def validated(self, pieces: list[Piece]) -> Validated:
        """The buffered pieces validated as Arrow when the whole batch allows, else record by record."""
        count = sum(p.count for p in pieces)
        if not count:
            return Validated(lambda schema, _plan: schema.empty_table(), 0, [], True)
        first_position = self._position + 1
        self._position += count
        hot = self._hot_batch(pieces, first_position)
        if hot is not None:
            return Validated(hot[0], hot[1], [], True)
        columnar = self._schema_batch(pieces, first_position)
        if columnar is not None:
            return columnar
        records = self._records(pieces, first_position)
        if self.enforcer is None:
            kept, positions, findings, rejected = split_rejected(records, first_position)
            if rejected:
                summary = rejection_summary(findings, count, len(rejected), first_position)
                self._events.emit("validation_errors", stream=self.stream_name, mode="warn", **summary)
            return Validated(
                self._schema_builder(kept, first_position, positions), len(kept), rejected, False
            )
        outcome = self.enforcer.validate(records, first_position)
        chosen = [records[i] for i in outcome.valid_indices]
        return Validated(
            self._contract_builder(outcome.valid, chosen), outcome.valid.num_rows, outcome.rejected, False
        )

    def _records(self, pieces: list[Piece], first_position: int) -> list[Any]:
        """The batch as record dicts (the record path), parsing hot pieces' lines like the SDK does."""
        records: list[Any] = []
        for piece in pieces:
            if isinstance(piece, RecordRows):
                records.extend(piece.records)
                continue
            if piece.lines is None:  # a Parquet BATCH file: rows as the SDK hands them over
                records.extend(piece.table.to_pylist())
                continue
            names = [c for c in piece.table.column_names if c in SDK_METADATA] if self._metadata else []
            metadata = piece.table.select(names).to_pylist() if names else None
            for offset, line in enumerate(piece.lines.to_pylist()):
                position = first_position + len(records)
                record = self._parse_line(line, position)["record"]
                self._strip_sdc(record)
                if metadata is not None:  # the values the SDK would have added on arrival
                    record.update(metadata[offset])
                records.append(
                    record if self.checks is None else self.checks.judge_record(record, position, line)
                )
        return records

    def _schema_batch(self, pieces: list[Piece], first_position: int) -> Validated | None:
        """Without a contract: the batch judged by the Singer schema's column rules; None: take the
        record path (a value the rules cannot settle, or strict mode and a row they flag)."""
        checks = self.checks
        if checks is None or not isinstance(checks.rules, Node) or not pieces:
            return None
        if any(isinstance(p, RecordRows) or p.lines is None for p in pieces):
            return None
        try:
            table = pa.concat_tables([p.table for p in pieces], promote_options="permissive")  # type: ignore[union-attr]
            kept = checks.rules.children  # with add_record_metadata the schema has the _sdc_ columns
            table = table.drop_columns([c for c in table.column_names if c in SDK_METADATA and c not in kept])
            scan = checks.rules.scan is not None  # multipleOf on a number: the lines are scanned too
            lines = pa.concat_arrays([p.lines for p in pieces]) if scan else None  # type: ignore[misc]
            columns, flagged = judge(checks.rules, table, checks.key_properties, checks.validate, lines)
        except (pa.ArrowException, Undecided):  # e.g. pyarrow cannot combine some list<null> chunks
            return None
        rejected: list[Any] = []
        if flagged.true_count:
            if checks.strict:
                return None  # the record path fails the run naming the first invalid record
            if lines is None:
                lines = pa.concat_arrays([p.lines for p in pieces])  # type: ignore[misc]
            for index in pc.indices_nonzero(flagged).to_pylist():
                position, line = first_position + index, lines[index].as_py()
                record = self._parse_line(line, position)["record"]
                self._strip_sdc(record)
                errors = checks.record_errors(record, True, position, line)
                if not errors:
                    return None  # a row only Python can accept: the record path builds the batch
                rejected.append(Rejected(record, errors))
            keep = pc.invert(flagged)
            columns = {name: array.filter(keep) for name, array in columns.items()}
        _kept, _positions, findings, rows = split_rejected(rejected, first_position)
        landed = table.num_rows - len(rows)
        if rows:
            summary = rejection_summary(findings, table.num_rows, len(rows), first_position)
            self._events.emit("validation_errors", stream=self.stream_name, mode="warn", **summary)
        return Validated(self._columns_builder(columns, landed, pieces, first_position), landed, rows, True)

    def _columns_builder(
        self, columns: dict[str, pa.Array], rows: int, pieces: list[Piece], first_position: int
    ) -> Builder:
        """Columnar path without a contract: typed columns aligned to the table's Arrow schema. Values
        going into a string column of another type (schema evolution) are built by the record path."""
        simple = (pa.types.is_integer, pa.types.is_boolean, pa.types.is_string)

        def build(arrow_schema: pa.Schema, plan: EvolutionPlan) -> pa.Table:
            if any(
                name in columns and not any(k(columns[name].type) for k in simple)
                for name in plan.into_string
            ):
                kept, _positions, _findings, _rows = split_rejected(
                    self._records(pieces, first_position), first_position
                )
                return self._schema_builder(kept, first_position, _positions)(arrow_schema, plan)
            arrays = []
            for field in arrow_schema:
                column = columns.get(field.name)
                arrays.append(pa.nulls(rows, field.type) if column is None else conform(column, field.type))
            return fill_ingest_date(pa.Table.from_arrays(arrays, schema=arrow_schema), self._ingest_date)

        return build

    def _hot_batch(self, pieces: list[Piece], first_position: int) -> tuple[Builder, int] | None:
        """(builder, rows) when the whole batch is hot and clean; None: take the record path."""
        if self.enforcer is None or not pieces or any(isinstance(p, RecordRows) for p in pieces):
            return None
        try:
            table = pa.concat_tables([p.table for p in pieces], promote_options="permissive")  # type: ignore[union-attr]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        metadata = self._sdk_metadata(table)
        table = table.drop_columns([c for c in table.column_names if c in SDK_METADATA])
        extras = self._sdc_columns(table)
        if extras is None or metadata is None:
            return None
        extras.update(metadata)
        outcome = self.enforcer.validate_arrow(table, first_position)
        if outcome is None:
            return None
        return self._contract_builder(outcome.valid, extras=extras), outcome.valid.num_rows

    def _sdk_metadata(self, table: pa.Table) -> dict[str, pa.Array] | None:
        """With `add_record_metadata`: the SDK's `_sdc_*` columns converted as the no-contract
        columnar path converts them (`judge`); None if a value needs the record path's parsing."""
        if not self._metadata:
            return {}
        children = {
            name: (col, Node(kind.kind))
            for name, (col, kind) in self.stream_schema.kind.children.items()
            if name in SDK_METADATA and name in table.column_names
        }
        if any(node.kind not in _METADATA_KINDS for _col, node in children.values()):
            return None
        columns, flagged = judge(
            Node("struct", children=children), table.select(list(children)), validate=False
        )
        return None if flagged.true_count else columns

    def _sdc_columns(self, table: pa.Table) -> dict[str, pa.Array] | None:
        """The tap's own `_sdc_*` columns (e.g. `_sdc_source_file`) typed for the table; None if a
        column needs the record path's conversion."""
        extras: dict[str, pa.Array] = {}
        for field in self._sdc:
            if field.name in SDK_METADATA or field.name not in table.column_names:
                continue
            column = table.column(field.name).combine_chunks()
            target = Schema(field).as_arrow().field(0).type
            if pa.types.is_null(column.type):
                extras[field.name] = pa.nulls(len(column), target)
                continue
            same_kind = (pa.types.is_string(column.type) and pa.types.is_string(target)) or (
                pa.types.is_integer(column.type) and pa.types.is_integer(target)
            )
            timestamp = pa.types.is_string(column.type) and pa.types.is_timestamp(target)
            if not (same_kind or timestamp):
                return None
            try:
                extras[field.name] = pc.cast(column, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        return extras

    def _schema_builder(
        self, records: list[dict[str, Any]], first_position: int, positions: list[int] | None = None
    ) -> Builder:
        """Singer-schema path: convert records to the table's Arrow schema after evolution
        (`positions`: the records' positions when rejected ones were taken out)."""
        stream_schema = self.stream_schema
        required = frozenset(f.name for f in stream_schema.iceberg.fields if f.required)

        def build(arrow_schema: pa.Schema, plan: EvolutionPlan) -> pa.Table:
            kind = stream_schema.kind
            if plan.into_string:
                children = {
                    src: (col, ColumnKind("string") if col in plan.into_string else ck)
                    for src, (col, ck) in kind.children.items()
                }
                kind = ColumnKind("struct", children=children)
            data = records_to_arrow(
                self.stream_name, records, kind, arrow_schema, first_position, required, positions
            )
            return fill_ingest_date(data, self._ingest_date)

        return build

    def _contract_builder(
        self,
        valid: pa.Table,
        records: list[dict[str, Any]] | None = None,
        extras: dict[str, pa.Array] | None = None,
    ) -> Builder:
        """Contract path: validated columns + target-added ones, aligned to the table's Arrow schema."""
        extras = dict(extras or {})
        sdc = self._sdc
        if sdc and records is not None:
            sdc_kind = ColumnKind(
                "struct",
                children={s: v for s, v in self.stream_schema.kind.children.items() if s.startswith("_sdc_")},
            )
            sdc_schema = Schema(*sdc).as_arrow()
            sdc_table = records_to_arrow(self.stream_name, records, sdc_kind, sdc_schema)
            extras.update({name: sdc_table.column(name) for name in sdc_table.column_names})

        def build(arrow_schema: pa.Schema, plan: EvolutionPlan) -> pa.Table:
            arrays = []
            for field in arrow_schema:
                if field.name in valid.column_names:
                    column = valid.column(field.name)
                elif field.name in extras:
                    column = extras[field.name]
                else:
                    column = pa.nulls(valid.num_rows, field.type)
                arrays.append(pc.cast(column, field.type) if column.type != field.type else column)
            return fill_ingest_date(pa.Table.from_arrays(arrays, schema=arrow_schema), self._ingest_date)

        return build
