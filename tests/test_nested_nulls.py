"""A null list, struct or map stays null — distinct from an empty one — however it reaches Parquet:
the target's writer (`to_file_schema`, `RollingWriter`), pyiceberg's own appends and the files it
rewrites for a delete or an upsert; pyiceberg reads it back as null and DuckDB reads the same files.

pyiceberg 0.12 alone turns a null list of structs (and a null map of structs) into an empty one, on
write and on read (apache/iceberg-python#3833); `iceberg/pyiceberg_compat.py` works around it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyiceberg.io.pyarrow
import pytest
from helpers import open_catalog, record, run_target, schema_msg
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import BucketTransform
from pyiceberg.types import ListType, LongType, MapType, NestedField, StringType, StructType

from target_dativo_iceberg.iceberg import pyiceberg_compat
from target_dativo_iceberg.iceberg.pyiceberg_compat import to_file_schema
from target_dativo_iceberg.iceberg.writer import RollingWriter, fast_append
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows


def _optional(field_id: int, name: str, field_type: Any) -> NestedField:
    return NestedField(field_id, name, field_type, required=False)


#: Numbered as `create_table` numbers it (top-level fields first), so it is the table's schema too.
SCHEMA = Schema(
    _optional(1, "id", LongType()),
    _optional(
        2,
        "lines",
        ListType(
            7,
            StructType(_optional(8, "sku", StringType()), _optional(9, "qty", LongType())),
            element_required=False,
        ),
    ),
    _optional(3, "tags", ListType(10, LongType(), element_required=False)),
    _optional(
        4,
        "meta",
        StructType(
            _optional(
                11,
                "notes",
                ListType(12, StructType(_optional(13, "text", StringType())), element_required=False),
            )
        ),
    ),
    _optional(
        5,
        "attrs",
        MapType(14, StringType(), 15, StructType(_optional(16, "v", LongType())), value_required=False),
    ),
    _optional(
        6,
        "nested",
        ListType(
            17,
            ListType(18, StructType(_optional(19, "y", LongType())), element_required=False),
            element_required=False,
        ),
    ),
)
#: Values, empty ones and nulls at every level (maps as pyarrow gives them back: lists of pairs).
ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "lines": [{"sku": "A-1", "qty": 2}, None],
        "tags": [1, None],
        "meta": {"notes": [{"text": "x"}]},
        "attrs": [("a", {"v": 1}), ("b", None)],
        "nested": [[{"y": 1}], None, []],
    },
    {"id": 2, "lines": [], "tags": [], "meta": {"notes": []}, "attrs": [], "nested": []},
    {"id": 3, "lines": None, "tags": None, "meta": {"notes": None}, "attrs": None, "nested": None},
    {"id": 4, "lines": None, "tags": None, "meta": None, "attrs": None, "nested": [None]},
    {
        "id": 5,
        "lines": [{"sku": None, "qty": None}],
        "tags": [5],
        "meta": {"notes": [None]},
        "attrs": [("c", {"v": None})],
        "nested": [[None]],
    },
]
#: Per row, what DuckDB says of each nested value: its length (NULL when the value is null).
SHAPE_SQL = (
    "SELECT id, len(lines), len(tags), meta IS NULL, len(meta.notes), cardinality(attrs), len(nested), "
    "len(nested[1]) FROM t ORDER BY id"
)


def _shape(row: dict[str, Any]) -> tuple:
    """`SHAPE_SQL`'s answer for a row of `ROWS`."""

    def size(value: Any) -> int | None:
        return None if value is None else len(value)

    meta, nested = row["meta"], row["nested"]
    first = nested[0] if nested else None
    return (
        row["id"],
        size(row["lines"]),
        size(row["tags"]),
        meta is None,
        size(meta["notes"]) if meta else None,
        size(row["attrs"]),
        size(nested),
        size(first),
    )


def _small(arrow_type: pa.DataType) -> pa.DataType:
    """`arrow_type` with 32-bit offsets (list, string) at every level, as other writers produce."""
    if pa.types.is_large_list(arrow_type) or pa.types.is_list(arrow_type):
        return pa.list_(arrow_type.value_field.with_type(_small(arrow_type.value_type)))
    if pa.types.is_struct(arrow_type):
        return pa.struct([field.with_type(_small(field.type)) for field in arrow_type])
    if pa.types.is_map(arrow_type):
        return pa.map_(
            arrow_type.key_field.with_type(_small(arrow_type.key_type)),
            arrow_type.item_field.with_type(_small(arrow_type.item_type)),
        )
    return pa.string() if pa.types.is_large_string(arrow_type) else arrow_type


def _data(offsets: str = "large") -> pa.Table:
    """`ROWS` as Arrow, with pyiceberg's 64-bit offsets or (`"small"`) 32-bit ones."""
    schema = SCHEMA.as_arrow()
    if offsets == "small":
        schema = pa.schema([field.with_type(_small(field.type)) for field in schema])
    return pa.Table.from_pylist(ROWS, schema=schema)


def _landed(table: Table, branch: str) -> list[dict[str, Any]]:
    """The rows on `branch` read by pyiceberg, after checking DuckDB sees the same nulls and lengths."""
    table.refresh()
    rows = sorted(pyiceberg_rows(table, branch), key=lambda row: row["id"])
    assert duckdb_rows(table, branch, SHAPE_SQL) == [_shape(row) for row in rows]
    return rows


# --------------------------------------------------------------------------- to_file_schema


