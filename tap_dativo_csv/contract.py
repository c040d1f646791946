"""Minimal ODCS v3 contract reading for the CSV tap: column names, types, required and keys.

The tap only needs a type mapping so it can emit typed values; full contract validation is the
target's job, so everything beyond types, `required` and `primaryKey` is ignored here. Decimal
physical types are read with the target's rule (`physical_decimal`). The logicalType mapping is the
tap's own: coarser (six reader kinds) and lenient (an unknown or contradictory type is read as text
with a warning, where the target rejects the contract), so a CSV still reads for the target to judge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from target_dativo_iceberg.contracts.odcs.types import physical_decimal
from target_dativo_iceberg.errors import ContractError

LOGGER = logging.getLogger(__name__)

#: Column kinds the reader knows how to convert; they are also the JSON-schema flavours emitted.
KINDS = ("string", "integer", "number", "boolean", "date", "timestamp")

_LOGICAL_TO_KIND = {
    "string": "string",
    "integer": "integer",
    "long": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "double": "number",
    "decimal": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "datetime": "timestamp",
}


@dataclass(frozen=True)
class ColumnSpec:
    """One typed column, from a contract property or from the CSV header."""

    name: str
    kind: str = "string"
    required: bool = False
    #: (precision, scale) of a `number` column whose physicalType is decimal(p, s): BATCH files
    #: carry it as an exact decimal (RECORD messages carry JSON numbers).
    decimal: tuple[int, int] | None = None


@dataclass(frozen=True)
class Contract:
    """The parts of an ODCS schema object the tap uses."""

    path: str
    object_name: str
    columns: tuple[ColumnSpec, ...]
    primary_keys: tuple[str, ...]


def json_schema_for(column: ColumnSpec) -> dict[str, Any]:
    """JSON schema of a column; nullable unless the contract marks it required."""
    base, fmt = {
        "string": ("string", None),
        "integer": ("integer", None),
        "number": ("number", None),
        "boolean": ("boolean", None),
        "date": ("string", "date"),
        "timestamp": ("string", "date-time"),
    }[column.kind]
    schema: dict[str, Any] = {"type": base if column.required else [base, "null"]}
    if fmt:
        schema["format"] = fmt
    return schema


def _pick_schema_object(doc: dict[str, Any], object_name: str, path: str) -> dict[str, Any]:
    """Choose the schema object matching the stream, else the only/first one."""
    objects = doc.get("schema") or []
    if not isinstance(objects, list) or not objects:
        raise ContractError(path, "", "no `schema` objects found")
    wanted = object_name.lower()
    for obj in objects:
        names = {str(obj.get("name", "")).lower(), str(obj.get("physicalName", "")).lower()}
        if wanted in names:
            return obj
    if len(objects) > 1:
        LOGGER.warning("contract %s: no schema object named %r, using the first one", path, object_name)
    return objects[0]


def _kind_of(prop: dict[str, Any], path: str) -> str:
    """Map an ODCS logicalType to a reader kind; unknown types fall back to string.

    ODCS v3.0.2 has no `timestamp` logicalType: timestamps are `logicalType: date` with a
    timestamp-like `physicalType` (or a time-of-day `logicalTypeOptions.format`), so both spell one.
    """
    logical = str(prop.get("logicalType") or "string").lower()
    physical = str(prop.get("physicalType") or "").lower()
    fmt = str((prop.get("logicalTypeOptions") or {}).get("format") or "")
    if logical == "date" and ("timestamp" in physical or "datetime" in physical or "HH" in fmt):
        return "timestamp"
    kind = _LOGICAL_TO_KIND.get(logical)
    if kind is None:
        LOGGER.warning(
            "contract %s: property %r has logicalType %r which the CSV tap emits as string",
            path,
            prop.get("name"),
            logical,
        )
        return "string"
    return kind


def _decimal_of(prop: dict[str, Any], kind: str) -> tuple[int, int] | None:
    """(precision, scale) from a physicalType like `decimal(12,2)` of a number column."""
    declared = physical_decimal(str(prop.get("physicalType") or "")) if kind == "number" else None
    if declared is None:
        return None
    precision, scale = declared[0], declared[1] or 0
    return (precision, scale) if 1 <= precision <= 38 and scale <= precision else None


def load_contract(path: str, object_name: str) -> Contract:
    """Read an ODCS v3 YAML file and extract the column types for one stream."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ContractError(path, "", "file not found")
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractError(path, "", f"invalid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ContractError(path, "", "expected a YAML mapping at the top level")

    obj = _pick_schema_object(doc, object_name, path)
    columns: list[ColumnSpec] = []
    keyed: list[tuple[int, int, str]] = []
    for index, prop in enumerate(obj.get("properties") or []):
        name = prop.get("name")
        if not name:
            raise ContractError(path, "", f"property #{index + 1} has no name")
        kind = _kind_of(prop, path)
        columns.append(
            ColumnSpec(str(name), kind, bool(prop.get("required", False)), decimal=_decimal_of(prop, kind))
        )
        if prop.get("primaryKey"):
            keyed.append((int(prop.get("primaryKeyPosition") or 10_000), index, str(name)))
    if not columns:
        raise ContractError(path, "", "schema object has no properties")
    return Contract(
        path=path,
        object_name=str(obj.get("name") or object_name),
        columns=tuple(columns),
        primary_keys=tuple(name for _, _, name in sorted(keyed)),
    )
