"""Scale-out benchmark: commit contention on one table, and a sharded backfill, on a PostgreSQL catalog.

1. Contention: W writer processes (default 1, 2, 4, 8) each make `--commits` small appends to ONE
   table through the target's own Committer (conflicts retried with jittered backoff, as in a run).
   Reports commits/second the table sustained, pyiceberg's own commit retries (re-applying the
   append on the new head), the target's transaction redos (`commit_retry` events) and commits that
   outlasted all retries, and checks every row landed exactly once.
2. Sharded backfill: `--files` CSV files of `--rows` rows, loaded by S parallel shards (default 1, 2,
   4; tap | target per shard, `shard_count`/`shard_index`, as `dativo_dagster` runs them). Reports
   rows/second, CPU seconds and CPU use (of all cores), commits and commit retries, and checks every
   row landed exactly once.

Each case writes to a fresh database. PostgreSQL comes from `--pg-url` / `DATIVO_TEST_PG_URL` (a
maintenance URL on which databases may be created), else a throwaway `pg_virtualenv` cluster.

    .venv/bin/python bench/scale_out.py [--writers 1,2,4,8] [--commits 10] [--shards 1,2,4]
                                        [--files 8] [--rows 10000] [--out .local/bench/scale_out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's PostgreSQL helper

import pyarrow as pa  # noqa: E402
from pyiceberg.schema import Schema  # noqa: E402
from pyiceberg.types import LongType, NestedField, StringType  # noqa: E402

from dativo_dagster.shards import PYICEBERG_RETRY, ShardSpec, run_shard  # noqa: E402
from target_dativo_iceberg.events import EventLog  # noqa: E402
from target_dativo_iceberg.iceberg.committer import Committer, TableSpec  # noqa: E402
from target_dativo_iceberg.iceberg.retry import RetryPolicy  # noqa: E402
from target_dativo_iceberg.settings import Settings  # noqa: E402

SCHEMA = Schema(NestedField(1, "id", LongType()), NestedField(2, "val", StringType()))
IDENT = ("bench", "items")
ROWS_PER_COMMIT = 100


class RetryCounter(logging.Handler):
    """Counts pyiceberg's own retries of a commit rejected by a concurrent one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(PYICEBERG_RETRY):
            self.count += 1


def settings_for(url: str, warehouse: Path) -> Settings:
    return Settings.from_config({"tenant_id": "bench", "catalog_uri": url, "warehouse": str(warehouse)})


def committer_for(url: str, warehouse: Path, out: io.StringIO) -> Committer:
    return Committer(
        settings_for(url, warehouse), EventLog("bench", "scale-out", [], stream=out), RetryPolicy()
    )


def writer(url: str, warehouse: Path, w: int, commits: int, start: Any, results: Any) -> None:
    """One writer process: `commits` appends of ROWS_PER_COMMIT rows each to the shared table."""
    out = io.StringIO()
    internal = RetryCounter()
    logging.getLogger("pyiceberg").addHandler(internal)
    committer = committer_for(url, warehouse, out)
    table = committer.ensure_table("items", IDENT, TableSpec(SCHEMA))
    failed = 0
    start.wait()
    began = time.monotonic()
    for c in range(commits):
        first = (w * commits + c) * ROWS_PER_COMMIT
        ids = list(range(first, first + ROWS_PER_COMMIT))

        def build(arrow_schema: pa.Schema, _plan: Any, ids: list[int] = ids) -> pa.Table:
            return pa.Table.from_pydict({"id": ids, "val": [f"w{w}"] * len(ids)}, schema=arrow_schema)

        try:
            committer.commit("items", table, SCHEMA, build, len(ids), {"dativo.stream": "items"})
        except Exception:  # a conflict that outlasted the retries: counted, the bench goes on
            failed += 1
    ended = time.monotonic()
    redone = sum(1 for line in out.getvalue().splitlines() if '"commit_retry"' in line)
    results.put(
        {"began": began, "ended": ended, "retries": internal.count, "redone": redone, "failed": failed}
    )


def rows_in(url: str, warehouse: Path, namespace: str, table: str, branch: str) -> tuple[int, int]:
    """(rows, distinct ids) on the branch, read with pyiceberg."""
    from pyiceberg.catalog import load_catalog

    settings = settings_for(url, warehouse)
    loaded = load_catalog(settings.catalog_name, **settings.catalog_load_properties()).load_table(
        f"{namespace}.{table}"
    )
    ids = loaded.scan(snapshot_id=loaded.snapshot_by_name(branch).snapshot_id).to_arrow().column("id")
    return len(ids), len(set(ids.to_pylist()))


