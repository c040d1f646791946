"""ODCS v3 data contracts: load, validate, and map to an Iceberg table.

Two flavours are read. Official ODCS (`apiVersion` v3.0.x, v3.1.x, v3.2.x) is validated against
the official JSON Schema of its minor version, vendored in `odcs/`. The flat Dativo flavour
(`$schema: .../dativo-odcs-3.0.2-extended.schema.json`, `schema: [{name, type, required}]`) is
validated against `odcs/dativo-flat-contract.schema.json`. Any problem raises `ContractError`
naming file, location (`schema[0].properties[2].logicalType`, with its line) and problem, before
any record is read. One `Contract` describes one schema object (one table). See docs/contracts.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField

from target_dativo_iceberg.contracts.odcs import join_location, metadata
from target_dativo_iceberg.contracts.odcs.documents import (
    FLAT_SCHEMA,
    OFFICIAL_SCHEMAS,
    api_minor,
    line_of,
    parse_yaml,
    schema_problems,
)
from target_dativo_iceberg.contracts.odcs.fields import (
    ContractField,
    StreamCompatibility,
    build_fields,
    stream_compatibility,
)
from target_dativo_iceberg.contracts.odcs.rules import QualityCheck, parse_quality
from target_dativo_iceberg.errors import ContractError, ContractProblem, ContractProblems
from target_dativo_iceberg.iceberg.paths import segment_problem
from target_dativo_iceberg.iceberg.schema import sanitize_name

__all__ = [
    "Contract",
    "ContractField",
    "StreamCompatibility",
    "contract_for_stream",
    "load_contract",
    "load_contracts",
    "resolve_contracts",
]

FLAT_MARKER = "dativo-odcs-3.0.2-extended"
CONTRACT_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Contract:
    """One schema object of a contract file, resolved for the target."""

    path: str
    id: str | None
    version: str | None
    api_version: str | None
    flavour: str  # "odcs" or "dativo-flat"
    object_name: str
    physical_name: str | None
    domain: str | None
    data_product: str | None
    tenant: str | None
    owner: str | None
    classification: str | None
    retention_days: int | None
    fields: tuple[ContractField, ...]
    quality: tuple[QualityCheck, ...] = ()  # object-level checks (rowCount, multi-column duplicates)
    partitioning: tuple[str, ...] = ()  # flat flavour `target.partitioning`, as written
    aliases: tuple[str, ...] = ()  # other names streams may use for this object (flat `object`)
    notes: tuple[str, ...] = ()  # parts of the contract the target reads but does not enforce

    def field(self, name: str) -> ContractField | None:
        """The field with this property name (or Iceberg column name)."""
        for candidate in self.fields:
            if name in (candidate.name, candidate.column):
                return candidate
        return None

    def table_name(self) -> str:
        """Iceberg table name: object `physicalName` or `name`, lower-cased, non-alphanumerics → `_`."""
        return sanitize_name(self.physical_name or self.object_name)

    def iceberg_schema(self) -> Schema:
        """Columns in contract order, field ids 1..n, identifier fields from the primary key."""
        columns = [
            NestedField(i, f.column, f.iceberg_type, required=f.required, doc=f.description or None)
            for i, f in enumerate(self.fields, start=1)
        ]
        ids = {f.column: i for i, f in enumerate(self.fields, start=1)}
        return Schema(*columns, identifier_field_ids=[ids[c] for c in self.identifier_columns()])

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of validated batches (`iceberg_schema().as_arrow()`)."""
        return self.iceberg_schema().as_arrow()

    def identifier_columns(self) -> list[str]:
        """Primary-key columns ordered by primaryKeyPosition."""
        keyed = [f for f in self.fields if f.primary_key_position is not None]
        return [f.column for f in sorted(keyed, key=lambda f: f.primary_key_position or 0)]

    def partition_columns(self) -> list[str]:
        """Partition columns ordered by partitionKeyPosition; flat flavour: `target.partitioning`."""
        if self.partitioning:
            columns = {name: f.column for f in self.fields for name in (f.name, f.column)}
            return [columns.get(p, p) for p in self.partitioning]
        parts = [f for f in self.fields if f.partition_key_position is not None]
        return [f.column for f in sorted(parts, key=lambda f: f.partition_key_position or 0)]

    def table_properties(self) -> dict[str, str]:
        """Iceberg table properties of design §4; keys only for values the contract states."""
        values = {
            "dativo.owner": self.owner,
            "dativo.domain": self.domain,
            "dativo.data-product": self.data_product,
            "dativo.classification": self.classification,
            "dativo.retention-days": self.retention_days,
            "dativo.contract-id": self.id,
            "dativo.contract-version": self.version,
        }
        return {k: str(v) for k, v in values.items() if v is not None and v != ""}

    def check_stream_schema(self, schema: Mapping[str, Any]) -> StreamCompatibility:
        """How a stream's Singer SCHEMA fits: unknown fields, missing (required) fields, impossible types."""
        return stream_compatibility(self.fields, schema)

    def match_names(self) -> list[str]:
        """Names a stream may carry to use this contract: object name, physicalName, flat `object`."""
        names = [self.object_name, self.physical_name, *self.aliases]
        return list(dict.fromkeys(n for n in names if n))


