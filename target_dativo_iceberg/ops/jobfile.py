"""Dativo job files (YAML) read into the tap's and the target's configs, checked before anything runs.

A job names its tenant, a file source, a target, an asset (ODCS contract), a validation mode and
`retry_config`; this maps it onto the settings of tap-dativo-csv and target-dativo-iceberg:

| job key | becomes |
| --- | --- |
| `tenant_id` (required) | target `tenant_id` (and the state directory) |
| `asset_path` (or `asset.path`) | each file entry's `asset` (tap) and `assets: {object: path}` (target) |
| `source.files[]` (`path` or `file`, `object`) | tap `files` (`object` defaults to the asset name) |
| `source.incremental`, other `source.*` | tap settings of the same name (`strategy`, `lookback_days`, `format`, ...) |
| `source.connection.s3` | tap `connection.s3` (default: `target.connection.s3`) |
| `target.branch`, `.warehouse`, `.partitioning`, `.connection`, any target setting | target setting of the same name |
| `target.catalog` (`type`, `uri`, `name`, `properties`) or `target.catalog_type` | `catalog_type`, `catalog_uri`, ... |
| `target_connector: s3` / `minio` (no catalog) | `catalog_type: none` |
| `target.connection.nessie.uri` without a catalog type | `catalog_type: nessie` |
| `schema_validation_mode` or `validation.mode` | `schema_validation_mode` |
| `retry_config` (`initial_delay_seconds` = `retry_delay_seconds`) | `retry_config` |

`${VAR}` and `${VAR:-default}` are expanded everywhere first. Keys of the platform that do not change
how data lands here (`environment`, `logging`, `*_connector_path`, `finops`, ...) are reported as
ignored. Anything malformed raises `JobError` naming the file and the key.
"""

from __future__ import annotations

import os
import re
import typing as t
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from target_dativo_iceberg.errors import ConfigError, JobError
from target_dativo_iceberg.settings import Settings

FILE_SOURCES = ("csv", "json", "ndjson", "markdown_kv", "file", "files", "s3", "local")
FORMATS = {"json": "json", "ndjson": "ndjson", "markdown_kv": "markdown_kv"}
NO_CATALOG_TARGETS = ("s3", "minio", "parquet", "none")
TARGETS = ("iceberg", *NO_CATALOG_TARGETS)
INFORMATIONAL = (
    "environment",
    "source_connector_path",
    "target_connector_path",
    "logging",
    "description",
    "schedule",
    "finops",
    "classification_overrides",
    "governance_overrides",
    "infrastructure",
    "tags",
    "owner",
)
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Job:
    """One job file, mapped."""

    path: Path
    name: str
    tenant_id: str
    tap_config: dict[str, t.Any]
    target_config: dict[str, t.Any]
    settings: Settings
    ignored: list[str] = field(default_factory=list)


def expand(value: t.Any, path: Path, key: str = "") -> t.Any:
    """`${VAR}` / `${VAR:-default}` in every string of the document; an unset VAR without default fails."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise JobError(path, key or "(top level)", f"references ${{{name}}}, which is not set")

        return _REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand(v, path, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, path, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _mapping(doc: dict[str, t.Any], key: str, path: Path) -> dict[str, t.Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise JobError(path, key, f"must be a mapping, got {type(value).__name__}")
    return value


def _text(doc: dict[str, t.Any], key: str, path: Path, where: str = "") -> str | None:
    value = doc.get(key)
    if value is not None and (not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value)):
        raise JobError(path, where + key, f"must be a non-empty string, got {value!r}")
    return str(value) if value is not None else None


def job_name(path: Path) -> str:
    """The job's name: its file name without extension (the state file is named after it)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)


