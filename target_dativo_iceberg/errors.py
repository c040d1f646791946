"""Exception classes; each maps to exit code 2 (failure) at the CLI boundary."""

from __future__ import annotations

from singer_sdk.exceptions import MissingKeyPropertiesError


class DativoError(Exception):
    """Base class for errors the target reports to the user and exits 2 on."""

    exit_code = 2


class ConfigError(DativoError):
    """A setting is missing, malformed, or references an unset environment variable."""


class SchemaError(DativoError):
    """A Singer SCHEMA cannot be mapped to Iceberg (name collision, unsupported type)."""


class RecordError(DativoError):
    """A record cannot be converted to the table's types; names stream, position and field."""


class KeyPropertyMissingError(RecordError, MissingKeyPropertiesError):
    """A record lacks one of its stream's key properties (also the SDK's error for it)."""


class SchemaChangeError(DativoError):
    """A schema change the table cannot absorb (breaking change)."""


class CommitError(DativoError):
    """The Iceberg commit failed; nothing of the batch is visible."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT reached a safe point: the run stops (a BaseException, like KeyboardInterrupt,
    so no `except Exception` on the way mistakes it for a failed step and carries on)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


class InputError(DativoError):
    """A line of the Singer input cannot be taken: not UTF-8, not JSON, nested too deep, or a
    message lacking a required key. Names the input line (and stream, record, field if known)."""