# ---------------------------------------------------------------- parsing


def _common(
    doc: dict, path: str, flavour: str, fields: tuple[ContractField, ...], flat: bool
) -> dict[str, Any]:
    version = doc.get("version")
    return {
        "path": path,
        "id": str(doc["id"]) if doc.get("id") is not None else None,
        "version": str(version) if version is not None else None,
        "api_version": str(doc["apiVersion"]) if doc.get("apiVersion") else None,
        "flavour": flavour,
        "domain": _path_segment(doc.get("domain"), "domain"),
        "data_product": _path_segment(doc.get("dataProduct"), "dataProduct"),
        "tenant": doc.get("tenant"),
        "owner": metadata.owner(doc, flat),
        "classification": metadata.classification(doc, flat, (f.classification for f in fields)),
        "retention_days": metadata.retention_days(doc, flat),
        "fields": fields,
    }


def _official(doc: dict, path: str) -> list[Contract]:
    objects = doc.get("schema")
    if not objects:
        raise ContractProblem(
            "schema", "the contract defines no schema object; the target needs one per table"
        )
    contracts = []
    for index, obj in enumerate(objects):
        location = join_location("schema", index)
        notes: list[str] = []
        props = [
            (p, join_location(join_location(location, "properties"), i))
            for i, p in enumerate(obj.get("properties") or [])
        ]
        if not props:
            raise ContractProblem(location, f"schema object {obj.get('name')!r} has no properties")
        fields = build_fields(props, flat=False, notes=notes)
        checks = parse_quality(obj.get("quality"), join_location(location, "quality"), None, None, notes)
        _check_properties(checks, fields)
        _table_segment(obj, location)
        contracts.append(
            Contract(
                object_name=str(obj["name"]),
                physical_name=obj.get("physicalName"),
                quality=tuple(checks),
                notes=tuple(notes),
                **_common(doc, path, "odcs", fields, flat=False),
            )
        )
    return contracts


def _flat(doc: dict, path: str) -> list[Contract]:
    notes: list[str] = []
    props = [(p, join_location("schema", i)) for i, p in enumerate(doc["schema"])]
    fields = build_fields(props, flat=True, notes=notes)
    checks = parse_quality(doc.get("quality"), "quality", None, None, notes)
    _check_properties(checks, fields)
    _table_segment(doc, "")
    object_name = doc.get("object")
    return [
        Contract(
            object_name=str(doc["name"]),
            physical_name=doc.get("physicalName"),
            quality=tuple(checks),
            partitioning=tuple((doc.get("target") or {}).get("partitioning") or ()),
            aliases=(str(object_name),) if object_name else (),
            notes=tuple(notes),
            **_common(doc, path, "dativo-flat", fields, flat=True),
        )
    ]


def _path_segment(value: Any, location: str) -> Any:
    """A value that becomes a directory of the table's location (`domain`, `dataProduct`) or its
    name must be one safe path segment (`paths.segment_problem`): `../x` must not leave the warehouse."""
    problem = segment_problem(value) if value is not None else None
    if problem:
        raise ContractProblem(
            location,
            f"{value!r} {problem}; it is used as a directory of the table's location "
            "({warehouse}/{domain}/{dataProduct}/{table}), so it must be a single safe path segment",
        )
    return value


def _table_segment(obj: Mapping[str, Any], location: str) -> None:
    """The schema object's `physicalName`, else its `name` (the table name) passes `_path_segment`."""
    key = "physicalName" if obj.get("physicalName") is not None else "name"
    _path_segment(obj.get(key), join_location(location, key))


def _check_properties(checks: list[QualityCheck], fields: tuple[ContractField, ...]) -> None:
    names = {f.name for f in fields}
    for check in checks:
        for prop in check.properties or ():
            if prop not in names:
                raise ContractProblem(check.location, f"arguments.properties names unknown property {prop!r}")


