"""Keeping reads and writes inside configured roots: safe path segments and containment checks.

Contract fields become directories of a table's location and BATCH manifests name files to read;
both come from documents the target does not control, so every value that reaches a path is
checked here before it is used (see docs/contracts.md and docs/ingestion-execution.md).
"""

from __future__ import annotations

import os
import posixpath
import unicodedata
from urllib.parse import urlsplit

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.settings import Settings

#: Characters a URI reader would take as a query, a fragment or an escape, not as part of a name.
URI_DELIMITERS = ("?", "#", "%")
#: Longest directory name most file systems (and S3 tooling) take, in UTF-8 bytes.
MAX_SEGMENT_BYTES = 255


def segment_problem(value: object) -> str | None:
    """Why `value` cannot be one directory name of a path (None: it can).

    The rule: a non-empty string (not only spaces), not `.` or `..`, without `/` or `\\`, control
    characters, or `?`, `#`, `%`, at most 255 UTF-8 bytes. Anything else could name a
    different directory than the one it seems to name, here or in a reader of the location URI.
    """
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value.strip():
        return "is empty"
    if value in (".", ".."):
        return "is the current or parent directory"
    for char in ("/", "\\", *URI_DELIMITERS):
        if char in value:
            return f"contains {char!r}"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "contains a control character"
    if len(value.encode("utf-8")) > MAX_SEGMENT_BYTES:
        return f"is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def path_within(path: str, roots: tuple[str, ...] | list[str]) -> bool:
    """Whether the real path `path` is one of `roots` (real paths) or below one."""
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def location_within(location: str, warehouse: str) -> bool:
    """Whether a table location (path or URI) lies below the warehouse (path or URI).

    Local locations are compared as real paths (symlinks and `..` resolved); URIs (`s3://`) need
    the same scheme and bucket and a normalized key below the warehouse's. Both are parsed the way
    pyiceberg parses them, so what is compared is where files would be written.
    """
    loc, root = urlsplit(location), urlsplit(warehouse)
    if _is_local(loc.scheme) and _is_local(root.scheme):
        loc_path = os.path.realpath(loc.path if loc.scheme else location)
        root_path = os.path.realpath(root.path if root.scheme else warehouse)
        return loc_path != root_path and path_within(loc_path, (root_path,))
    if (loc.scheme, loc.netloc) != (root.scheme, root.netloc):
        return False
    key = posixpath.normpath("/" + loc.path)
    prefix = posixpath.normpath("/" + root.path)
    return key != prefix and key.startswith(prefix.rstrip("/") + "/")


def table_location(settings: Settings, parts: tuple[str, ...], source: str) -> str | None:
    """`{warehouse}/{parts...}` for catalogs that accept explicit locations (SQL, Glue, Hive; REST and
    Nessie choose their own). A location that would not lie below the warehouse fails, naming
    `source` (where the parts came from): the second line of defence behind `segment_problem`."""
    if settings.catalog_type not in ("sql", "glue", "hive", "none"):
        return None
    none = settings.catalog_type == "none"  # no catalog: the warehouse as given
    warehouse = settings.warehouse if none else str(settings.catalog_load_properties().get("warehouse") or "")
    if not warehouse:
        return None
    location = "/".join([warehouse.rstrip("/"), *parts])
    if not location_within(location, warehouse):
        raise ConfigError(f"{source}: table location {location} would not be below the warehouse {warehouse}")
    return location


def _is_local(scheme: str) -> bool:
    return scheme in ("", "file")
