"""BATCH messages: read the files a tap's `batch_config` wrote, local or s3://, only where allowed.

Parquet files become one Arrow table each, validated and committed without building Python records
(the SDK turns every row into a dict first); JSONL files are records, read exactly as the SDK does.

A manifest entry comes from the tap's output, so it is trusted no more than a record: a local entry
is read only when it is a regular file below `batch_allowed_roots` (symlinks and `..` resolved
first), an `s3://` entry only through `connection.s3`, and never more than `batch_max_file_mb` of
either. Anything else fails the run before any of the file is buffered.
"""

from __future__ import annotations

import os
import stat
from gzip import GzipFile
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io import load_file_io
from singer_sdk.singerlib.json import deserialize_json

from target_dativo_iceberg.errors import BatchFileError
from target_dativo_iceberg.iceberg.paths import path_within
from target_dativo_iceberg.sdk_compat import BatchConfig, BatchFileFormat
from target_dativo_iceberg.settings import Settings

#: URI schemes read through the configured S3 connection (pyiceberg's names for S3).
S3_SCHEMES = ("s3", "s3a", "s3n")
#: File types by `stat` test, for the message refusing one.
_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
)


def read_batch_file(
    entry: str, encoding: Any, config: BatchConfig | None, stream: str, settings: Settings
) -> tuple[pa.Table, bytes] | list[dict[str, Any]]:
    """One batch file: an Arrow table and the file's bytes (Parquet: the bytes are what replay
    digests, cheaper than re-serialising the rows), or the records (JSONL).

    With the target's own `batch_config.storage`, the file is the entry's name under that root
    (as the SDK reads it); otherwise the entry itself."""
    if encoding.format not in (BatchFileFormat.PARQUET, BatchFileFormat.JSONL):
        raise BatchFileError(
            f"stream {stream!r}: BATCH encoding {encoding.format!r} is not supported (parquet, jsonl)"
        )
    guard = _Guard(stream, entry, settings)
    url = entry
    if isinstance(entry, str) and config is not None and config.storage is not None:
        url = f"{config.storage.root.rstrip('/')}/{entry.rstrip('/').rsplit('/', 1)[-1]}"
    raw = guard.read(url)
    try:
        if encoding.format == BatchFileFormat.PARQUET:
            return pq.read_table(pa.BufferReader(raw)), raw
        if encoding.compression == "gzip":
            with GzipFile(fileobj=BytesIO(raw)) as unzipped:
                raw = guard.bounded(unzipped.read(guard.limit + 1), "uncompressed ")
        return [deserialize_json(line) for line in BytesIO(raw)]
    except (OSError, EOFError, ValueError, RecursionError, pa.ArrowException) as exc:
        raise BatchFileError(f"stream {stream!r}: cannot read BATCH file {entry}: {exc}") from exc


class _Guard:
    """Reads one manifest entry's bytes, refusing whatever lies outside what the settings allow."""

    def __init__(self, stream: str, entry: Any, settings: Settings) -> None:
        self.stream, self.entry, self.settings = stream, entry, settings
        self.limit = settings.batch_max_file_bytes

    def read(self, url: Any) -> bytes:
        """The bytes of a local path, `file://` URL or `s3://` URL."""
        if not isinstance(url, str) or not url:
            raise self.refused("is not a path or URL")
        parts = urlsplit(url)
        if parts.scheme in S3_SCHEMES:
            return self._read_s3(url)
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise self.refused(f"names host {parts.netloc!r}")
            return self._read_local(url2pathname(parts.path))
        if parts.scheme and len(parts.scheme) > 1:  # not a bare path (nor a Windows drive letter)
            raise self.refused(f"uses scheme {parts.scheme!r}")
        return self._read_local(url)

    def refused(self, why: str) -> BatchFileError:
        """The error for an entry that may not be read: names stream, entry and what is allowed."""
        roots = ", ".join(self.settings.batch_allowed_roots) or "none"
        return BatchFileError(
            f"stream {self.stream!r}: BATCH manifest entry {self.entry!r} {why}; BATCH files are read "
            f"only as regular files under batch_allowed_roots ({roots}) or as s3:// objects"
        )

    def bounded(self, data: bytes, what: str = "") -> bytes:
        """`data` (read with one byte to spare) if it is within `batch_max_file_mb`."""
        if len(data) > self.limit:
            raise self._too_big(f"more than {self.limit} {what}bytes")
        return data

    def _too_big(self, size: str) -> BatchFileError:
        mb = f"{self.settings.batch_max_file_mb:g}"
        return BatchFileError(
            f"stream {self.stream!r}: BATCH file {self.entry!r} is {size}, over batch_max_file_mb "
            f"({mb} MB = {self.limit} bytes)"
        )

    def _cannot(self, exc: Exception) -> BatchFileError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return BatchFileError(f"stream {self.stream!r}: cannot read BATCH file {self.entry}: {reason}")

    def _read_local(self, path: str) -> bytes:
        """A regular file whose real path lies below an allowed root, opened without following a
        last symlink and checked again once open (nothing swapped in between)."""
        real = os.path.realpath(path)
        if not path_within(real, self.settings.batch_allowed_roots):
            raise self.refused(f"resolves to {real}, outside the allowed roots")
        try:
            info = os.stat(real)
        except OSError as exc:
            raise self._cannot(exc) from exc
        for test, kind in _KINDS:
            if test(info.st_mode):
                raise self.refused(f"is a {kind} ({real}), not a regular file")
        if info.st_size > self.limit:
            raise self._too_big(f"{info.st_size} bytes")
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(real, flags)
        except OSError as exc:
            raise self._cannot(exc) from exc
        with os.fdopen(fd, "rb") as file:
            opened = os.fstat(fd)
            same = (opened.st_dev, opened.st_ino) == (info.st_dev, info.st_ino)
            if not same or not stat.S_ISREG(opened.st_mode) or not self._opened_within(fd):
                raise self.refused(f"changed while it was opened ({real})")
            return self.bounded(file.read(self.limit + 1))

    def _opened_within(self, fd: int) -> bool:
        """Where the descriptor really points (Linux /proc) is below an allowed root: a directory
        swapped for a symlink after the real path was computed is caught here."""
        link = f"/proc/self/fd/{fd}"
        if not os.path.islink(link):
            return True
        return path_within(os.readlink(link), self.settings.batch_allowed_roots)

    def _read_s3(self, url: str) -> bytes:
        """An object read with the configured S3 connection; its size checked before reading."""
        try:
            source = load_file_io(self.settings.s3_file_io_properties(), url).new_input(url)
            size = len(source)
            if size > self.limit:
                raise self._too_big(f"{size} bytes")
            with source.open(seekable=False) as file:
                return self.bounded(file.read(self.limit + 1))
        except (OSError, ValueError) as exc:
            raise self._cannot(exc) from exc
