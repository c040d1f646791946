"""`s3://` sources: boto3 lists objects (paginated, glob-matched), pyarrow streams their bytes.

Listing goes through boto3 because it gives `LastModified` for every key of a page at once.
Reading goes through `pyarrow.fs.S3FileSystem`, a native stream: pyarrow's CSV reader pulls
ranged GETs block by block and never calls back into Python, so a multi-GB object is never held
in memory and `.gz` objects are decompressed on the fly.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import gc
import re
import typing as t
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pyarrow as pa

from tap_dativo_csv.formats import SUFFIXES
from target_dativo_iceberg.errors import S3Error

if t.TYPE_CHECKING:
    from pyarrow import fs as pa_fs

UTC = datetime.timezone.utc
_MAGIC = re.compile(r"[*?\[]")
_READ_BUFFER = 1024 * 1024
#: Keys per ListObjectsV2 page (the S3 maximum); tests lower it to exercise pagination.
PAGE_SIZE = 1000


def _as_bool(value: t.Any) -> bool:
    return str(value).strip().lower() not in ("false", "0", "no", "off", "")


@dataclass(frozen=True)
class S3Settings:
    """`connection.s3` of the tap config (same keys as the target's)."""

    endpoint: str | None = None
    bucket: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    path_style_access: bool | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, t.Any] | None) -> S3Settings:
        """Read `connection.s3`; empty strings (unset Meltano env vars) count as unset."""
        s3 = dict(((config or {}).get("connection") or {}).get("s3") or {})
        values = {k: (v if v != "" else None) for k, v in s3.items() if k in cls.__dataclass_fields__}
        if values.get("path_style_access") is not None:
            values["path_style_access"] = _as_bool(values["path_style_access"])
        return cls(**values)

    @property
    def path_style(self) -> bool:
        """Path-style addressing: as configured, else on for custom endpoints (MinIO, SeaweedFS)."""
        if self.path_style_access is not None:
            return self.path_style_access
        return bool(self.endpoint)

    @property
    def where(self) -> str:
        """The endpoint for messages."""
        return self.endpoint or "AWS S3"


