"""Resolved target settings: defaults, `${VAR}` expansion and the pyiceberg catalog properties.

The SDK validates the raw config against `config_jsonschema`; this module turns it into the values
the rest of the target uses, so defaults that depend on other settings (branch = tenant_id) live in
one place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from target_dativo_iceberg.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

CATALOG_TYPES = ("sql", "rest", "nessie", "glue", "hive", "none")
DEFAULT_CATALOG_URI = "sqlite:///.local/iceberg/catalog.db"
DEFAULT_WAREHOUSE = ".local/iceberg/warehouse"

# Settings whose values must never be logged or written to snapshot summaries.
SECRET_KEYS = ("secret_access_key", "access_key_id", "token", "credential", "password", "session_token")


def expand_env(value: Any, path: str = "") -> Any:
    """Replace `${VAR}` references in strings (recursively); an unset variable is a config error."""
    if isinstance(value, str):

        def _sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"setting {path or '?'} references ${{{name}}}, which is not set")
            return os.environ[name]

        return _ENV_REF.sub(_sub, value)
    if isinstance(value, Mapping):
        return {k: expand_env(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _local_uri(path: str) -> str:
    """A warehouse given as a plain path becomes an absolute file:// URI (pyiceberg needs a scheme)."""
    if "://" in path:
        return path
    return Path(path).expanduser().resolve().as_uri()


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
    load_method: str = "append-only"
    add_record_metadata: bool = False
    max_batch_age_seconds: float = 300.0

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
            namespace=cfg.get("namespace") or None,
            catalog_type=catalog_type,
            catalog_uri=str(cfg.get("catalog_uri") or DEFAULT_CATALOG_URI),
            catalog_name=str(cfg.get("catalog_name") or "dativo"),
            catalog_properties=dict(cfg.get("catalog_properties") or {}),
            warehouse=str(cfg.get("warehouse") or DEFAULT_WAREHOUSE),
            s3=dict(connection.get("s3") or {}),
            load_method=str(cfg.get("load_method") or "append-only"),
            add_record_metadata=bool(cfg.get("add_record_metadata", False)),
            max_batch_age_seconds=float(cfg.get("max_batch_age_seconds") or 300),
        )

    @property
    def default_namespace(self) -> str:
        """Namespace used when neither the setting nor a contract names one."""
        return self.namespace or self.tenant_id

    def s3_file_io_properties(self) -> dict[str, str]:
        """Map `connection.s3.*` onto pyiceberg's FileIO `s3.*` properties."""
        s3 = self.s3
        props: dict[str, str] = {}
        mapping = {
            "endpoint": "s3.endpoint",
            "access_key_id": "s3.access-key-id",
            "secret_access_key": "s3.secret-access-key",
            "region": "s3.region",
        }
        for key, prop in mapping.items():
            if s3.get(key):
                props[prop] = str(s3[key])
        if "path_style_access" in s3:
            props["s3.force-virtual-addressing"] = "false" if s3["path_style_access"] else "true"
        return props

    def catalog_load_properties(self) -> dict[str, str]:
        """Properties for `pyiceberg.catalog.load_catalog`, user `catalog_properties` winning."""
        props: dict[str, str] = {"type": self.catalog_type}
        warehouse = self.warehouse
        if self.catalog_type == "sql":
            uri = self.catalog_uri
            if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
                db_path = Path(uri[len("sqlite:///") :]).resolve()
                db_path.parent.mkdir(parents=True, exist_ok=True)
                uri = f"sqlite:///{db_path}"
            props["uri"] = uri
            if "://" not in warehouse:
                Path(warehouse).mkdir(parents=True, exist_ok=True)
            props["warehouse"] = _local_uri(warehouse)
        else:
            props["uri"] = self.catalog_uri
            props["warehouse"] = warehouse
        props.update(self.s3_file_io_properties())
        props.update({k: str(v) for k, v in self.catalog_properties.items()})
        return props

    def secret_values(self) -> list[str]:
        """Secret values present in the settings, for redaction."""
        values = [str(v) for k, v in self.s3.items() if k in SECRET_KEYS and v]
        values += [str(v) for k, v in self.catalog_properties.items() if _is_secret_key(k) and v]
        return values


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(s.replace("_", "-") in lowered or s in lowered for s in SECRET_KEYS)