def contention(pg: Any, writers: int, commits: int, work: Path) -> dict[str, Any]:
    url, warehouse = pg.create_database("bench"), work / f"contention-{writers}"
    committer_for(url, warehouse, io.StringIO()).ensure_table("items", IDENT, TableSpec(SCHEMA))
    ctx = mp.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=writer, args=(url, warehouse, w, commits, start, results)) for w in range(writers)
    ]
    for p in procs:
        p.start()
    time.sleep(2)  # let every writer import and load the table before the start signal
    start.set()
    done = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    wall = max(d["ended"] for d in done) - min(d["began"] for d in done)
    landed = writers * commits - sum(d["failed"] for d in done)
    rows, distinct = rows_in(url, warehouse, *IDENT, "bench")
    assert rows == distinct == landed * ROWS_PER_COMMIT, (rows, distinct, landed)
    return {
        "writers": writers,
        "commits": landed,
        "failed_commits": sum(d["failed"] for d in done),
        "pyiceberg_retries": sum(d["retries"] for d in done),
        "transaction_redos": sum(d["redone"] for d in done),
        "seconds": round(wall, 2),
        "commits_per_second": round(landed / wall, 2),
        "rows_exactly_once": True,
    }


def write_files(root: Path, files: int, rows: int) -> int:
    root.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        lines = [f"{k * rows + j},name-{k}-{j},{j % 97}" for j in range(rows)]
        (root / f"part-{k:03d}.csv").write_text("id,name,score\n" + "\n".join(lines) + "\n")
    return files * rows


def backfill(pg: Any, shards: int, data: Path, total: int, work: Path) -> dict[str, Any]:
    url, case = pg.create_database("bench"), work / f"backfill-{shards}"
    case.mkdir(parents=True)
    tap = case / "tap.json"
    tap.write_text(json.dumps({"files": [{"path": str(data / "*.csv"), "object": "items"}]}))
    target = case / "target.json"
    target.write_text(json.dumps({"tenant_id": "bench", "catalog_uri": url, "warehouse": str(case / "wh")}))
    specs = [
        ShardSpec(
            i, shards, mode="direct", tap_config=str(tap), target_config=str(target), state_dir=str(case)
        )
        for i in range(shards)
    ]
    before, began = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    with ThreadPoolExecutor(shards) as pool:
        results = list(pool.map(run_shard, specs))
    wall, after = time.monotonic() - began, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert all(r.exit_code == 0 for r in results), [r.stderr_tail for r in results if r.exit_code]
    rows, distinct = rows_in(url, case / "wh", "bench", "items", "bench")
    assert rows == distinct == total, (rows, distinct, total)
    return {
        "shards": shards,
        "rows": total,
        "seconds": round(wall, 2),
        "rows_per_second": round(total / wall),
        "cpu_seconds": round(cpu, 1),
        "cpu_use_of_all_cores": f"{cpu / (wall * (os.cpu_count() or 1)):.0%}",
        "commits": sum(r.commits for r in results),
        "commit_retries": sum(r.commit_retries for r in results),
        "rows_exactly_once": True,
    }


def postgres(url: str | None, work: Path) -> Any:
    from pg_server import Postgres, start_pg_virtualenv

    return Postgres(url=url) if url else start_pg_virtualenv(work / "pg")


def table(rows: list[dict[str, Any]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(str(r[k]) for k in head) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("DATIVO_TEST_PG_URL"))
    parser.add_argument("--writers", default="1,2,4,8")
    parser.add_argument("--commits", type=int, default=10, help="commits per writer")
    parser.add_argument("--shards", default="1,2,4")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rows", type=int, default=10000, help="rows per file")
    parser.add_argument("--out", default=str(ROOT / ".local/bench/scale_out.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dativo-scale-out-") as tmp:
        work = Path(tmp)
        pg = postgres(args.pg_url, work)
        try:
            writers = [contention(pg, int(w), args.commits, work) for w in args.writers.split(",") if w]
            print(table(writers), flush=True)
            total = write_files(work / "data", args.files, args.rows)
            shards = [backfill(pg, int(s), work / "data", total, work) for s in args.shards.split(",") if s]
            print(table(shards), flush=True)
        finally:
            if pg.proc is not None:
                pg.stop()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpus": os.cpu_count(), "contention": writers, "backfill": shards}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