def _parse(doc: Any, path: str) -> list[Contract]:
    if not isinstance(doc, dict):
        raise ContractProblem("", "a contract must be a YAML mapping")
    if FLAT_MARKER in str(doc.get("$schema", "")):
        problems = schema_problems(doc, FLAT_SCHEMA)
        if problems:
            raise ContractProblems(problems)
        return _flat(doc, path)
    minor = api_minor(doc.get("apiVersion"))
    if minor not in OFFICIAL_SCHEMAS:
        if "apiVersion" not in doc:
            raise ContractProblem(
                "apiVersion",
                "missing; official ODCS needs apiVersion v3.0.x-v3.2.x "
                f"(a flat Dativo contract needs $schema: .../{FLAT_MARKER}.schema.json)",
            )
        raise ContractProblem(
            "apiVersion",
            f"unsupported ODCS version {doc.get('apiVersion')!r}; supported: v3.0.x, v3.1.x, v3.2.x",
        )
    problems = schema_problems(doc, OFFICIAL_SCHEMAS[minor])
    if problems:
        objects = doc.get("schema") if isinstance(doc.get("schema"), list) else []
        if any(isinstance(o, dict) and "type" in o and "properties" not in o for o in objects):
            problems.append(
                ContractProblem(
                    "$schema",
                    "schema entries look like flat Dativo columns; a flat contract needs "
                    f"$schema: .../{FLAT_MARKER}.schema.json",
                )
            )
        raise ContractProblems(problems)
    return _official(doc, path)


def _error(path: str, text: str | None, problems: list[ContractProblem]) -> ContractError:
    def where(problem: ContractProblem) -> str:
        located = text and problem.location and not problem.location.startswith(("line ", "("))
        line = line_of(text, problem.location) if located else None
        return f"{problem.location} (line {line})" if line else problem.location

    first, rest = problems[0], problems[1:]
    error = ContractError(path, where(first), first.problem, [f"{where(p)}: {p.problem}" for p in rest])
    error.location = first.location
    return error


def load_contracts(path: str | os.PathLike[str]) -> list[Contract]:
    """Every schema object of a contract file, each as a Contract; raises ContractError."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(shown, "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        return _parse(parse_yaml(text), shown)
    except ContractProblems as exc:
        raise _error(shown, text, exc.problems) from None
    except ContractProblem as exc:
        raise _error(shown, text, [exc]) from None


def _matches(contract: Contract, stream: str) -> bool:
    wanted = sanitize_name(stream)
    return any(name == stream or sanitize_name(name) == wanted for name in contract.match_names())


def load_contract(path: str | os.PathLike[str], stream: str | None = None) -> Contract:
    """The contract for one stream from a file: its only object, or the one named like the stream."""
    contracts = load_contracts(path)
    if len(contracts) == 1:
        return contracts[0]
    chosen = [c for c in contracts if stream is not None and _matches(c, stream)]
    if len(chosen) != 1:
        names = ", ".join(c.object_name for c in contracts)
        raise ContractError(
            str(path), "schema", f"{len(contracts)} schema objects ({names}); none is named {stream!r}"
        )
    return chosen[0]


def resolve_contracts(
    assets: Mapping[str, str] | None, assets_dir: str | None, base_dir: str | os.PathLike[str] | None = None
) -> dict[str, Contract]:
    """Stream name → Contract from the `assets` and `assets_dir` settings; relative paths use base_dir.

    `assets_dir` contributes every schema object of every *.yaml/*.yml/*.json file below it, keyed
    by object name, physicalName (and flat `object`); explicit `assets` entries win. Look a stream
    up with `contract_for_stream`, which also matches sanitized names (`Person` ~ `person`).
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    found: dict[str, Contract] = {}
    if assets_dir:
        directory = (base / Path(assets_dir).expanduser()).resolve()
        if not directory.is_dir():
            raise ContractError(str(directory), "", "assets_dir is not a directory")
        for file in sorted(p for p in directory.rglob("*") if p.suffix.lower() in CONTRACT_SUFFIXES):
            for contract in load_contracts(file):
                for name in contract.match_names():
                    other = found.get(name)
                    if other is not None and (other.path, other.object_name) != (
                        contract.path,
                        contract.object_name,
                    ):
                        raise ContractError(
                            contract.path, "schema", f"object {name!r} is also defined in {other.path}"
                        )
                    found[name] = contract
    for stream, file in (assets or {}).items():
        found[stream] = load_contract((base / Path(file).expanduser()).resolve(), stream=stream)
    return found


def contract_for_stream(contracts: Mapping[str, Contract], stream: str) -> Contract | None:
    """The contract of a stream: exact key, else a contract whose names sanitize to the same name."""
    if stream in contracts:
        return contracts[stream]
    matches = {id(c): c for c in contracts.values() if _matches(c, stream)}
    return next(iter(matches.values())) if len(matches) == 1 else None
