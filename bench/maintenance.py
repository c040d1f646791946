"""bench/maintenance.py: table upkeep — commit latency over many commits, compaction time, file sizes.

    .venv/bin/python bench/maintenance.py                      # 1,000 commits; 1M rows in 200 files
    .venv/bin/python bench/maintenance.py --commits 300 --rows 200000 --files 100   # quicker

1. Commit latency: one target run with default settings (unpublished tenant branch, expiry as
   configured by default) committing one record per commit (`batch_size_rows: 1`); the latency is
   each `commit_success` event's `duration_ms`. Verdict: the median of the last 50 commits within
   2x the median of the first 50.
2. Compaction: a table of `--rows` rows in `--files` files on a tenant branch (written by
   `RollingWriter`, one fast append), compacted by `iceberg/compaction.py`; wall time, and rows read
   back afterwards.
3. File-size distribution after that compaction (target `parquet_target_size_mb`, default 150, or
   `--target-mb`).

Results go to stdout as Markdown (docs/maintenance.md keeps the latest).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog import load_catalog

from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.compaction import compact
from target_dativo_iceberg.iceberg.writer import RollingWriter, fast_append

BIN = Path(sys.executable).parent
MB = 1024 * 1024


def commit_latency(root: Path, commits: int, extra: dict[str, object]) -> dict[str, float]:
    """Latencies (ms) of `commits` one-record commits in one run with default settings (+ `extra`)."""
    config = {
        "tenant_id": "acme",
        "catalog_uri": f"sqlite:///{root}/catalog.db",
        "warehouse": str(root / "wh"),
    }
    config.update({"batch_size_rows": 1, **extra})
    (root / "target.json").write_text(json.dumps(config))
    lines = [
        json.dumps(
            {"type": "SCHEMA", "stream": "ticks", "schema": {"properties": {"id": {"type": "integer"}}}}
        )
    ]
    for i in range(commits):
        lines.append(json.dumps({"type": "RECORD", "stream": "ticks", "record": {"id": i}}))
        lines.append(json.dumps({"type": "STATE", "value": {"pos": i}}))
    started = time.monotonic()
    run = subprocess.run(
        [str(BIN / "target-dativo-iceberg"), "--config", str(root / "target.json")],
        input="\n".join(lines) + "\n", capture_output=True, text=True, cwd=root, check=True,
    )  # fmt: skip
    wall = time.monotonic() - started
    events = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    latencies = [e["duration_ms"] for e in events if e.get("event") == "commit_success"]
    expired = sum(e.get("count", 0) for e in events if e.get("event") == "snapshots_expired")
    first, last = statistics.median(latencies[:50]), statistics.median(latencies[-50:])
    middle = len(latencies) // 2
    mid = statistics.median(latencies[middle - 25 : middle + 25])
    return {"commits": len(latencies), "first50_ms": first, "mid50_ms": mid, "last50_ms": last,
            "ratio": last / first, "expired": expired, "wall_s": wall}  # fmt: skip


def compaction(root: Path, rows: int, files: int, target_mb: int) -> dict[str, object]:
    """Compact a table of `rows` rows in `files` files; time and the size distribution after."""
    catalog = load_catalog("b", type="sql", uri=f"sqlite:///{root}/c.db", warehouse=(root / "wh").as_uri())
    catalog.create_namespace("bench")
    schema = pa.schema(
        [("id", pa.int64()), ("region", pa.string()), ("payload", pa.string()), ("amount", pa.float64())]
    )
    table = catalog.create_table("bench.events", schema=schema)
    table.append(table.schema().as_arrow().empty_table())
    table.manage_snapshots().create_branch(table.metadata.current_snapshot_id, "acme").commit()
    per_file = rows // files
    written = []
    for f in range(files):
        ids = range(f * per_file, (f + 1) * per_file)
        data = pa.table(
            {
                "id": list(ids),
                "region": [("eu", "us", "apac")[i % 3] for i in ids],
                "payload": [f"{i * 2654435761 % 2**32:08x}-{i % 977}" for i in ids],
                "amount": [i * 0.01 for i in ids],
            },
            schema=table.schema().as_arrow(),
        )
        writer = RollingWriter(table.metadata, table.io, 1 << 40)
        writer.write(data)
        written.extend(writer.finish())
    with table.transaction() as tx:
        fast_append(tx, written, {}, "acme")
    before = sum(f.file_size_in_bytes for f in written)
    started = time.monotonic()
    result = compact(table, "acme", target_mb * MB, EventLog("acme", "bench", [], stream=io.StringIO()))
    seconds = time.monotonic() - started
    assert result is not None and result.rows == per_file * files
    head = table.snapshot_by_name("acme")
    after = table.inspect.files(snapshot_id=head.snapshot_id).to_pylist()
    sizes = sorted(f["file_size_in_bytes"] / MB for f in after)
    landed = table.scan(snapshot_id=head.snapshot_id).count()
    return {"rows": per_file * files, "files_before": files, "mb_before": before / MB, "seconds": seconds,
            "rows_per_s": per_file * files / seconds, "files_after": len(sizes), "sizes_mb": sizes,
            "rows_read_back": landed}  # fmt: skip


def main() -> None:
    """Run both parts and print Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--target-mb", type=int, default=150)
    parser.add_argument("--only", choices=["latency", "compaction"])
    parser.add_argument(
        "--max-snapshots", type=int, help="max_snapshots for the latency run (default: the default)"
    )
    args = parser.parse_args()
    os.environ.setdefault("PYICEBERG_HOME", tempfile.gettempdir())
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "compaction":
            Path(tmp, "latency").mkdir()
            extra = {} if args.max_snapshots is None else {"max_snapshots": args.max_snapshots}
            lat = commit_latency(Path(tmp) / "latency", args.commits, extra)
            verdict = "PASS" if lat["ratio"] <= 2 else "FAIL"
            setting = f"max_snapshots {args.max_snapshots}" if extra else "defaults"
            print(
                "| settings | commits | median first 50 | median middle 50 | median last 50 | last / first | snapshots expired | wall |"
            )
            print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            print(f"| {setting} | {lat['commits']} | {lat['first50_ms']:.1f} ms | {lat['mid50_ms']:.1f} ms | {lat['last50_ms']:.1f} ms "
                  f"| {lat['ratio']:.2f} ({verdict}: ≤ 2) | {lat['expired']} | {lat['wall_s']:.1f} s |\n")  # fmt: skip
        if args.only != "latency":
            Path(tmp, "compaction").mkdir()
            comp = compaction(Path(tmp) / "compaction", args.rows, args.files, args.target_mb)
            sizes = comp["sizes_mb"]
            print(
                "| rows | files before | MB before | compaction | rows/s | files after | sizes after (MB) |"
            )
            print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
            shown = ", ".join(f"{s:.1f}" for s in sizes)  # type: ignore[union-attr]
            print(f"| {comp['rows']} | {comp['files_before']} | {comp['mb_before']:.1f} | {comp['seconds']:.1f} s "
                  f"| {comp['rows_per_s']:,.0f} | {comp['files_after']} | {shown} |")  # fmt: skip
            assert comp["rows_read_back"] == comp["rows"]


if __name__ == "__main__":
    main()
