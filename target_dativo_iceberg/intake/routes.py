"""The hot-route decision: which streams' RECORD runs are parsed and validated as Arrow.

A stream takes the hot path when `hot_path` is on, no stream maps apply to it (flattening alone is
fine: `intake.flattening` flattens its parsed columns as the SDK's mapper flattens records), and it
has a contract or a Singer schema whose every keyword has a whole-array rule
(`contracts.jsonschema_rules`); otherwise its records take the SDK's per-record path. With
`add_record_metadata` the `_sdc_*` metadata columns are built as Arrow columns (`intake.metadata`)
for both kinds of stream (measured on 200k records: 3.05–3.3 CPU-s for a contract stream with
the metadata against 11.1 per record; `intake.builders`).
The decision is made again whenever a SCHEMA message may have replaced sinks, and logged once per
sink (`record_path` event, with the reason for the per-record path).
"""

from __future__ import annotations

import typing as t
from typing import Any

import pyarrow as pa
from singer_sdk.mapper import SameRecordTransform

from target_dativo_iceberg.contracts.jsonschema_rules import Node, Unsupported
from target_dativo_iceberg.intake.flattening import Flattening, flattening_map, unsupported

if t.TYPE_CHECKING:
    from target_dativo_iceberg.contracts.enforcement import Enforcer
    from target_dativo_iceberg.events import EventLog
    from target_dativo_iceberg.intake.recordchecks import RecordChecks
    from target_dativo_iceberg.sink import IcebergSink


class HotRoutes:
    """Stream name → the sink taking its records on the hot path (absent: the record path)."""

    def __init__(
        self,
        events: EventLog,
        *,
        enabled: bool,
        stream_maps: t.Callable[[str], list[Any]],
    ) -> None:
        self._events = events
        self._enabled = enabled
        self._stream_maps = stream_maps
        self._hot: dict[str, IcebergSink] = {}
        self._flat: dict[str, Flattening] = {}  # hot streams the mapper flattens
        self._announced: dict[str, Any] = {}  # stream → the sink whose path was logged

    def update(self, sinks: dict[str, Any]) -> None:
        """Decide again for the active sinks (a SCHEMA message may have replaced some)."""
        self._hot.clear()
        self._flat.clear()
        for stream, sink in sinks.items():
            reason = self._reason(stream, sink)
            if reason is None:
                self._hot[stream] = sink
                stream_map = flattening_map(self._stream_maps(stream), stream)
                if stream_map is not None:
                    self._flat[stream] = Flattening(stream_map)
            if self._announced.get(stream) is not sink:  # once per sink, not on every SCHEMA message
                self._announced[stream] = sink
                self._events.emit(
                    "record_path", stream=stream, path="record" if reason else "hot", reason=reason
                )

    def _reason(self, stream: str, sink: Any) -> str | None:
        """Why `stream` takes the record path (None: it takes the hot path)."""
        if not self._enabled:
            return "hot_path is false"
        checks = getattr(sink, "checks", None)
        if (
            getattr(sink, "enforcer", None) is None
            and checks is not None
            and isinstance(checks.rules, Unsupported)
        ):
            return f"no contract, and the Singer schema's {checks.rules}"
        maps = self._stream_maps(stream)
        if len(maps) != 1 or not isinstance(maps[0], SameRecordTransform) or maps[0].stream_alias != stream:
            return "stream_maps apply to the stream"
        stream_map = flattening_map(maps, stream)
        return None if stream_map is None else unsupported(stream_map)

    def any(self) -> bool:
        """Whether any stream is on the hot path (else the reader goes line by line)."""
        return bool(self._hot)

    def sink(self, stream: str) -> IcebergSink | None:
        """The sink taking `stream`'s records on the hot path, if any."""
        return self._hot.get(stream)

    def rows(self, stream: str, lines: pa.Array, records: pa.Table) -> pa.Table | None:
        """A hot stream's parsed record columns as its sink takes them (flattened when the mapper
        flattens the stream); None: the run takes the record path."""
        flat = self._flat.get(stream)
        return records if flat is None else flat.columns(lines, records)

    def record_hints(self) -> pa.StructType:
        """Record fields parsed with a given type rather than inferred (Arrow would turn ISO-looking
        text into timestamps, and decimals into floats); fields hot streams disagree on are inferred."""
        hints: dict[str, pa.DataType | None] = {}
        for stream, sink in self._hot.items():
            flat = self._flat.get(stream)
            types = sink.record_types if flat is None else flat.hints(sink.record_types)
            for name, kind in types.items():
                hints[name] = kind if hints.get(name, kind) == kind else None
        return pa.struct([(name, kind) for name, kind in hints.items() if kind is not None])


def parse_types(
    schema: dict[str, Any], enforcer: Enforcer | None, checks: RecordChecks | None = None
) -> dict[str, pa.DataType | None]:
    """Record field → the Arrow type the hot path parses it as (else Arrow infers): Singer string
    properties stay strings (nested ones too, without a contract); contract decimals, and Singer
    numbers with a `multipleOf` step, are parsed exactly (never via a float)."""
    if checks is not None and isinstance(checks.rules, Node):
        return {src: child.hint() for src, (_col, child) in checks.rules.children.items()}
    types: dict[str, pa.DataType | None] = {
        name: pa.string() if _only_strings(prop) else None
        for name, prop in (schema.get("properties") or {}).items()
    }
    if enforcer is not None:
        validator = enforcer.validator
        for key, arrow_field in zip(validator.keys, validator.arrow_schema, strict=True):
            if pa.types.is_decimal(arrow_field.type):
                types[key] = arrow_field.type
    return types


def _only_strings(prop: dict[str, Any]) -> bool:
    """A JSON Schema property whose only non-null type is string (no anyOf, no format surprises)."""
    types = prop.get("type")
    kinds = {types} if isinstance(types, str) else set(types or [])
    return kinds - {"null"} == {"string"} and "anyOf" not in prop
