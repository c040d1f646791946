"""File cleanup: delete the files no snapshot references any more, and orphans past a safety window.

pyiceberg 0.12 has no orphan-file removal and its snapshot expiry deletes nothing, so without this
a table's storage only grows. Two kinds of files go:

- files only expired snapshots referenced (manifest lists, manifests, data and delete files): known
  exactly, deleted right after the expiry commits (`maintenance.apply_expiry`);
- orphans: files under the table's `data/` and `metadata/` directories that nothing references —
  neither a snapshot nor the current metadata, its metadata log or its statistics. Killed runs leave
  written-but-uncommitted Parquet files; a writer in flight has files it will commit in a moment.
  So an orphan is deleted only when its modification time is older than the safety window
  (`orphan_file_age_hours`, default 72). Old metadata files are the exception: one whose version
  number is below every version the table's metadata log still lists was superseded by later
  commits (a writer only ever adds newer versions), so it goes at once — pyiceberg keeps writing a
  new metadata file per commit and, by default, deletes none.

Storage is listed with pyarrow's filesystem for the table's FileIO (local paths and `s3://` alike).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pyarrow import fs as pafs
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

HOUR = 3600.0


def _key(path: str) -> str:
    """A location without scheme differences (`file:///a` and `/a` are one file)."""
    scheme, _, bare = PyArrowFileIO.parse_location(path)
    return f"{scheme}:{bare}"


def referenced_files(table: Table, snapshots: Iterable[Snapshot]) -> set[str]:
    """Keys (`_key`) of every manifest list, manifest, data and delete file the snapshots use."""
    found: set[str] = set()
    seen_manifests: set[str] = set()
    for snap in snapshots:
        found.add(_key(snap.manifest_list))
        for manifest in snap.manifests(table.io):
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            found.add(_key(manifest.manifest_path))
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                found.add(_key(entry.data_file.file_path))
    return found


def _metadata_files(table: Table) -> set[str]:
    meta = table.metadata
    found = {_key(table.metadata_location)}
    found |= {_key(entry.metadata_file) for entry in meta.metadata_log}
    found |= {_key(stat.statistics_path) for stat in meta.statistics}
    found |= {_key(stat.statistics_path) for stat in meta.partition_statistics}
    return found


def delete_files(table: Table, keys: Iterable[str]) -> int:
    """Delete files named by `_key`s; a file already gone counts as deleted. Returns the count."""
    count = 0
    for key in keys:
        scheme, bare = key.split(":", 1)
        location = bare if scheme == "file" else f"{scheme}://{bare}"
        with contextlib.suppress(FileNotFoundError):
            table.io.delete(location)
        count += 1
    return count


@dataclass
class Orphan:
    """An unreferenced file under the table's location."""

    key: str
    size: int
    age_hours: float
    superseded: bool = False  # a metadata file older than every one the table still logs


def _metadata_version(key: str) -> int | None:
    """The version number of a `NNNNN-<uuid>.metadata.json` file, else None."""
    name = key.rsplit("/", 1)[-1]
    head = name.split("-", 1)[0]
    return int(head) if name.endswith(".metadata.json") and head.isdigit() else None


def _filesystem(table: Table, scheme: str, netloc: str) -> pafs.FileSystem:
    io = table.io
    if isinstance(io, PyArrowFileIO):
        return io.fs_by_scheme(scheme, netloc)
    return PyArrowFileIO(io.properties).fs_by_scheme(scheme, netloc)


def list_orphans(table: Table, now: float | None = None) -> list[Orphan]:
    """Files under the table's `data/` and `metadata/` that nothing references (any age)."""
    now = now if now is not None else time.time()
    table.refresh()
    scheme, netloc, root = PyArrowFileIO.parse_location(table.location().rstrip("/"))
    filesystem = _filesystem(table, scheme, netloc)
    kept_metadata = _metadata_files(table)
    used = referenced_files(table, table.metadata.snapshots) | kept_metadata
    versions = [v for v in map(_metadata_version, kept_metadata) if v is not None]
    oldest = min(versions) if versions else None
    orphans: list[Orphan] = []
    for sub in ("data", "metadata"):
        selector = pafs.FileSelector(f"{root}/{sub}", recursive=True, allow_not_found=True)
        for info in filesystem.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            key = f"{scheme}:{info.path}"
            if key in used:
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else now
            version = _metadata_version(key)
            superseded = version is not None and oldest is not None and version < oldest
            orphans.append(Orphan(key, info.size or 0, (now - mtime) / HOUR, superseded))
    return orphans


def remove_orphans(table: Table, min_age_hours: float, dry_run: bool = False) -> list[Orphan]:
    """Delete the orphans older than `min_age_hours` (the safety window), and superseded metadata
    files of any age (older than every version the table logs: no writer can still be making
    them); returns them."""
    due = [o for o in list_orphans(table) if o.superseded or o.age_hours >= min_age_hours]
    if not dry_run:
        delete_files(table, [o.key for o in due])
    return due
