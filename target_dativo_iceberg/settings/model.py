"""The target's settings, each declared once: name, type, default, description, secret flag, allowed values.

Every field below is a setting (see `declare.py`): the same declaration gives the `config_jsonschema`
of `--about` and Meltano's lock files, the typed value the code reads (`Settings.from_config`) and
the checks a config must pass. The rest of the package reads settings only from a `Settings`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from target_dativo_iceberg.envvars import expand_env
from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.iceberg.catalogs import (
    DEFAULT_CATALOG_URI,
    DEFAULT_WAREHOUSE,
    catalog_properties,
    s3_file_io_properties,
)
from target_dativo_iceberg.iceberg.retry import (
    DEFAULT_MAX_CONFLICT_RETRIES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_DELAY_SECONDS,
    RetryPolicy,
)
from target_dativo_iceberg.iceberg.schema import sanitize_name
from target_dativo_iceberg.redact import Redactor, mapping_secrets, uri_secrets
from target_dativo_iceberg.settings.connections import (
    Connection,
    bucket_warehouse,
)
from target_dativo_iceberg.settings.declare import (
    builtin,
    group,
    json_schema,
    not_negative,
    parse,
    positive,
    setting,
    text_list,
)

CATALOG_TYPES = ("sql", "rest", "nessie", "glue", "hive", "none")
VALIDATION_MODES = ("strict", "warn")
LOAD_METHODS = ("append-only", "upsert", "overwrite")
#: The tenant of single-tenant installations: its tables keep short names (see `namespace_for`).
DEFAULT_TENANT = "default"


def batch_roots(value: Any, name: str = "batch_allowed_roots") -> tuple[str, ...]:
    """`batch_allowed_roots` as real paths (relative entries from the working directory); absent:
    the working directory and the system temp directory, where taps write batch files by default."""
    if value is None:
        value = [os.getcwd(), tempfile.gettempdir()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{name} must be a list of directory paths, got {value!r}")
    return tuple(dict.fromkeys(os.path.realpath(os.path.expanduser(v)) for v in value))


@dataclass(frozen=True)
class RetrySettings:
    """`retry_config`: retries of transient errors and of commit conflicts (`iceberg/retry.py`)."""

    max_retries: int = setting(DEFAULT_MAX_RETRIES, "Retries of transient errors.", check=not_negative)
    retry_delay_seconds: float = setting(
        DEFAULT_RETRY_DELAY_SECONDS, "First retry delay (backoff doubles it).", check=not_negative
    )
    retryable_errors: tuple[str, ...] = setting(
        (), "Extra error substrings treated as transient.", from_text=text_list
    )
    max_conflict_retries: int = setting(
        DEFAULT_MAX_CONFLICT_RETRIES,
        "Retries of a commit that conflicts with a concurrent writer (redone on the branch's new head).",
        check=not_negative,
    )

    def policy(self) -> RetryPolicy:
        """The retry policy these settings describe."""
        return RetryPolicy(
            max_retries=self.max_retries,
            retry_delay_seconds=self.retry_delay_seconds,
            retryable_errors=self.retryable_errors,
            max_conflict_retries=self.max_conflict_retries,
        )


@dataclass(frozen=True)
class LineageSettings:
    """`openlineage`: an OpenLineage run event per run (`delivery/lineage.py`); off by default."""

    transport: str = setting(
        "none",
        "Send an OpenLineage run event per run: none, file (append to `openlineage.file`) or http "
        "(POST to `openlineage.url`). Needs the openlineage extra.",
        allowed=("none", "file", "http"),
    )
    file: str | None = setting(None, "transport file: the file events are appended to, one JSON per line.")
    url: str | None = setting(None, "transport http: the OpenLineage server, e.g. http://marquez:5000.")
    endpoint: str = setting("api/v1/lineage", "transport http: the endpoint path under the URL.")
    api_key: str | None = setting(None, "transport http: API key, sent as a bearer token.", secret=True)
    namespace: str | None = setting(None, "The job's namespace (default: tenant_id).")
    job_name: str | None = setting(
        None, "The job's name (default: `{tap}-to-target-dativo-iceberg`, or target-dativo-iceberg)."
    )


@dataclass(frozen=True)
class Settings:
    """The target's settings, after `${VAR}` expansion, defaults and checks (`from_config`)."""

    tenant_id: str = setting(
        "default", "Owner of the data; the default branch name; carried in state, logs and snapshots."
    )
    branch: str = setting(
        "default",
        "Iceberg branch to write (default: tenant_id). Created from main's head on first write; `main` allowed.",
        derive=lambda earlier: earlier["tenant_id"],
    )
    namespace: str | None = setting(
        None,
        "Iceberg namespace, used as given for every stream (default: the contract's domain, else "
        "default_target_schema, prefixed `{tenant_id}__` unless the tenant is `default`; else tenant_id).",
        check=lambda value, _: sanitize_name(value),
    )
    catalog_type: str = setting(
        "sql",
        "Catalog kind: sql (SQLite/PostgreSQL), rest, nessie, glue, hive, or none.",
        allowed=CATALOG_TYPES,
    )
    catalog_uri: str = setting(
        DEFAULT_CATALOG_URI,
        "SQLAlchemy URL (sql), REST catalog URL (rest) or Nessie base URL (nessie).",
        secret=True,
    )
    catalog_name: str = setting("dativo", "Name given to the catalog.")
    catalog_properties: dict[str, Any] = setting(
        {}, "Extra properties passed to pyiceberg.catalog.load_catalog (credential, token, s3.*, ...)."
    )
    warehouse: str = setting(DEFAULT_WAREHOUSE, "Warehouse path or URI (s3://bucket/prefix).")
    connection: Connection = group(Connection, "Connections to object storage and catalogs.")
    assets: dict[str, Any] = setting({}, "Stream name → ODCS contract path.")
    assets_dir: str | None = setting(
        None, "Directory of ODCS contracts, matched to streams by schema object name/physicalName."
    )
    schema_validation_mode: str = setting(
        "strict",
        "strict: a violating batch fails the run; warn: invalid records go to the __rejected table.",
        allowed=VALIDATION_MODES,
    )
    parquet_target_size_mb: int = setting(
        150, "Target Parquet file size in MB of compressed bytes on disk.", check=positive
    )
    partitioning: list[str] | None = setting(
        None, 'Partition spec, e.g. ["ingest_date", "region", "day(created_at)", "bucket(16, id)"].'
    )
    retry_config: RetrySettings = group(
        RetrySettings, "Retries of transient network, storage and catalog errors, and of commit conflicts."
    )
    hard_delete: bool = setting(
        False,
        "ACTIVATE_VERSION: delete rows of older table versions (default: set their _sdc_deleted_at).",
    )
    max_snapshots: int = setting(
        100,
        "Snapshot expiry: keep about this many snapshots of each branch's history, unpublished tenant "
        "branches included (heads, fork points and the newest commit markers are always kept); "
        "0 disables expiry.",
        check=not_negative,
    )
    max_snapshot_age_hours: float = setting(
        120.0,
        "Snapshot expiry: snapshots older than this are expired even within max_snapshots (heads, fork "
        "points and the newest commit markers are kept); 0: no age limit.",
        check=not_negative,
    )
    orphan_file_age_hours: float = setting(
        72.0,
        "`dativo maintain`: files under a table's location that nothing references (left by killed runs) "
        "are deleted only once older than this safety window.",
        check=not_negative,
    )
    auto_compact_min_files: int = setting(
        10,
        "During a run (each time this many + 1 files were added) and after it, compact each partition "
        "the run wrote to once it holds more than this many small files (below 75% of "
        "parquet_target_size_mb); 0 disables compaction by the target.",
        check=not_negative,
    )
    max_batch_age_seconds: float = setting(
        300.0,
        "Commit (and emit STATE) at least this often while records keep arriving.",
        check=positive,
    )
    progress_interval_seconds: float = setting(
        10.0,
        "At most this often a `progress` event (rows, rows/s, memory) while records arrive; 0: none.",
        check=not_negative,
    )
    run_ledger: bool = setting(
        True,
        "Append a row per run to the `_dativo.ingestion_runs` table and each schema version to "
        "`_dativo.schema_history` (same catalog, on main).",
    )
    openlineage: LineageSettings = group(
        LineageSettings, "An OpenLineage run event per run (off by default)."
    )
    hot_path: bool = setting(
        True,
        "Parse RECORD runs with Arrow and validate them column-wise: contract streams against the "
        "contract, others against rules from their Singer SCHEMA (flattening included). false: "
        "every record takes the SDK's per-record path (slower; same tables).",
    )
    #: Real paths of the directories BATCH manifest files may be read from (see batchfiles.py).
    batch_allowed_roots: tuple[str, ...] = setting(
        (),
        "Directories BATCH manifest files may be read from (symlinks and .. resolved "
        "first); default: the working directory and the system temp directory. s3:// files are "
        "read through connection.s3.",
        derive=lambda _: batch_roots(None),
        check=batch_roots,
    )
    s3_object_tags: bool = setting(
        False,
        "Give every data file written to an s3:// warehouse S3 object metadata and up to 10 tags "
        "(asset, version, tenant, branch, owner, classification, retention, records, ingest time, run); "
        "always on with catalog_type none.",
    )
    batch_max_file_mb: float = setting(
        2048.0,
        "Largest BATCH file read, in MB (for gzip JSONL also its uncompressed size); "
        "a larger one fails the run.",
        check=positive,
    )
    # -- safe defaults for pipelines: per-source namespaces, idempotent keyed streams, publish, exit codes
    default_target_schema: str | None = setting(
        None,
        "Namespace of streams without a contract (Singer SDK standard; meltano.yml sets it to the "
        "extractor's load_schema, so each extractor lands in its own namespace).",
        check=lambda value, _: sanitize_name(value),
    )
    load_method: str | None = setting(
        None,
        "append-only, upsert (replace rows by key_properties / contract primaryKey) or overwrite. "
        "Default: upsert for streams with a key, append-only for the others.",
        allowed=LOAD_METHODS,
    )
    auto_publish: bool = setting(
        False,
        "After a run that exits 0 with every contract quality check passed, fast-forward main to the "
        "branch for every table the run wrote (write-audit-publish in one step).",
    )
    warn_exit_code: int = setting(
        1,
        "Exit code of a warn-mode run that rejected records (they landed in __rejected); 0 makes "
        "schedulers treat such a run as a success.",
        check=lambda value, name: _exit_code(value, name),
    )
    # Declared by the Singer SDK (its default and allowed values apply), read here too.
    add_record_metadata: bool = builtin("add_record_metadata")
    flattening_enabled: bool = builtin("flattening_enabled")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Settings from a config mapping (the SDK's validated config, or a JSON file read by `dativo`):
        `${VAR}` expanded, defaults applied, every value checked against its declaration."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"the config must be a JSON object, got {type(config).__name__}")
        return with_bucket(parse(cls, expand_env(dict(config))))

    @property
    def parquet_target_bytes(self) -> int:
        """`parquet_target_size_mb` in bytes: where `writer.RollingWriter` starts a new file."""
        return self.parquet_target_size_mb * 1024 * 1024

    @property
    def batch_max_file_bytes(self) -> int:
        """`batch_max_file_mb` in bytes: the most read of one BATCH file (after decompression)."""
        return int(self.batch_max_file_mb * 1024 * 1024)

    @property
    def table_branch(self) -> str:
        """The Iceberg table branch written. On Nessie the reference (in the catalog URI) already
        separates tenants, and Nessie refuses Iceberg table branches, so tables are written on main."""
        return "main" if self.catalog_type == "nessie" else self.branch

    @property
    def default_namespace(self) -> str:
        """Namespace of a stream without a contract."""
        return self.namespace_for(None)

    @property
    def tenant_scoped(self) -> bool:
        """Whether table names and locations carry the tenant (every tenant but `default`)."""
        return self.tenant_id != DEFAULT_TENANT

    def namespace_for(self, domain: str | None) -> str:
        """A stream's namespace: the `namespace` setting as given; else the contract's domain, else
        `default_target_schema`, prefixed `{tenant}__` for a named tenant; else the tenant itself."""
        if self.namespace:
            return self.namespace
        base = domain or self.default_target_schema
        tenant = sanitize_name(self.tenant_id)
        if base is None:
            return tenant
        base = sanitize_name(base)
        return f"{tenant}__{base}" if self.tenant_scoped else base

    def owns_namespace(self, namespace: str) -> bool:
        """Whether `dativo` commands show this namespace's tables: a named tenant sees its own
        (`{tenant}` and `{tenant}__*`), or all when `namespace` is set; tenant `default` sees all."""
        if not self.tenant_scoped or self.namespace:
            return True
        tenant = sanitize_name(self.tenant_id)
        return namespace == tenant or namespace.startswith(f"{tenant}__")

    def load_method_for(self, keys: list[str]) -> str:
        """`load_method` as set; absent: upsert for a keyed stream (a re-sent row replaces its
        earlier copy, as Singer targets merge on key properties), append-only otherwise — and with
        `catalog_type: none`, which only appends files."""
        if self.load_method:
            return self.load_method
        return "upsert" if keys and self.catalog_type != "none" else "append-only"

    def s3_file_io_properties(self) -> dict[str, str]:
        """Map `connection.s3.*` onto pyiceberg's FileIO `s3.*` properties."""
        return s3_file_io_properties(self.connection.s3.given())

    def catalog_load_properties(self) -> dict[str, Any]:
        """Properties for `pyiceberg.catalog.load_catalog`, user `catalog_properties` winning."""
        return catalog_properties(
            self.catalog_type,
            self.catalog_uri,
            self.warehouse,
            s3=self.connection.s3.given(),
            user_properties=self.catalog_properties,
            branch=self.branch,
            nessie_uri=self.connection.nessie.uri,
        )

    def secret_values(self) -> list[str]:
        """Secret values in the settings, for redaction (`redact.py`): the S3 keys and token,
        secret-named `catalog_properties` (`credential`, `token`, `s3.secret-access-key`, ...), and the
        password and secret parameters of `catalog_uri`, the Nessie URI and the warehouse."""
        values = mapping_secrets(
            {
                "s3": self.connection.s3.given(),
                "nessie": asdict(self.connection.nessie),
                "props": self.catalog_properties,
                "openlineage": {"api_key": self.openlineage.api_key, "url": self.openlineage.url},
            }
        )
        values += uri_secrets(self.catalog_uri) + uri_secrets(self.warehouse)
        return sorted(set(values), key=len, reverse=True)

    def redactor(self) -> Redactor:
        """The redactor for these settings' secrets."""
        return Redactor(self.secret_values())

    def __repr__(self) -> str:
        """The dataclass repr with secrets redacted (settings end up in tracebacks and debug output)."""
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__dataclass_fields__)
        return self.redactor().text(f"Settings({fields})")


def _exit_code(value: int, name: str) -> int:
    if not 0 <= value <= 125:
        raise ConfigError(f"{name} must be an exit code from 0 to 125, got {value!r}")
    return value


def with_bucket(settings: Settings) -> Settings:
    """`connection.s3.bucket` honoured (connections.py `bucket_warehouse`)."""
    warehouse = bucket_warehouse(settings.connection.s3.bucket, settings.warehouse)
    return settings if warehouse == settings.warehouse else replace(settings, warehouse=warehouse)


def config_jsonschema() -> dict[str, Any]:
    """The target's `config_jsonschema` (the SDK appends its built-in settings to it)."""
    return json_schema(Settings)
