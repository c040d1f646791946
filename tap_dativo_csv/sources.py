"""Resolving configured paths and globs to concrete files with their modified times."""

from __future__ import annotations

import datetime
import glob
import os
from dataclasses import dataclass

UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)


class SourceError(ValueError):
    """A configured path that cannot be read (missing, unmatched glob, unsupported scheme)."""


@dataclass(frozen=True, order=True)
class SourceFile:
    """A file to read. `path` is also the state partition key, so it is kept as configured."""

    path: str
    modified: datetime.datetime

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


def resolve_path(pattern: str) -> list[SourceFile]:
    """Expand one configured `path` (file or glob) into sorted files; fail loudly when empty."""
    if pattern.startswith("s3://") or "://" in pattern:
        raise SourceError(
            f"path {pattern!r}: reading from object storage ({pattern.split('://', 1)[0]}://) is not "
            "supported yet by tap-dativo-csv; copy the files locally or use a local path"
        )
    expanded = os.path.expanduser(pattern)
    if glob.has_magic(expanded):
        matches = sorted(p for p in glob.glob(expanded, recursive=True) if os.path.isfile(p))
        if not matches:
            raise SourceError(f"path {pattern!r}: glob matched no files")
        return [SourceFile(p, _modified_time(p)) for p in matches]
    if os.path.isdir(expanded):
        raise SourceError(f"path {pattern!r} is a directory; use a glob such as '{pattern}/*.csv'")
    if not os.path.isfile(expanded):
        raise SourceError(f"path {pattern!r}: file not found")
    return [SourceFile(expanded, _modified_time(expanded))]


def resolve_paths(patterns: list[str]) -> list[SourceFile]:
    """Resolve several patterns for one stream: deduplicated and sorted by path for a stable order."""
    found: dict[str, SourceFile] = {}
    for pattern in patterns:
        for source in resolve_path(pattern):
            found.setdefault(source.path, source)
    return sorted(found.values())