def split_url(url: str, default_bucket: str | None = None) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key). `s3:///key` uses `connection.s3.bucket`."""
    rest = url[len("s3://") :]
    bucket, _, key = rest.partition("/")
    bucket = bucket or (default_bucket or "")
    if not bucket:
        raise S3Error(f"path {url!r}: no bucket (write s3://bucket/key or set connection.s3.bucket)")
    return bucket, key


def key_pattern(pattern: str) -> re.Pattern[str]:
    """Glob -> regex over whole keys: `*` and `?` stay within one `/` segment, `**` spans segments."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[" and (end := pattern.find("]", i + 2)) > 0:
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append(f"[{'^' if negate else ''}{body.replace(chr(92), chr(92) * 2)}]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _utc(value: datetime.datetime) -> datetime.datetime:
    """LastModified in UTC, as bookmarks store it."""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class S3Store:
    """Lists and opens objects of one S3 endpoint; clients are created on first use."""

    def __init__(self, settings: S3Settings) -> None:
        """Keep the settings; nothing connects yet (discovery without s3:// paths never does)."""
        self.settings = settings
        self._client: t.Any = None
        self._fs: pa_fs.S3FileSystem | None = None

    # -- clients -------------------------------------------------------------------------------

    @property
    def client(self) -> t.Any:
        """boto3 S3 client with the configured endpoint, keys, region and addressing style."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            self._client = boto3.client(
                "s3",
                endpoint_url=s.endpoint or None,
                region_name=s.region or "us-east-1",
                aws_access_key_id=s.access_key_id or None,
                aws_secret_access_key=s.secret_access_key or None,
                aws_session_token=s.session_token or None,
                config=Config(
                    s3={"addressing_style": "path" if s.path_style else "virtual"},
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
        return self._client

    @property
    def filesystem(self) -> pa_fs.S3FileSystem:
        """pyarrow's native S3 filesystem with the same settings, for streaming reads."""
        if self._fs is None:
            from pyarrow import fs as pa_fs

            s = self.settings
            kwargs: dict[str, t.Any] = {
                "region": s.region or "us-east-1",
                "force_virtual_addressing": not s.path_style,
            }
            if s.access_key_id and s.secret_access_key:
                kwargs.update(access_key=s.access_key_id, secret_key=s.secret_access_key)
                if s.session_token:
                    kwargs["session_token"] = s.session_token
            if s.endpoint:
                scheme, sep, host = s.endpoint.partition("://")
                kwargs["scheme"], kwargs["endpoint_override"] = (scheme, host) if sep else ("https", scheme)
                kwargs["endpoint_override"] = kwargs["endpoint_override"].rstrip("/")
            self._fs = pa_fs.S3FileSystem(**kwargs)
            atexit.register(self._release)  # runs before pyarrow's own S3 finalizer (LIFO)
        return self._fs

    def _release(self) -> None:
        """Drop the filesystem and finalize S3 before the interpreter tears down: a live
        S3FileSystem at exit can abort the process after a successful sync (apache/arrow#41087)."""
        self._fs = None
        gc.collect()
        from pyarrow import fs as pa_fs

        with contextlib.suppress(Exception):
            pa_fs.finalize_s3()

    # -- listing -------------------------------------------------------------------------------

    def _error(self, url: str, exc: Exception) -> S3Error:
        """A listing/reading failure naming the path and endpoint (botocore messages hold no secrets)."""
        response = getattr(exc, "response", None) or {}
        err = response.get("Error") or {}
        detail = f"{err.get('Code')}: {err.get('Message') or exc}" if err else str(exc)
        return S3Error(f"path {url!r}: S3 request to {self.settings.where} failed: {detail}")

    def _objects(self, url: str, bucket: str, prefix: str, delimiter: str = "") -> Iterator[dict]:
        """Every object under `prefix` (one level when `delimiter` is '/'), page by page."""
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                **kwargs, PaginationConfig={"PageSize": PAGE_SIZE}
            )
            for page in pages:
                yield from page.get("Contents") or []
        except (ClientError, BotoCoreError) as exc:
            raise self._error(url, exc) from exc

    def _head(self, url: str, bucket: str, key: str) -> dict | None:
        """HEAD one key; None when it does not exist."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = str(((exc.response or {}).get("Error") or {}).get("Code"))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(url, exc) from exc
        except BotoCoreError as exc:
            raise self._error(url, exc) from exc

    def expand(self, url: str) -> list[tuple[str, datetime.datetime, int]]:
        """Expand an `s3://` path (key, directory-like prefix or glob) to sorted (url, modified, size)."""
        bucket, key = split_url(url, self.settings.bucket)
        found: list[tuple[str, datetime.datetime, int]] = []
        if _MAGIC.search(key):
            literal = key[: _MAGIC.search(key).start()]  # type: ignore[union-attr]
            matcher = key_pattern(key)
            for obj in self._objects(url, bucket, literal):
                if matcher.match(obj["Key"]) and not obj["Key"].endswith("/"):
                    found.append((f"s3://{bucket}/{obj['Key']}", _utc(obj["LastModified"]), int(obj["Size"])))
            if not found:
                raise S3Error(f"path {url!r}: glob matched no objects")
        elif key and not key.endswith("/") and (head := self._head(url, bucket, key)) is not None:
            found.append((f"s3://{bucket}/{key}", _utc(head["LastModified"]), int(head["ContentLength"])))
        else:
            prefix = key if not key or key.endswith("/") else key + "/"
            for obj in self._objects(url, bucket, prefix, delimiter="/"):
                if obj["Key"].lower().endswith(SUFFIXES):
                    found.append((f"s3://{bucket}/{obj['Key']}", _utc(obj["LastModified"]), int(obj["Size"])))
            if not found:
                what = (
                    f"object not found, nor data files under {prefix!r}" if prefix != key else "no data files"
                )
                raise S3Error(f"path {url!r}: {what} (prefixes pick up {', '.join(SUFFIXES)})")
        return sorted(found)

    # -- reading -------------------------------------------------------------------------------

    def open(self, url: str) -> pa.NativeFile:
        """A native input stream of one object; `.gz` (and other known suffixes) decompressed."""
        bucket, key = split_url(url, self.settings.bucket)
        try:
            return self.filesystem.open_input_stream(
                f"{bucket}/{key}", compression="detect", buffer_size=_READ_BUFFER
            )
        except (OSError, pa.ArrowException) as exc:
            raise S3Error(f"path {url!r}: cannot read from {self.settings.where}: {exc}") from exc

    def open_range(self, url: str, offset: int, length: int) -> pa.NativeFile:
        """A native stream of `length` raw bytes of one object from `offset` (ranged GETs)."""
        bucket, key = split_url(url, self.settings.bucket)
        try:
            whole = self.filesystem.open_input_file(f"{bucket}/{key}")
            return pa.BufferedInputStream(whole.get_stream(offset, length), _READ_BUFFER)
        except (OSError, pa.ArrowException) as exc:
            raise S3Error(f"path {url!r}: cannot read from {self.settings.where}: {exc}") from exc
