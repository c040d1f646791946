"""`connection.*` settings: object storage and catalog endpoints in the shape Dativo job configs use,
and the rule that ties `connection.s3.bucket` to the warehouse."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.iceberg.catalogs import DEFAULT_WAREHOUSE
from target_dativo_iceberg.settings.declare import group, masked_repr, setting


@dataclass(frozen=True)
class S3Connection:
    """`connection.s3`: object storage, mapped onto pyiceberg's `s3.*` FileIO properties."""

    endpoint: str | None = setting(None, "S3 endpoint URL, e.g. http://127.0.0.1:8333.")
    bucket: str | None = setting(None, "Bucket holding the warehouse.")
    access_key_id: str | None = setting(None, "S3 access key id.", secret=True)
    secret_access_key: str | None = setting(None, "S3 secret access key.", secret=True)
    session_token: str | None = setting(None, "S3 session token, for temporary keys.", secret=True)
    region: str | None = setting(None, "S3 region, e.g. us-east-1.")
    path_style_access: bool | None = setting(None, "Use path-style addressing (MinIO, SeaweedFS).")

    def given(self) -> dict[str, Any]:
        """The keys that are set, as `catalogs.s3_file_io_properties` and DuckDB read them."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    def __repr__(self) -> str:
        return masked_repr(self)


@dataclass(frozen=True)
class NessieConnection:
    """`connection.nessie`."""

    uri: str | None = setting(None, "Nessie URL; the native /api/v1 form is accepted.")


@dataclass(frozen=True)
class Connection:
    """`connection`: object storage and catalog endpoints, in the shape Dativo job configs use."""

    s3: S3Connection = group(S3Connection, "Object storage connection (the shape Dativo job configs use).")
    nessie: NessieConnection = group(NessieConnection, "Nessie connection.")


def bucket_warehouse(bucket: str | None, warehouse: str) -> str:
    """The warehouse with `connection.s3.bucket` honoured: without a warehouse it becomes
    `s3://{bucket}`; a warehouse elsewhere (another bucket, or a local path) contradicts it."""
    if not bucket:
        return warehouse
    if warehouse == DEFAULT_WAREHOUSE:
        return f"s3://{bucket}"
    parts = urlsplit(warehouse)
    if parts.scheme not in ("s3", "s3a", "s3n") or parts.netloc != bucket:
        raise ConfigError(
            f"connection.s3.bucket {bucket!r} contradicts warehouse {warehouse!r}: "
            f"give a warehouse in that bucket (s3://{bucket}/...) or drop one of the two"
        )
    return warehouse