@pytest.mark.parametrize("offsets", ["large", "small"])
@pytest.mark.parametrize(("start", "length"), [(0, 5), (1, 4), (2, 2), (3, 2), (4, 1)])
def test_to_file_schema_keeps_null_lists_structs_and_maps_of_any_slice(
    offsets: str, start: int, length: int
) -> None:
    batch = _data(offsets).to_batches()[0].slice(start, length)
    out = to_file_schema(SCHEMA, SCHEMA, batch)
    out.validate(full=True)
    assert out.to_pylist() == ROWS[start : start + length]
    lines = out.schema.field("lines")
    assert lines.metadata[b"PARQUET:field_id"] == b"2"
    assert lines.type.value_field.metadata[b"PARQUET:field_id"] == b"7"


def test_pyiceberg_alone_still_turns_a_null_list_of_structs_into_an_empty_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why `pyiceberg_compat` replaces pyiceberg's projection. Once this fails, pyiceberg keeps
    null lists itself (apache/iceberg-python#3834 shipped): remove `_NullKeepingProjection`."""
    original = pyiceberg_compat._NullKeepingProjection.__mro__[1]
    monkeypatch.setattr(pyiceberg.io.pyarrow, "ArrowProjectionVisitor", original)
    out = to_file_schema(SCHEMA, SCHEMA, _data().to_batches()[0])
    assert out.column("lines").to_pylist()[2] == []


# --------------------------------------------------------------------------- files of a table


def _table(root: Path, spec: PartitionSpec | None = None) -> Table:
    catalog = open_catalog(root)
    catalog.create_namespace("acme")
    table = catalog.create_table("acme.orders", SCHEMA, partition_spec=spec or PartitionSpec())
    assert table.schema() == SCHEMA
    return table


def test_rolling_writer_keeps_nulls_across_chunks_files_and_partitions(tmp_path: Path) -> None:
    """A long batch streamed in chunks (slices of a batch), split by partition, a file per write."""
    spec = PartitionSpec(PartitionField(1, 1000, BucketTransform(2), "id_bucket"))
    table = _table(tmp_path, spec)
    writer = RollingWriter(table.metadata, table.io, target_bytes=1)
    data = _data()
    for start, length in [(0, 1), (1, 3), (4, 1)]:
        writer.write(data.slice(start, length))
    files = writer.finish()
    assert len(files) >= 4
    with table.transaction() as tx:
        fast_append(tx, files, {}, "main")
    assert _landed(table, "main") == ROWS


def test_pyiceberg_appends_and_delete_rewrites_keep_nulls(tmp_path: Path) -> None:
    """pyiceberg's own writer (the target's empty first snapshot, soft ACTIVATE_VERSION) and the file
    a delete rewrites without the deleted rows (upserts, deletion records)."""
    table = _table(tmp_path)
    table.append(_data())
    table.delete("id == 5")
    summary = table.current_snapshot().summary
    assert summary is not None and summary["added-data-files"] == "1"  # rewritten, not dropped
    assert _landed(table, "main") == ROWS[:4]


# --------------------------------------------------------------------------- the target


PROPS: dict[str, Any] = {
    "id": {"type": "integer"},
    "lines": {
        "type": ["array", "null"],
        "items": {
            "type": "object",
            "properties": {"sku": {"type": ["string", "null"]}, "qty": {"type": ["integer", "null"]}},
        },
    },
    "tags": {"type": ["array", "null"], "items": {"type": ["integer", "null"]}},
    "meta": {
        "type": ["object", "null"],
        "properties": {
            "notes": {
                "type": ["array", "null"],
                "items": {"type": "object", "properties": {"text": {"type": ["string", "null"]}}},
            }
        },
    },
}


def _orders(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [schema_msg("orders", PROPS, ["id"]), *(record("orders", **row) for row in rows)]


def _as_landed(row: dict[str, Any]) -> dict[str, Any]:
    """A record as it should read back: every column present, absent ones null."""
    return {"id": row["id"], "lines": None, "tags": None, "meta": None, **row}


SENT = [
    {"id": 1, "lines": [{"sku": "A-1", "qty": 2}], "tags": [1, 2], "meta": {"notes": [{"text": "x"}]}},
    {"id": 2, "lines": [], "tags": [], "meta": {"notes": []}},
    {"id": 3, "lines": None, "tags": None, "meta": {"notes": None}},
    {"id": 4},
    {"id": 5, "lines": [{"sku": None, "qty": None}], "tags": [None], "meta": None},
]


def _read_back(root: Path) -> list[dict[str, Any]]:
    """The landed rows by pyiceberg, after checking DuckDB reads the same values."""
    table = open_catalog(root).load_table("acme.orders")
    rows = sorted(pyiceberg_rows(table, "acme"), key=lambda row: row["id"])
    by_duckdb = duckdb_rows(table, "acme", "SELECT id, lines, tags, meta FROM t ORDER BY id")
    assert by_duckdb == [(r["id"], r["lines"], r["tags"], r["meta"]) for r in rows]
    return rows


def test_target_lands_null_missing_and_empty_arrays_of_objects_as_sent(tmp_path: Path) -> None:
    """Null and missing arrays land null, [] lands [] — also after an upsert rewrote their file."""
    run = run_target(tmp_path, _orders(SENT))
    assert run.returncode == 0, run.stderr[-3000:]
    assert _read_back(tmp_path) == [_as_landed(row) for row in SENT]

    changed = {"id": 1, "lines": None, "tags": [], "meta": {"notes": None}}
    run = run_target(tmp_path, _orders([changed]), load_method="upsert")
    assert run.returncode == 0, run.stderr[-3000:]
    assert _read_back(tmp_path) == [_as_landed(row) for row in [changed, *SENT[1:]]]
