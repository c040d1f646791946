"""Resolved target settings: defaults, `${VAR}` expansion and the pyiceberg catalog properties.

The SDK validates the raw config against `config_jsonschema`; this module turns it into the values
the rest of the target uses, so defaults that depend on other settings (branch = tenant_id) live in
one place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from target_dativo_iceberg.envvars import expand_env
from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.iceberg.catalogs import (
    DEFAULT_CATALOG_URI,
    DEFAULT_WAREHOUSE,
    catalog_properties,
    s3_file_io_properties,
)
from target_dativo_iceberg.iceberg.schema import sanitize_name
from target_dativo_iceberg.redact import Redactor, mapping_secrets, uri_secrets

CATALOG_TYPES = ("sql", "rest", "nessie", "glue", "hive", "none")


@dataclass
class Settings:
    """The target's settings after defaults and environment expansion."""

    tenant_id: str = "default"
    branch: str = "default"
    namespace: str | None = None
    catalog_type: str = "sql"
    catalog_uri: str = DEFAULT_CATALOG_URI
    catalog_name: str = "dativo"
    catalog_properties: dict[str, Any] = field(default_factory=dict)
    warehouse: str = DEFAULT_WAREHOUSE
    s3: dict[str, Any] = field(default_factory=dict)
    nessie: dict[str, Any] = field(default_factory=dict)
    load_method: str = "append-only"
    partitioning: list[str] | None = None
    max_snapshots: int = 100
    add_record_metadata: bool = False
    max_batch_age_seconds: float = 300.0
    parquet_target_size_mb: float = 150.0
    #: Real paths of the directories BATCH manifest files may be read from (see batchfiles.py).
    batch_allowed_roots: tuple[str, ...] = ()
    batch_max_file_mb: float = 2048.0

    @property
    def parquet_target_bytes(self) -> int:
        """`parquet_target_size_mb` in bytes: where `writer.RollingWriter` starts a new file."""
        return int(self.parquet_target_size_mb * 1024 * 1024)

    @property
    def batch_max_file_bytes(self) -> int:
        """`batch_max_file_mb` in bytes: the most read of one BATCH file (after decompression)."""
        return int(self.batch_max_file_mb * 1024 * 1024)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Build settings from the SDK's validated config dict."""
        cfg = expand_env(dict(config))
        tenant = str(cfg.get("tenant_id") or "default")
        catalog_type = str(cfg.get("catalog_type") or "sql")
        if catalog_type not in CATALOG_TYPES:
            raise ConfigError(f"catalog_type must be one of {', '.join(CATALOG_TYPES)}, got {catalog_type!r}")
        connection = cfg.get("connection") or {}
        return cls(
            tenant_id=tenant,
            branch=str(cfg.get("branch") or tenant),
            namespace=sanitize_name(cfg["namespace"]) if cfg.get("namespace") else None,
            catalog_type=catalog_type,
            catalog_uri=str(cfg.get("catalog_uri") or DEFAULT_CATALOG_URI),
            catalog_name=str(cfg.get("catalog_name") or "dativo"),
            catalog_properties=dict(cfg.get("catalog_properties") or {}),
            warehouse=str(cfg.get("warehouse") or DEFAULT_WAREHOUSE),
            s3=dict(connection.get("s3") or {}),
            nessie=dict(connection.get("nessie") or {}),
            load_method=str(cfg.get("load_method") or "append-only"),
            partitioning=list(cfg["partitioning"]) if cfg.get("partitioning") is not None else None,
            max_snapshots=int(cfg.get("max_snapshots", 100) if cfg.get("max_snapshots") is not None else 100),
            add_record_metadata=bool(cfg.get("add_record_metadata", False)),
            max_batch_age_seconds=float(cfg.get("max_batch_age_seconds") or 300),
            parquet_target_size_mb=_positive(
                cfg.get("parquet_target_size_mb"), "parquet_target_size_mb", 150.0
            ),
            batch_allowed_roots=batch_roots(cfg.get("batch_allowed_roots")),
            batch_max_file_mb=_positive(cfg.get("batch_max_file_mb"), "batch_max_file_mb", 2048.0),
        )

    @property
    def table_branch(self) -> str:
        """The Iceberg table branch written. On Nessie the reference (in the catalog URI) already
        separates tenants, and Nessie refuses Iceberg table branches, so tables are written on main."""
        return "main" if self.catalog_type == "nessie" else self.branch

    @property
    def default_namespace(self) -> str:
        """Namespace used when neither the setting nor a contract names one."""
        return self.namespace or sanitize_name(self.tenant_id)

    def s3_file_io_properties(self) -> dict[str, str]:
        """Map `connection.s3.*` onto pyiceberg's FileIO `s3.*` properties."""
        return s3_file_io_properties(self.s3)

    def catalog_load_properties(self) -> dict[str, Any]:
        """Properties for `pyiceberg.catalog.load_catalog`, user `catalog_properties` winning."""
        return catalog_properties(
            self.catalog_type,
            self.catalog_uri,
            self.warehouse,
            s3=self.s3,
            user_properties=self.catalog_properties,
            branch=self.branch,
            nessie_uri=self.nessie.get("uri"),
        )

    def secret_values(self) -> list[str]:
        """Secret values in the settings, for redaction (`redact.py`): the S3 keys and token,
        secret-named `catalog_properties` (`credential`, `token`, `s3.secret-access-key`, ...), and the
        password and secret parameters of `catalog_uri`, the Nessie URI and the warehouse."""
        values = mapping_secrets({"s3": self.s3, "nessie": self.nessie, "props": self.catalog_properties})
        values += uri_secrets(self.catalog_uri) + uri_secrets(self.warehouse)
        return sorted(set(values), key=len, reverse=True)

    def redactor(self) -> Redactor:
        """The redactor for these settings' secrets."""
        return Redactor(self.secret_values())

    def __repr__(self) -> str:
        """The dataclass repr with secrets redacted (settings end up in tracebacks and debug output)."""
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__dataclass_fields__)
        return self.redactor().text(f"Settings({fields})")


def batch_roots(value: Any) -> tuple[str, ...]:
    """`batch_allowed_roots` as real paths (relative entries from the working directory); absent:
    the working directory and the system temp directory, where taps write batch files by default."""
    if value is None:
        value = [os.getcwd(), tempfile.gettempdir()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"batch_allowed_roots must be a list of directory paths, got {value!r}")
    return tuple(dict.fromkeys(os.path.realpath(os.path.expanduser(v)) for v in value))


def _positive(value: Any, name: str, default: float) -> float:
    """A setting that must be a positive number (absent: `default`)."""
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if number <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return number
