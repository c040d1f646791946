"""A stream's table plan: which table it lands in and how — from its contract or its Singer SCHEMA.

With a contract the table comes from it (types, required, identifier fields, partitions, table
properties, and the location `{warehouse}/[{tenant}/]{domain}/{dataProduct}/{table}`); without one,
from the stream's Singer SCHEMA, its key_properties becoming required identifier fields. Either way
`ingest_date` and the `_sdc_*` columns the target adds are part of the schema, and a bad partition
term or a missing key fails before any record is read. The namespace (and so the table's identity)
carries the tenant (`Settings.namespace_for`), and a contract of another tenant is refused.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from pyiceberg.schema import Schema
from pyiceberg.types import DoubleType, FloatType, NestedField, PrimitiveType

from target_dativo_iceberg.errors import ConfigError, SchemaError
from target_dativo_iceberg.iceberg.committer import TableSpec
from target_dativo_iceberg.iceberg.partitioning import build_spec, parse_terms
from target_dativo_iceberg.iceberg.paths import table_location
from target_dativo_iceberg.iceberg.schema import StreamSchema, sanitize_name
from target_dativo_iceberg.intake.builders import with_ingest_date

if t.TYPE_CHECKING:
    from target_dativo_iceberg.contracts.contract import Contract
    from target_dativo_iceberg.settings import Settings


@dataclass(frozen=True)
class TablePlan:
    """Where and how one stream's rows land."""

    identifier: tuple[str, str]
    spec: TableSpec
    #: upsert: the keys whose existing rows a batch replaces (None: not upserting).
    upsert_keys: list[str] | None
    #: The stream's keys (contract primaryKey, else key_properties); deletion records use them.
    keys: list[str]
    #: append-only, upsert or overwrite (`Settings.load_method_for`).
    load_method: str = "append-only"

    @property
    def name(self) -> str:
        return ".".join(self.identifier)


def plan_table(
    stream: str, stream_schema: StreamSchema, contract: Contract | None, settings: Settings
) -> TablePlan:
    """The stream's table plan; ConfigError when a setting cannot apply to it."""
    sdc = sdc_fields(stream_schema)
    if contract is None:
        identifier = (settings.namespace_for(None), sanitize_name(stream))
        terms = parse_terms(settings.partitioning or [])
        keys = list(stream_schema.key_columns)
        keyed = _keyed_schema(stream, stream_schema.iceberg, keys)
        spec = TableSpec(with_ingest_date(keyed, terms), partitioning=terms)
    else:
        if contract.tenant is not None and str(contract.tenant) != settings.tenant_id:
            raise ConfigError(
                f"stream {stream!r}: contract {contract.path} belongs to tenant {contract.tenant!r}, "
                f"this run to tenant_id {settings.tenant_id!r}; a tenant lands only its own contracts"
            )
        identifier = (settings.namespace_for(contract.domain), contract.table_name())
        location = None
        if contract.domain and contract.data_product:
            parts = (contract.domain, contract.data_product, contract.table_name())
            if settings.tenant_scoped:
                parts = (settings.tenant_id, *parts)
            location = table_location(settings, parts, f"contract {contract.path}")
        terms = parse_terms(
            settings.partitioning if settings.partitioning is not None else contract.partition_columns()
        )
        spec = TableSpec(
            with_ingest_date(_contract_schema(contract, sdc), terms),
            partitioning=terms,
            properties=contract.table_properties(),
            location=location,
            keep_required=True,
        )
        keys = list(contract.identifier_columns())
    build_spec(spec.schema, list(spec.partitioning))  # a bad term fails before any data is read
    upsert_keys = None
    load_method = settings.load_method_for(keys)
    if load_method == "upsert":
        if not keys:
            raise ConfigError(
                f"stream {stream!r}: load_method upsert needs key_properties or a contract primaryKey"
            )
        upsert_keys = keys
    return TablePlan(identifier, spec, upsert_keys, keys, load_method)


def _keyed_schema(stream: str, schema: Schema, keys: list[str]) -> Schema:
    """A Singer stream's schema with its key_properties as required identifier fields."""
    if not keys:
        return schema
    fields = []
    for f in schema.fields:
        if f.name in keys:
            if not isinstance(f.field_type, PrimitiveType) or isinstance(
                f.field_type, (FloatType, DoubleType)
            ):
                raise SchemaError(
                    f"stream {stream!r}: key property {f.name!r} is {f.field_type}; a key must be a "
                    "string, integer, boolean, date/time or decimal (not number, object or array)"
                )
            f = NestedField(f.field_id, f.name, f.field_type, required=True, doc=f.doc)
        fields.append(f)
    ids = [f.field_id for name in keys for f in fields if f.name == name]
    return Schema(*fields, identifier_field_ids=ids)


def sdc_fields(stream_schema: StreamSchema) -> list[NestedField]:
    """The stream's `_sdc_*` columns (SDK metadata and the tap's own, e.g. `_sdc_source_file`)."""
    return [f for f in stream_schema.iceberg.fields if f.name.startswith("_sdc_")]


def _contract_schema(contract: Contract, sdc: list[NestedField]) -> Schema:
    """The contract's schema plus the stream's `_sdc_*` columns."""
    base = contract.iceberg_schema()
    fields = list(base.fields)
    names = {f.name for f in fields}
    next_id = base.highest_field_id + 1
    for f in sdc:
        if f.name not in names:
            fields.append(NestedField(next_id, f.name, f.field_type, required=False))
            next_id += 1
    return Schema(*fields, identifier_field_ids=base.identifier_field_ids)
