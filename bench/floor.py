"""Floors for bench/run: the least work that turns the benchmark input into Parquet or an Iceberg table.

Parsers (the Singer stream comes on stdin, like a target's; the CSV is read from --input):
  msgspec       typed decode (tagged union on `type`, `decode_lines` per 64 MB block) → Arrow
  orjson        `orjson.loads` per line → `RecordBatch.from_pylist`
  pyarrow-json  `pyarrow.json.read_json` of the Singer lines with an explicit schema; RECORD rows kept
                by a vectorized filter on `type` (no per-line Python work at all)
  pyarrow-csv   `pyarrow.csv.read_csv` of the CSV with the contract's column types
Sinks: `parquet` (one `pq.write_table`) or `iceberg` (one pyiceberg append to a fresh SQLite SQL
catalog). Timestamps are parsed by Arrow, balance goes float → decimal(12,2) by an Arrow cast; no
contract rules are checked: this is a floor, not a target. Prints one JSON line of phase timings.

    python bench/floor.py --parser msgspec --sink parquet --out /tmp/x.parquet < people.singer.jsonl
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Iterator
from operator import attrgetter
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from generate import COLUMNS, arrow_schema

BLOCK = 64 << 20  # bytes of Singer lines parsed at a time
TABLE = ("bench", "bench_people")


class Person(msgspec.Struct):
    """The typed record (field order irrelevant: columns are picked by name)."""

    id: int
    email: str
    country: str
    status: str
    created_at: str
    updated_at: str
    score: float
    balance: float
    is_vip: bool
    age: int | None = None


class Record(msgspec.Struct, tag="RECORD", tag_field="type"):
    """A Singer RECORD message; `time_extracted` is skipped by the decoder."""

    stream: str
    record: Person


class SchemaMessage(msgspec.Struct, tag="SCHEMA", tag_field="type"):
    """A Singer SCHEMA message."""

    stream: str
    schema: dict
    key_properties: list[str] = []


class State(msgspec.Struct, tag="STATE", tag_field="type"):
    """A Singer STATE message."""

    value: dict


def _blocks(stream: io.BufferedReader) -> Iterator[bytes]:
    """The input in ~BLOCK-sized pieces that end at a line break."""
    rest = b""
    while True:
        data = stream.read(BLOCK)
        if not data:
            if rest:
                yield rest
            return
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        rest = data[cut:]
        yield data[:cut]


def _loose_schema(schema: pa.Schema) -> pa.Schema:
    """Parse-time types: timestamps as strings and balance as double, cast afterwards by Arrow."""
    fields = []
    for f in schema:
        if pa.types.is_timestamp(f.type):
            fields.append(pa.field(f.name, pa.string()))
        elif pa.types.is_decimal(f.type):
            fields.append(pa.field(f.name, pa.float64()))
        else:
            fields.append(pa.field(f.name, f.type))
    return pa.schema(fields)


def _finish(columns: list[pa.Array], schema: pa.Schema) -> pa.RecordBatch:
    """Cast parse-time columns to the table's types (Arrow does the timestamp parsing)."""
    arrays = [
        col if col.type == f.type else pc.cast(col, f.type) for col, f in zip(columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def parse_msgspec(stream: io.BufferedReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """msgspec typed decode of whole blocks; Python touches each record only to pick its fields."""
    decoder = msgspec.json.Decoder(Record | SchemaMessage | State)
    loose = _loose_schema(schema)
    getters = [attrgetter(name) for name in COLUMNS]
    for block in _blocks(stream):
        records = [m.record for m in decoder.decode_lines(block) if type(m) is Record]
        if records:
            columns = [
                pa.array(list(map(get, records)), f.type) for get, f in zip(getters, loose, strict=True)
            ]
            yield _finish(columns, schema)


def parse_orjson(stream: io.BufferedReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """orjson.loads per line, records as dicts → `RecordBatch.from_pylist`."""
    import orjson

    loads = orjson.loads
    loose = _loose_schema(schema)
    for block in _blocks(stream):
        records = []
        for line in block.splitlines():
            message = loads(line)
            if message.get("type") == "RECORD":
                records.append(message["record"])
        if records:
            batch = pa.RecordBatch.from_pylist(records, schema=loose)
            yield _finish(batch.columns, schema)


def parse_pyarrow_json(stream: io.BufferedReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """pyarrow.json over the raw Singer lines (multi-threaded); non-RECORD rows dropped by a filter."""
    import pyarrow.json as pj

    nullable = [f.with_nullable(True) for f in schema]  # SCHEMA/STATE lines have no record
    envelope = pa.schema([("type", pa.string()), ("record", pa.struct(nullable))])
    options = pj.ParseOptions(explicit_schema=envelope, unexpected_field_behavior="ignore")
    read = pj.ReadOptions(block_size=16 << 20)
    for block in _blocks(stream):
        table = pj.read_json(io.BytesIO(block), read_options=read, parse_options=options)
        table = table.filter(pc.equal(table.column("type"), "RECORD"))
        records = table.column("record").combine_chunks()
        yield pa.RecordBatch.from_arrays(records.flatten(), schema=pa.schema(nullable)).cast(schema)


def parse_pyarrow_csv(path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """pyarrow.csv.read_csv with the contract's column types (multi-threaded), one table."""
    import pyarrow.csv as pcsv

    types = {f.name: f.type for f in schema}
    table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types))
    yield from table.cast(schema).to_batches()


def write_parquet(table: pa.Table, out: Path) -> int:
    """One pq.write_table; returns the rows in the file's footer."""
    import pyarrow.parquet as pq

    pq.write_table(table, out)
    return pq.read_metadata(out).num_rows


def append_iceberg(table: pa.Table, catalog_dir: Path) -> int:
    """One pyiceberg append to a fresh table in a SQLite SQL catalog; returns rows in the snapshot."""
    from pyiceberg.catalog import load_catalog

    catalog_dir.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(
        "bench",
        type="sql",
        uri=f"sqlite:///{catalog_dir}/catalog.db",
        warehouse=(catalog_dir / "warehouse").as_uri(),
    )
    catalog.create_namespace_if_not_exists(TABLE[0])
    iceberg = catalog.create_table(TABLE, schema=table.schema)
    iceberg.append(table)
    snapshot = iceberg.current_snapshot()
    summary = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    return int(summary.get("total-records", 0))


def main(argv: list[str] | None = None) -> int:
    """CLI: parse, build one Arrow table, write it once; print phase timings as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parser", choices=("msgspec", "orjson", "pyarrow-json", "pyarrow-csv"), required=True
    )
    parser.add_argument("--sink", choices=("parquet", "iceberg"), required=True)
    parser.add_argument("--input", type=Path, help="CSV file (pyarrow-csv); Singer parsers read stdin")
    parser.add_argument("--out", type=Path, required=True, help="Parquet file, or catalog directory")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    schema = arrow_schema()
    if args.parser == "pyarrow-csv":
        if args.input is None:
            parser.error("--input is required with --parser pyarrow-csv")
        batches = parse_pyarrow_csv(args.input, schema)
    else:
        parse = {"msgspec": parse_msgspec, "orjson": parse_orjson, "pyarrow-json": parse_pyarrow_json}
        batches = parse[args.parser](sys.stdin.buffer, schema)
    table = pa.Table.from_batches(list(batches), schema=schema)
    parsed = time.perf_counter()
    sink = write_parquet if args.sink == "parquet" else append_iceberg
    rows = sink(table, args.out)
    done = time.perf_counter()
    print(
        json.dumps({"rows": rows, "parse_s": round(parsed - started, 3), "write_s": round(done - parsed, 3)})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
