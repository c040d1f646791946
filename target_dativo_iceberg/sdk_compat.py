"""singer-sdk's private members, used from this module only, so an SDK upgrade touches one file.

The target subclasses the SDK's `Target`, `BatchSink` and message reader and needs a few of their
private members: hooks it overrides (SCHEMA and STATE handling, the full-drain STATE write, signal
handlers, per-record validation) and state it reads (the sinks, the pending batch, the batch age).
Here each gets a public name; `target.py`, `sink.py` and `intake/` use only those. Checked against
singer-sdk 0.54.9 (pinned to 0.54.x in pyproject.toml):

| private member | used for |
| --- | --- |
| `Target._process_schema_message`, `_process_state_message`, `_write_state_message` | SCHEMA/STATE hooks |
| `Target._assert_line_requires`, `_latest_state` | STATE message checks; what the SDK's drain writes |
| `Target._sinks_active`, `_sinks_to_clear` | every sink of the run |
| `Target._handle_max_record_age`, `_max_record_age_in_minutes`, `_MAX_RECORD_AGE_IN_MINUTES` | batch age |
| `PluginBase._setup_signal_handlers` | SIGTERM/SIGINT (delivery/shutdown.py) |
| `PluginBase._validate_config`, `_config` | messages naming each invalid setting |
| `PluginBase.invoke` (unbound), `plugin_base._ConfigInput` | `--about` and config input of the CLI |
| `Sink._get_context`, `_pending_batch`, `_remove_sdc_metadata_from_record` | the batch being buffered |
| `Sink._validate_and_parse`, `_validator`, `_parse_timestamps_in_record` | per-record validation (a contract replaces it) |
| `Sink._singer_validate_message`, `_total_records_read` | key properties; record positions in messages |
| `GenericSingerReader._process_unknown_message` | messages of unknown type |
| `Stream._write_state_message`, `_finalize_state`, `_write_starting_replication_value`, `_write_record_message`, `_stream_version` | the CSV tap's Arrow record writer (`SdkStream`) |
| `singer_sdk.helpers._batch.BatchConfig`, `.BatchFileFormat` | the `batch_config` setting and its formats (tap and target) |
| `Sink._add_sdc_metadata_to_record` / `_remove_sdc_metadata_from_record` | which columns are SDK metadata (`SDK_METADATA_COLUMNS`: the SDK has no public list) |
| `singer_sdk.helpers._flattening.flatten_key`, `_should_jsondump_value` | flattening on the columnar path (`intake/flattening.py`) |
"""

from __future__ import annotations

from typing import Any

from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._batch import BatchConfig, BatchFileFormat
from singer_sdk.helpers._flattening import _should_jsondump_value, flatten_key
from singer_sdk.plugin_base import PluginBase, _ConfigInput
from singer_sdk.singerlib.encoding.base import GenericSingerReader
from singer_sdk.sinks import BatchSink
from singer_sdk.streams import Stream
from singer_sdk.target_base import Target

ConfigInput = _ConfigInput
#: The mapper's flattened key of a nested property, and its test for values written as JSON text.
flattened_key = flatten_key
dumped_as_json = _should_jsondump_value

#: Record keys singer-sdk's sinks add (`add_record_metadata`) and otherwise drop: never unknown fields.
SDK_METADATA_COLUMNS = (
    "_sdc_extracted_at",
    "_sdc_received_at",
    "_sdc_batched_at",
    "_sdc_deleted_at",
    "_sdc_sequence",
    "_sdc_table_version",
    "_sdc_sync_started_at",
)


