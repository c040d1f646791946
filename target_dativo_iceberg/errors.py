"""Exception classes of the target, the `dativo` CLI and the CSV tap, in one module.

Every error a user sees derives from `DativoError`; its message names what failed and where (stream,
record position, field, setting, file or endpoint). The target and the `dativo` CLI exit with
`exit_code` (2) on them; the CSV tap reports them as singer-sdk configuration errors (exit 1).
`ContractProblem`/`ContractProblems` are internal: contract parsing turns them into a `ContractError`.
"""

from __future__ import annotations

from singer_sdk.exceptions import MissingKeyPropertiesError, RecordsWithoutSchemaException


class DativoError(Exception):
    """Base class for errors reported to the user; the target and the CLI exit 2 on them."""

    exit_code = 2


class ConfigError(DativoError):
    """A setting is missing, malformed, or references an unset environment variable."""


class JobError(ConfigError):
    """A Dativo job file cannot run as written (`dativo run`); names the file and the key."""

    def __init__(self, path: object, key: str, problem: str) -> None:
        super().__init__(f"job {path}: {key}: {problem}")


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


class RetryExhaustedError(DativoError):
    """A transient error outlasted every retry; names what was attempted, the endpoint and the cause."""

    def __init__(
        self, message: str, what: str, endpoint: str | None, cause: BaseException, attempts: int
    ) -> None:
        super().__init__(message)
        self.what = what
        self.endpoint = endpoint
        self.cause = cause
        self.attempts = attempts


class PublishError(DativoError):
    """main cannot be fast-forwarded to the branch (missing branch, or histories diverged)."""


class BatchFileError(DativoError):
    """A BATCH message names a file that cannot or may not be read, or an encoding we do not take."""


class PreflightError(DativoError):
    """A preflight check failed: the message names the check, the endpoint (redacted) and the cause."""


class ProbeMismatchError(DativoError):
    """The storage probe read back different bytes than it wrote."""


# --------------------------------------------------------------------------- contracts


class ContractError(DativoError):
    """A contract cannot be read or is invalid; names file, location in the document and problem.

    Raised by the target's contract loading and by the CSV tap's (which reads column types only)."""

    def __init__(self, path: str, location: str, problem: str, more: list[str] | None = None) -> None:
        where = f"{location}: " if location else ""
        message = f"contract {path}: {where}{problem}"
        if more:
            message += "".join(f"\n  also {m}" for m in more)
        super().__init__(message)
        self.path, self.location, self.problem = path, location, problem


class ContractViolation(DativoError):
    """Strict mode: a batch violates the contract; nothing of it is committed."""


class ContractProblem(Exception):
    """One problem in a contract document at a JSON-pointer-like location (e.g. `schema[0].name`)."""

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(f"{location}: {problem}" if location else problem)
        self.location = location
        self.problem = problem


class ContractProblems(Exception):
    """Every problem found in one contract document (the first is the message)."""

    def __init__(self, problems: list[ContractProblem]) -> None:
        super().__init__(str(problems[0]))
        self.problems = problems


# --------------------------------------------------------------------------- CSV tap


class SourceError(DativoError):
    """A configured path that cannot be read (missing, unmatched glob, unsupported scheme)."""


class S3Error(DativoError):
    """An S3 path that cannot be listed or read; the message names path and endpoint, never keys."""


class CSVReadError(DativoError):
    """A CSV file that cannot be parsed; the message names the file (and line when known)."""


# --------------------------------------------------------------------------- signals


class Interrupted(BaseException):
    """SIGTERM/SIGINT reached a safe point: the run stops (a BaseException, like KeyboardInterrupt,
    so no `except Exception` on the way mistakes it for a failed step and carries on)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


class InputError(DativoError):
    """A line of the Singer input cannot be taken: not UTF-8, not JSON, nested too deep, or a
    message lacking a required key. Names the input line (and stream, record, field if known)."""


class RecordBeforeSchemaError(InputError, RecordsWithoutSchemaException):
    """A RECORD arrived before its stream's SCHEMA (also the SDK's error for it)."""


class SchemaUnsupported(Exception):
    """A Singer schema keyword without a column rule (contracts.jsonschema_rules); `reason` says
    which property and keyword (the stream stays on the per-record path)."""

    def __init__(self, reason: object) -> None:
        super().__init__(str(reason))
        self.reason = reason


class Undecided(Exception):
    """A batch the Singer-schema column rules cannot judge column by column (it takes the record path)."""


class Unflattened(Exception):
    """A run of records the columnar path cannot flatten exactly as the SDK does (it takes the record path)."""
