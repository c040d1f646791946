"""BATCH messages: read the files a tap's `batch_config` wrote (SDK storage URLs, local or s3://).

Parquet files become one Arrow table each, validated and committed without building Python records
(the SDK turns every row into a dict first); JSONL files are records, read exactly as the SDK does.
"""

from __future__ import annotations

from gzip import open as gzip_open
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from singer_sdk.helpers._batch import BatchConfig, BatchFileFormat, StorageTarget
from singer_sdk.singerlib.json import deserialize_json

from target_dativo_iceberg.errors import DativoError


class BatchFileError(DativoError):
    """A BATCH message names a file that cannot be read, or an encoding we do not take."""


def read_batch_file(
    path: str, encoding: Any, config: BatchConfig | None, stream: str
) -> tuple[pa.Table, bytes] | list[dict[str, Any]]:
    """One batch file: an Arrow table and the file's bytes (Parquet: the bytes are what replay
    digests, cheaper than re-serialising the rows), or the records (JSONL)."""
    head, tail = StorageTarget.split_url(path)
    storage = config.storage if config else None
    storage = storage or StorageTarget.from_url(head)
    try:
        with storage.open(tail, mode="rb") as file:
            if encoding.format == BatchFileFormat.PARQUET:
                raw = file.read()
                return pq.read_table(pa.BufferReader(raw)), raw
            if encoding.format == BatchFileFormat.JSONL:
                if encoding.compression == "gzip":
                    with gzip_open(file) as unzipped:
                        return [deserialize_json(line) for line in unzipped]
                return [deserialize_json(line) for line in file]
    except (OSError, ValueError, RecursionError, pa.ArrowException) as exc:
        raise BatchFileError(f"stream {stream!r}: cannot read BATCH file {path}: {exc}") from exc
    raise BatchFileError(
        f"stream {stream!r}: BATCH encoding {encoding.format!r} is not supported (parquet, jsonl)"
    )