def load_job(path: Path) -> Job:
    """Read, expand and map one job file; JobError (exit 2) when it is malformed."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise JobError(path, "(file)", exc.strerror or str(exc)) from exc
    except yaml.YAMLError as exc:
        raise JobError(path, "(file)", f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise JobError(path, "(top level)", "must be a mapping of job keys")
    doc = expand(raw, path)
    tenant = _text(doc, "tenant_id", path)
    if not tenant:
        raise JobError(path, "tenant_id", "is required")
    source_kind = (_text(doc, "source_connector", path) or "csv").lower()
    if source_kind not in FILE_SOURCES:
        raise JobError(
            path, "source_connector", f"{source_kind!r} is not a file source ({', '.join(FILE_SOURCES)})"
        )
    target_kind = (_text(doc, "target_connector", path) or "iceberg").lower()
    if target_kind not in TARGETS:
        raise JobError(path, "target_connector", f"{target_kind!r}: expected one of {', '.join(TARGETS)}")
    asset_path, asset_name = _asset(doc, path)
    tap = _tap_config(doc, path, asset_path, asset_name, source_kind)
    target = _target_config(doc, path, tenant, target_kind)
    objects = dict.fromkeys(entry["object"] for entry in tap["files"])
    if asset_path:
        target["assets"] = {obj: asset_path for obj in objects}
    if "connection" not in tap and (target.get("connection") or {}).get("s3"):
        tap["connection"] = {"s3": target["connection"]["s3"]}
    try:
        settings = Settings.from_config(target)
    except ConfigError as exc:
        raise JobError(path, "target", str(exc)) from exc
    known = {"tenant_id", "source_connector", "target_connector", "asset", "asset_path", "source", "target"}
    known |= {"schema_validation_mode", "validation", "retry_config"}
    ignored = [k for k in doc if k not in known]
    return Job(path, job_name(path), tenant, tap, target, settings, ignored)


def _asset(doc: dict[str, t.Any], path: Path) -> tuple[str | None, str | None]:
    asset = doc.get("asset")
    if isinstance(asset, dict):
        return _text(asset, "path", path, "asset."), _text(asset, "name", path, "asset.")
    asset_path = _text(doc, "asset_path", path)
    if asset_path and not Path(asset_path).is_file():
        raise JobError(path, "asset_path", f"contract file {asset_path} not found")
    return asset_path, _text(doc, "asset", path)


def _tap_config(
    doc: dict[str, t.Any], path: Path, asset_path: str | None, asset_name: str | None, kind: str
) -> dict[str, t.Any]:
    source = dict(_mapping(doc, "source", path))
    files = source.pop("files", None)
    if not isinstance(files, list) or not files:
        raise JobError(path, "source.files", "must list at least one file entry ({path, object})")
    entries = []
    for i, entry in enumerate(files):
        key = f"source.files[{i}]"
        if not isinstance(entry, dict):
            raise JobError(path, key, "must be a mapping with `path` and `object`")
        entry = dict(entry)
        file_path = entry.pop("path", None) or entry.pop("file", None)
        if not isinstance(file_path, str) or not file_path:
            raise JobError(path, f"{key}.path", "is required (a file, directory, glob or s3:// URI)")
        obj = entry.pop("object", None) or asset_name or Path(file_path).stem
        if not isinstance(obj, str):
            raise JobError(path, f"{key}.object", f"must be a string, got {obj!r}")
        mapped = {"path": file_path, "object": obj, **entry}
        if asset_path and "asset" not in mapped:
            mapped["asset"] = asset_path
        entries.append(mapped)
    incremental = source.get("incremental")
    if incremental is not None and not isinstance(incremental, dict):
        raise JobError(path, "source.incremental", "must be a mapping (strategy, lookback_days)")
    out: dict[str, t.Any] = {**source, "files": entries}
    if kind in FORMATS and "format" not in out:
        out["format"] = FORMATS[kind]
    return out


def _target_config(doc: dict[str, t.Any], path: Path, tenant: str, kind: str) -> dict[str, t.Any]:
    target = dict(_mapping(doc, "target", path))
    declared = {f.name for f in fields(Settings)} | {"load_method", "batch_size_rows"}
    out: dict[str, t.Any] = {"tenant_id": tenant}
    catalog = target.pop("catalog", None)
    if isinstance(catalog, str):
        catalog = {"type": catalog}
    if catalog is not None:
        if not isinstance(catalog, dict):
            raise JobError(
                path, "target.catalog", "must be a catalog type or a mapping (type, uri, name, properties)"
            )
        for key, setting in (("type", "catalog_type"), ("uri", "catalog_uri"), ("name", "catalog_name")):
            if catalog.get(key) is not None:
                out[setting] = catalog[key]
        if catalog.get("properties"):
            out["catalog_properties"] = catalog["properties"]
    file_format = target.pop("file_format", "parquet")
    if str(file_format).lower() != "parquet":
        raise JobError(path, "target.file_format", f"{file_format!r}: only parquet is written")
    for key, value in target.items():
        if key not in declared:
            raise JobError(path, f"target.{key}", "is not a target setting (see docs/jobs.md)")
        out[key] = value
    if "catalog_type" not in out:
        nessie = ((out.get("connection") or {}).get("nessie") or {}).get("uri")
        if kind in NO_CATALOG_TARGETS:
            out["catalog_type"] = "none"
        elif nessie:
            out["catalog_type"] = "nessie"
    validation = _mapping(doc, "validation", path)
    mode = doc.get("schema_validation_mode") or validation.get("mode")
    if mode is not None:
        out["schema_validation_mode"] = mode
    retry = doc.get("retry_config")
    if retry is not None:
        if not isinstance(retry, dict):
            raise JobError(path, "retry_config", "must be a mapping (max_retries, retry_delay_seconds, ...)")
        retry = dict(retry)
        if "initial_delay_seconds" in retry:
            retry.setdefault("retry_delay_seconds", retry.pop("initial_delay_seconds"))
        for extra in ("max_delay_seconds", "backoff_multiplier", "retryable_exit_codes"):
            retry.pop(extra, None)
        out["retry_config"] = retry
    return out
