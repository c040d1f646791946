"""Resolving configured paths (file, directory, glob; local or `s3://`) to files, and opening them."""

from __future__ import annotations

import datetime
import glob
import os
from dataclasses import dataclass

import pyarrow as pa

from tap_dativo_csv.formats import SUFFIXES
from tap_dativo_csv.s3 import S3Settings, S3Store
from target_dativo_iceberg.errors import S3Error, SourceError

UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
_READ_BUFFER = 1024 * 1024


@dataclass(frozen=True, order=True)
class SourceFile:
    """A file to read. `path` is also the state partition key: local paths stay as configured
    (expanded), S3 objects are `s3://bucket/key`."""

    path: str
    modified: datetime.datetime
    #: Bytes at listing time (None when unknown): a grown file is read up to here, no further.
    size: int | None = None

    @property
    def last_modified(self) -> str:
        """The bookmark form of the modified time: ISO-8601 UTC with microseconds."""
        return format_timestamp(self.modified)


def format_timestamp(value: datetime.datetime) -> str:
    """Render a UTC timestamp the way bookmarks store it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str) -> datetime.datetime | None:
    """Parse a bookmark timestamp; None for anything unreadable, which forces a re-read."""
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _modified_time(path: str) -> datetime.datetime:
    """File mtime truncated to microseconds so it round-trips through the bookmark exactly."""
    micros = os.stat(path).st_mtime_ns // 1000
    return _EPOCH + datetime.timedelta(microseconds=micros)


def resolve_local(pattern: str) -> list[SourceFile]:
    """Expand a local file, directory (its CSV files, not recursive) or glob; fail loudly when empty."""
    expanded = os.path.expanduser(pattern)
    if glob.has_magic(expanded):
        matches = sorted(p for p in glob.glob(expanded, recursive=True) if os.path.isfile(p))
        if not matches:
            raise SourceError(f"path {pattern!r}: glob matched no files")
    elif os.path.isdir(expanded):
        matches = sorted(
            os.path.join(expanded, name)
            for name in os.listdir(expanded)
            if name.lower().endswith(SUFFIXES) and os.path.isfile(os.path.join(expanded, name))
        )
        if not matches:
            raise SourceError(
                f"path {pattern!r}: directory holds no data files ({', '.join(SUFFIXES)}); "
                "use a glob for other names or '**' to recurse"
            )
    elif os.path.isfile(expanded):
        matches = [expanded]
    else:
        raise SourceError(f"path {pattern!r}: file not found")
    return [SourceFile(p, _modified_time(p), os.stat(p).st_size) for p in matches]


class Sources:
    """Resolves and opens the files of every stream; S3 clients are shared and created lazily."""

    def __init__(self, s3: S3Settings | None = None) -> None:
        """`s3` is `connection.s3`; without it `s3://` paths still work with the AWS default chain."""
        self.s3 = S3Store(s3 or S3Settings())

    def resolve(self, pattern: str) -> list[SourceFile]:
        """Expand one configured `path` into files (sorted)."""
        if pattern.startswith("s3://"):
            try:
                return [SourceFile(url, modified, size) for url, modified, size in self.s3.expand(pattern)]
            except S3Error as exc:
                raise SourceError(str(exc)) from exc
        if "://" in pattern:
            raise SourceError(
                f"path {pattern!r}: scheme {pattern.split('://', 1)[0]}:// is not supported "
                "(local paths and s3:// only)"
            )
        return resolve_local(pattern)

    def open(self, path: str) -> pa.NativeFile:
        """A native (pyarrow) input stream; `.gz` files are decompressed on the fly.

        Native streams matter: pyarrow's reader threads never call back into Python, so a
        readahead still pending at interpreter exit cannot abort the process.
        """
        if path.startswith("s3://"):
            try:
                return self.s3.open(path)
            except S3Error as exc:
                raise SourceError(str(exc)) from exc
        try:
            return pa.input_stream(path, compression="detect", buffer_size=_READ_BUFFER)
        except OSError as exc:
            raise SourceError(f"path {path!r}: cannot open: {exc}") from exc

    def open_range(self, path: str, offset: int, length: int) -> pa.NativeFile:
        """A native input stream of `length` raw (never decompressed) bytes from `offset`: the part
        of a grown file not read before, or the prefix whose hash is checked."""
        if path.startswith("s3://"):
            try:
                return self.s3.open_range(path, offset, length)
            except S3Error as exc:
                raise SourceError(str(exc)) from exc
        try:
            return pa.BufferedInputStream(pa.OSFile(path).get_stream(offset, length), _READ_BUFFER)
        except OSError as exc:
            raise SourceError(f"path {path!r}: cannot open: {exc}") from exc