class SdkTarget(Target):
    """`Target` with the private hooks our target needs under public names."""

    # ---- hooks the target implements

    def on_schema(self, message: dict) -> None:
        """After the SDK handled a SCHEMA message (sinks may have been replaced)."""

    def on_state(self, state: Any) -> bool:
        """A STATE message's value; True when it is a new STATE (the SDK then drains with it)."""
        return True

    def on_full_drain(self) -> None:
        """The SDK drained every sink and would now write the latest STATE."""

    def install_signal_handlers(self) -> None:
        """Called where the SDK installs its SIGTERM/SIGINT handlers."""

    def invalid_config(self, error: Exception) -> Exception:
        """The error to raise for settings the SDK's JSON Schema check rejected."""
        return error

    @property
    def raw_config(self) -> dict:
        """The settings as given (before the SDK's defaults)."""
        return self._config

    # ---- the SDK's private members, public

    def all_sinks(self) -> list[Any]:
        """Every sink of the run: those replaced by a new SCHEMA (still to drain) and the active ones."""
        return [*self._sinks_to_clear, *self._sinks_active.values()]

    def active_sinks(self) -> dict[str, Any]:
        """Stream name → its current sink."""
        return dict(self._sinks_active)

    def set_max_batch_age(self, seconds: float) -> None:
        """Drain every sink once the oldest buffered record is this old (SDK default: 5 minutes)."""
        self._MAX_RECORD_AGE_IN_MINUTES = seconds / 60

    def drain_if_due(self) -> None:
        """Drain every sink when the batch age has passed (the SDK checks this after each record)."""
        self._handle_max_record_age()

    def seconds_until_due(self) -> float:
        """Seconds until the batch age passes (negative: overdue)."""
        return (self._MAX_RECORD_AGE_IN_MINUTES - self._max_record_age_in_minutes) * 60

    # ---- overrides of private SDK hooks, delegating to the public ones

    def _process_schema_message(self, message_dict: dict) -> None:
        super()._process_schema_message(message_dict)
        self.on_schema(message_dict)

    def _process_state_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"value"})
        state = message_dict["value"]
        if self.on_state(state):
            self._latest_state = state  # the SDK's drain_all writes a STATE only when it is set

    def _write_state_message(self, state: dict) -> None:
        self.on_full_drain()

    def _setup_signal_handlers(self) -> None:
        self.install_signal_handlers()

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        try:
            return super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:
            raise self.invalid_config(exc) from exc

    @classmethod
    def handle_about(cls, *, about: bool, about_format: str | None) -> None:
        """The SDK's `--about` handling of `PluginBase.invoke` (exits when `about` is set)."""
        PluginBase.invoke.__func__(cls, about=about, about_format=about_format)  # type: ignore[attr-defined]


class SdkBatchSink(BatchSink):
    """`BatchSink` with the private members our sink needs under public names."""

    def pending_context(self) -> dict:
        """The context of the batch being buffered (created on first use)."""
        return self._get_context({})

    @property
    def pending_batch(self) -> dict | None:
        """The context of the batch being buffered, if any."""
        return self._pending_batch

    def strip_sdc_metadata(self, record: dict) -> None:
        """Drop `_sdc_*` metadata keys from a record, as the SDK does when `add_record_metadata` is off."""
        self._remove_sdc_metadata_from_record(record)

    def skip_record_validation(self) -> None:
        """Turn the SDK's per-record JSON Schema validation off (a contract validates whole batches)."""
        self._validator = None

    @property
    def record_validator(self) -> Any:
        """The SDK's JSON Schema validator of the stream's records (None: `validate_records` off)."""
        return self._validator

    @property
    def records_read(self) -> int:
        """Records of the stream read so far in the run."""
        return self._total_records_read

    def parse_timestamps(self, record: dict) -> None:
        """The SDK's parsing of `date-time` strings in a record (after validation)."""
        self._parse_timestamps_in_record(
            record=record, schema=self.schema, treatment=self.datetime_error_treatment
        )

    def validate_and_parse(self, record: dict) -> dict:
        """The SDK's per-record validation and parsing (overridable)."""
        return super()._validate_and_parse(record)

    def check_key_properties(self, record: dict) -> None:
        """The SDK's check that a record holds the stream's key properties (overridable)."""
        super()._singer_validate_message(record)

    def _validate_and_parse(self, record: dict) -> dict:
        return self.validate_and_parse(record)

    def _singer_validate_message(self, record: dict) -> None:
        self.check_key_properties(record)


class SdkStream(Stream):
    """`Stream` with the private members the CSV tap's Arrow record writer needs under public names."""

    def write_state(self) -> None:
        """Write the stream's STATE message (as the SDK does every `STATE_MSG_FREQUENCY` records)."""
        self._write_state_message()

    def finalize_state(self, state: dict) -> None:
        """Mark a (partition's) state final: progress markers become its bookmark."""
        self._finalize_state(state)

    def write_starting_replication_value(self, context: dict | None) -> None:
        self._write_starting_replication_value(context)

    def write_record(self, record: dict) -> None:
        """One RECORD message through the SDK's writer (stream maps, metadata, conformance)."""
        self._write_record_message(record)

    @property
    def stream_version(self) -> int | None:
        """The stream's table version (`_sdc_table_version`), when the SDK set one."""
        return self._stream_version


class SdkReader(GenericSingerReader[str]):
    """The SDK's message reader with its unknown-message hook public."""

    def unknown_message(self, message: dict) -> None:
        """A message of a type the SDK does not know (it logs and skips it)."""
        self._process_unknown_message(message)


__all__ = [
    "SDK_METADATA_COLUMNS",
    "BatchConfig",
    "BatchFileFormat",
    "ConfigInput",
    "SdkBatchSink",
    "SdkReader",
    "SdkStream",
    "SdkTarget",
    "dumped_as_json",
    "flattened_key",
]
