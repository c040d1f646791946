"""bench/run: throughput and memory of target-dativo-iceberg against its floors, in one run (issue 7).

Every case is a fresh child process (or shell pipeline) on the same generated input, timed from spawn
to exit (start-up included). Peak RSS is the largest sum of RSS over the whole process tree, polled
every 50 ms with psutil, and never below the largest single process's own peak (`VmHWM`;
`ru_maxrss` is not used: after fork + exec it keeps the parent's RSS). Rows an Iceberg
case landed are read back with pyiceberg from the branch it wrote; the SDK cases report the records
the SDK counted. Ratios compare records/s with the group's baseline measured in the same run.

    bench/run                                    # 1M records, every case
    bench/run --records 100000                   # quick check
    bench/run --sizes 1000000,5000000 --only target,tap-batch-target,floor-msgspec
    bench/run --list                             # case ids

See docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import generate
import upsert

try:
    import psutil
except ImportError:  # pragma: no cover - a clear message instead of a traceback
    sys.exit("bench/run needs psutil, msgspec and orjson: .venv/bin/pip install psutil msgspec orjson")

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent
CONTRACT = BENCH / "contracts" / "bench_people.odcs.yaml"
RESULTS = REPO / ".local" / "bench" / "results"
TENANT = "bench"  # the target writes branch `bench` (branch defaults to tenant_id)
TARGET_CATALOG = "dativo"  # the target's default catalog_name; SQL catalogs key tables by it
FLOOR_CATALOG = "bench"

# Reference points from issue 7 (measured elsewhere, not by this script).
ISSUE_RPS_GOAL = 250_000
ISSUE_RSS_LIMIT_MB = 600
DLT_ARROW_RPS = 113_000


@dataclass
class Context:
    """What a case needs to build its command: its scratch directory and the inputs."""

    workdir: Path
    inputs: generate.Inputs
    target_config: dict[str, Any]
    tap_batch_size: int
    py_spy: Path | None
    upsert_base: int = 2_000_000
    data_dir: Path = generate.DEFAULT_OUT


@dataclass
class Prepared:
    """What a case's set-up (not measured) made: its own stdin, and the rows it must leave."""

    stdin: Path
    records: int
    rows: int
    distinct_ids: int


@dataclass
class Case:
    """One measured configuration."""

    id: str
    group: str  # "singer": the Singer stream on stdin; "csv": the CSV file
    label: str
    measures: str  # one line for docs and --list
    command: Callable[[Context], list[str]]
    stdin: bool  # feed the Singer file on stdin
    check: Callable[[Context, Path], tuple[int | None, str]]  # (rows, how they were counted)
    baseline: bool = False
    prepare: Callable[[Context], Prepared] | None = None  # set-up before the measured run


@dataclass
class Result:
    """One case at one size."""

    case: str
    group: str
    label: str
    records: int
    wall_s: float
    cpu_s: float
    rps: float
    peak_rss_mb: float
    max_process_rss_mb: float
    exit_code: int
    rows: int | None
    rows_how: str
    ok: bool
    detail: str = ""
    vs_baseline: float | None = None
    vs_sdk_noop: float | None = None
    load_before: float = 0.0  # 1-minute load average when the case started
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ measuring


@dataclass
class Measured:
    """Wall time, memory and exit status of one process tree."""

    wall_s: float
    cpu_s: float  # user + system time of the process and its waited-for descendants
    peak_rss: int
    max_process_rss: int
    exit_code: int
    timed_out: bool
    timeline: list[tuple[float, float]]  # (seconds, tree RSS MB), about one sample a second
    peaks: dict[str, float]  # program → its peak RSS MB (polled)


def _high_water(pid: int) -> int:
    """The process's peak RSS so far in bytes (`VmHWM`: exact between polls, reset by exec); 0 if gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _program(process: psutil.Process) -> str:
    """A process's program: the script a Python interpreter runs, else the executable's name."""
    try:
        argv = process.cmdline()
    except psutil.Error:
        return "?"
    names = [Path(a).name for a in argv[:2]]
    if len(names) == 2 and names[0].startswith("python") and not argv[1].startswith("-"):
        return names[1]
    return names[0] if names else "?"


def measure(
    argv: list[str],
    stdin: Path | None,
    cwd: Path,
    timeout: float,
    extra_env: dict[str, str] | None = None,
    interval: float = 0.05,
) -> Measured:
    """Run argv in cwd (stdout/stderr to files there); poll the tree's RSS until it exits."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(extra_env or {})}
    with (
        open(stdin, "rb") if stdin else open(os.devnull, "rb") as fin,
        open(cwd / "stdout", "wb") as fout,
        open(cwd / "stderr", "wb") as ferr,
    ):
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=fin, stdout=fout, stderr=ferr, cwd=cwd, env=env, start_new_session=True
        )
        ended: dict[str, Any] = {}

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            ended["at"] = time.perf_counter()
            ended["status"] = status
            ended["cpu"] = usage.ru_utime + usage.ru_stime
            proc.returncode = os.waitstatus_to_exitcode(status)

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        try:
            root: psutil.Process | None = psutil.Process(proc.pid)
        except psutil.Error:  # already exited and reaped
            root = None
        peak, per_process = 0, 0
        timed_out = False
        timeline: list[tuple[float, float]] = []
        programs: dict[int, str] = {}
        peaks: dict[str, float] = {}
        while waiter.is_alive():
            total = 0
            try:
                tree = [root, *root.children(recursive=True)] if root else []
            except psutil.Error:
                tree = []
            for p in tree:
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                high = max(rss, _high_water(p.pid))
                per_process = max(per_process, high)
                name = programs.get(p.pid) or _program(p)
                if name not in ("bash", "sh", "?"):  # a forked shell may exec the real program later
                    programs[p.pid] = name
                peaks[name] = max(peaks.get(name, 0.0), round(high / 2**20, 1))
            peak = max(peak, total)
            now = time.perf_counter() - started
            if total and (not timeline or now - timeline[-1][0] >= 1.0):
                timeline.append((round(now, 1), round(total / 2**20, 1)))
            if time.perf_counter() - started > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)  # our own child's process group
                waiter.join()
                break
            waiter.join(interval)
    wall = ended.get("at", time.perf_counter()) - started
    code = proc.returncode if proc.returncode is not None else -9
    cpu = float(ended.get("cpu", 0.0))
    return Measured(wall, cpu, max(peak, per_process), per_process, code, timed_out, timeline, peaks)


# ------------------------------------------------------------------ checks


def _metric_count(stderr: Path, metric: str = "record_count") -> int:
    """Sum of an SDK counter metric in a stderr log (the SDK logs increments)."""
    total = 0
    pattern = re.compile(rf'"metric":\s*"{metric}",\s*"value":\s*(\d+)')
    with stderr.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if "METRIC" in line:
                match = pattern.search(line)
                if match:
                    total += int(match.group(1))
    return total


def iceberg_rows(catalog_dir: Path, catalog_name: str, branch: str) -> tuple[int | None, str]:
    """Rows (and distinct ids) of bench_people at the head of `branch`, read back with pyiceberg."""
    import pyarrow.compute as pc
    from pyiceberg.catalog import load_catalog

    db = catalog_dir / "catalog.db"
    if not db.exists():
        return None, "no catalog"
    catalog = load_catalog(
        catalog_name, type="sql", uri=f"sqlite:///{db}", warehouse=(catalog_dir / "warehouse").as_uri()
    )
    found = [
        ident
        for ns in catalog.list_namespaces()
        for ident in catalog.list_tables(ns)
        if ident[-1] == generate.STREAM
    ]
    if len(found) != 1:
        return None, f"tables found: {found}"
    table = catalog.load_table(found[0])
    snapshot = table.snapshot_by_name(branch)
    if snapshot is None:
        return 0, f"no branch {branch!r}"
    ids = table.scan(snapshot_id=snapshot.snapshot_id, selected_fields=("id",)).to_arrow().column("id")
    distinct = pc.count_distinct(ids).as_py()
    return len(ids), f"pyiceberg scan of {'.'.join(found[0])}@{branch}, {distinct} distinct ids"


def _check_target(ctx: Context, out: Path) -> tuple[int | None, str]:
    return iceberg_rows(ctx.workdir / "iceberg", TARGET_CATALOG, TENANT)


def _check_floor_iceberg(ctx: Context, out: Path) -> tuple[int | None, str]:
    return iceberg_rows(ctx.workdir / "iceberg", FLOOR_CATALOG, "main")


def _check_parquet(ctx: Context, out: Path) -> tuple[int | None, str]:
    import pyarrow.parquet as pq

    path = ctx.workdir / "out.parquet"
    if not path.exists():
        return None, "no Parquet file"
    return pq.read_metadata(path).num_rows, "Parquet footer"


def _check_sdk_count(ctx: Context, out: Path) -> tuple[int | None, str]:
    return _metric_count(ctx.workdir / "stderr"), "SDK record_count metric"


# ------------------------------------------------------------------ cases


def _write(path: Path, value: dict[str, Any]) -> Path:
    path.write_text(json.dumps(value, indent=1))
    return path


def _target_config(ctx: Context) -> dict[str, Any]:
    base = ctx.workdir / "iceberg"
    return {
        "tenant_id": TENANT,
        "catalog_uri": f"sqlite:///{base}/catalog.db",
        "warehouse": str(base / "warehouse"),
        "assets": {generate.STREAM: str(CONTRACT)},
        "schema_validation_mode": "strict",
        **ctx.target_config,
    }


def _target_argv(ctx: Context, case: str, **overrides: Any) -> list[str]:
    config = {**_target_config(ctx), **overrides}
    for key in [k for k, v in config.items() if v is None]:
        del config[key]
    config = _write(ctx.workdir / "target.json", config)
    argv = [str(BIN / "target-dativo-iceberg"), "--config", str(config)]
    if ctx.py_spy is not None:
        ctx.py_spy.mkdir(parents=True, exist_ok=True)
        profile = ctx.py_spy / f"{case}-{ctx.inputs.records}.collapsed.txt"
        argv = [str(BIN / "py-spy"), "record", "-r", "200", "-f", "raw", "-o", str(profile), "--", *argv]
    return argv


#: The upsert cases land the Singer schema (key `id` from `key_properties`), not the contract: an
#: `append-only` run checks a contract's primary key against the table and would refuse the
#: baseline's 100k existing ids; both cases and the base table are written the same way.
UPSERT_CONFIG: dict[str, Any] = {"assets": None}


def _prepare_upsert(appended: bool) -> Callable[[Context], Prepared]:
    """Land the base table on main; the measured run writes the upsert batch to the bench branch."""

    def prepare(ctx: Context) -> Prepared:
        base = generate.write(ctx.data_dir, ctx.upsert_base, ctx.inputs.seed)
        batch, records = upsert.write_input(ctx.data_dir, ctx.upsert_base, ctx.inputs.seed)
        config = {k: v for k, v in _target_config(ctx).items() if k != "assets"}  # see UPSERT_CONFIG
        upsert.load_base(ctx.workdir, config, base.singer, BIN / "target-dativo-iceberg")
        new = records // 2
        rows = ctx.upsert_base + (records if appended else new)
        return Prepared(batch, records, rows, ctx.upsert_base + new)

    return prepare


def _tap_config(ctx: Context, batch: bool) -> Path:
    config: dict[str, Any] = {
        "files": [{"path": str(ctx.inputs.csv), "object": generate.STREAM, "asset": str(CONTRACT)}]
    }
    if batch:
        config["batch_config"] = {
            "encoding": {"format": "parquet", "compression": "none"},
            "storage": {"root": (ctx.workdir / "batches").as_uri(), "prefix": "batch-"},
            "batch_size": ctx.tap_batch_size,
        }
        (ctx.workdir / "batches").mkdir(exist_ok=True)
    return _write(ctx.workdir / ("tap-batch.json" if batch else "tap.json"), config)


def _pipe(ctx: Context, case: str, batch: bool) -> list[str]:
    tap = [str(BIN / "tap-dativo-csv"), "--config", str(_tap_config(ctx, batch))]
    line = f"{shlex.join(tap)} | {shlex.join(_target_argv(ctx, case))}"
    return ["bash", "-c", f"set -o pipefail; {line}"]


def _noop(ctx: Context, validate: bool) -> list[str]:
    config = _write(ctx.workdir / "noop.json", {"validate_records": validate})
    return [sys.executable, str(BENCH / "noop_target.py"), "--config", str(config)]


def _floor(parser: str, sink: str) -> Callable[[Context], list[str]]:
    def command(ctx: Context) -> list[str]:
        out = ctx.workdir / ("out.parquet" if sink == "parquet" else "iceberg")
        argv = [
            sys.executable,
            str(BENCH / "floor.py"),
            "--parser",
            parser,
            "--sink",
            sink,
            "--out",
            str(out),
        ]
        return [*argv, "--input", str(ctx.inputs.csv)] if parser == "pyarrow-csv" else argv

    return command


CASES: tuple[Case, ...] = (
    Case(
        "target",
        "singer",
        "target-dativo-iceberg (strict contract)",
        "our target CLI, Singer stream on stdin, strict validation against the bench contract, "
        "commits to an embedded SQLite catalog",
        lambda ctx: _target_argv(ctx, "target"),
        True,
        _check_target,
    ),
    Case(
        "target-no-contract",
        "singer",
        "target-dativo-iceberg (no contract)",
        "our target CLI on the same stream without a contract: the tap's Singer SCHEMA is all it has "
        "(what most taps give)",
        lambda ctx: _target_argv(ctx, "target-no-contract", assets=None),
        True,
        _check_target,
    ),
    Case(
        "sdk-noop-validate",
        "singer",
        "no-op singer-sdk target, validate_records on",
        "bench/noop_target.py: the SDK's per-record path incl. JSON Schema validation; drops every batch",
        lambda ctx: _noop(ctx, True),
        True,
        _check_sdk_count,
    ),
    Case(
        "sdk-noop",
        "singer",
        "no-op singer-sdk target, validate_records off",
        "the same without validation: the ceiling of any target on the SDK's per-record path",
        lambda ctx: _noop(ctx, False),
        True,
        _check_sdk_count,
    ),
    Case(
        "floor-msgspec",
        "singer",
        "floor: msgspec → Arrow → 1 Parquet write",
        "msgspec typed decode of the Singer lines → Arrow (timestamps parsed by Arrow) → one pq.write_table",
        _floor("msgspec", "parquet"),
        True,
        _check_parquet,
        baseline=True,
    ),
    Case(
        "floor-orjson",
        "singer",
        "floor: orjson → Arrow → 1 Parquet write",
        "orjson.loads per line → RecordBatch.from_pylist → one pq.write_table",
        _floor("orjson", "parquet"),
        True,
        _check_parquet,
    ),
    Case(
        "floor-pyarrow-json",
        "singer",
        "floor: pyarrow.json → 1 Parquet write",
        "pyarrow.json.read_json of the Singer lines (explicit schema, RECORD rows filtered) → one pq.write_table",
        _floor("pyarrow-json", "parquet"),
        True,
        _check_parquet,
    ),
    Case(
        "floor-msgspec-iceberg",
        "singer",
        "floor: msgspec → Arrow → 1 pyiceberg append",
        "as floor-msgspec, but one pyiceberg append to a fresh SQLite catalog (the issue's naive floor)",
        _floor("msgspec", "iceberg"),
        True,
        _check_floor_iceberg,
    ),
    Case(
        "tap-target",
        "csv",
        "tap-dativo-csv | target-dativo-iceberg",
        "shell pipe, RECORD messages; the target as in `target`",
        lambda ctx: _pipe(ctx, "tap-target", batch=False),
        False,
        _check_target,
    ),
    Case(
        "tap-batch-target",
        "csv",
        "tap-dativo-csv (BATCH parquet) | target-dativo-iceberg",
        "the tap writes Parquet batch files (SDK batch_config) and sends BATCH messages",
        lambda ctx: _pipe(ctx, "tap-batch-target", batch=True),
        False,
        _check_target,
    ),
    Case(
        "tap-only",
        "csv",
        "tap-dativo-csv > /dev/null",
        "the tap alone, RECORD messages to /dev/null: the tap's share of tap-target",
        lambda ctx: [
            "bash",
            "-c",
            f"{shlex.join([str(BIN / 'tap-dativo-csv'), '--config', str(_tap_config(ctx, False))])} > /dev/null",
        ],
        False,
        _check_sdk_count,
    ),
    Case(
        "csv-parquet",
        "csv",
        "raw pyarrow.csv → 1 Parquet write",
        "pyarrow.csv.read_csv with the contract's types → one pq.write_table",
        _floor("pyarrow-csv", "parquet"),
        False,
        _check_parquet,
    ),
    Case(
        "csv-iceberg",
        "csv",
        "raw pyarrow.csv → 1 pyiceberg append",
        "pyarrow.csv.read_csv → one pyiceberg append to a fresh SQLite catalog",
        _floor("pyarrow-csv", "iceberg"),
        False,
        _check_floor_iceberg,
        baseline=True,
    ),
)
CASES += (
    Case(
        "append-big",
        "upsert",
        "append a 10% batch to a big table",
        "the upsert case's batch (--upsert-base / 10 records) appended (load_method append-only) "
        "to a table of --upsert-base rows (landed first, not measured)",
        lambda ctx: _target_argv(ctx, "append-big", load_method="append-only", **UPSERT_CONFIG),
        True,
        _check_target,
        baseline=True,
        prepare=_prepare_upsert(appended=True),
    ),
    Case(
        "upsert-big",
        "upsert",
        "upsert a 10% batch into a big table (half changed keys, half new)",
        "load_method upsert of that batch: half its keys change rows spread over the whole table, "
        "half are new (position delete files; only files whose id bounds can hold a key are read)",
        lambda ctx: _target_argv(ctx, "upsert-big", load_method="upsert", **UPSERT_CONFIG),
        True,
        _check_target,
        prepare=_prepare_upsert(appended=False),
    ),
)
CASE_IDS = [c.id for c in CASES]


def _floor_phases(stdout: Path) -> dict[str, Any]:
    try:
        lines = stdout.read_text().strip().splitlines()
        return json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return {}


def run_case(case: Case, inputs: generate.Inputs, args: argparse.Namespace) -> Result:
    """Measure one case in a fresh scratch directory; check what it produced; clean up."""
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{case.id}-", dir=args.tmp))
    ctx = Context(
        scratch,
        inputs,
        args.target_config,
        args.tap_batch_size,
        args.py_spy.resolve() if args.py_spy else None,
        args.upsert_base,
        args.data,
    )
    try:
        prepared = case.prepare(ctx) if case.prepare else None
        records = prepared.records if prepared else inputs.records
        stdin = prepared.stdin if prepared else inputs.singer
        argv = case.command(ctx)
        load = os.getloadavg()[0]
        measured = measure(argv, stdin if case.stdin else None, scratch, args.timeout, args.env)
        rows, how = case.check(ctx, scratch)
        detail = ""
        if measured.timed_out:
            detail = f"timed out after {args.timeout:.0f} s"
        elif measured.exit_code != 0:
            tail = (scratch / "stderr").read_text(errors="replace").strip().splitlines()[-3:]
            detail = f"exit {measured.exit_code}: " + " / ".join(tail)[-400:]
        expected, distinct = (prepared.rows, prepared.distinct_ids) if prepared else (records, records)
        ok = measured.exit_code == 0 and rows == expected
        if case.check in (_check_target, _check_floor_iceberg) and ok:
            ok = f"{distinct} distinct ids" in how
        extra = _floor_phases(scratch / "stdout") if case.command.__name__ == "command" else {}
        extra["rss_timeline_mb"] = measured.timeline
        extra["peak_rss_by_program_mb"] = measured.peaks
        return Result(
            case=case.id,
            group=case.group,
            label=case.label,
            records=records,
            wall_s=round(measured.wall_s, 3),
            cpu_s=round(measured.cpu_s, 2),
            rps=round(records / measured.wall_s, 1),
            peak_rss_mb=round(measured.peak_rss / 2**20, 1),
            max_process_rss_mb=round(measured.max_process_rss / 2**20, 1),
            exit_code=measured.exit_code,
            rows=rows,
            rows_how=how,
            ok=ok,
            detail=detail,
            load_before=round(load, 2),
            extra=extra,
        )
    finally:
        if args.keep:
            print(f"  kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def add_ratios(results: list[Result]) -> None:
    """Records/s relative to the group's baseline and to the SDK no-op (no validation), per size."""
    by_key = {(r.case, r.records): r for r in results}
    baselines = {c.group: c.id for c in CASES if c.baseline}
    for r in results:
        base = by_key.get((baselines[r.group], r.records))
        if base and base.rps:
            r.vs_baseline = round(r.rps / base.rps, 3)
        noop = by_key.get(("sdk-noop", r.records))
        if noop and noop.rps and r.group == "singer":
            r.vs_sdk_noop = round(r.rps / noop.rps, 2)


# ------------------------------------------------------------------ reporting


def _fmt_int(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def results_table(results: list[Result]) -> str:
    """The Markdown table of every result."""
    baselines = {c.id for c in CASES if c.baseline}
    head = (
        "| case | records | wall s | CPU s | records/s | peak RSS MB | max proc MB | rows landed "
        "| × baseline | × SDK no-op |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    lines = []
    for r in results:
        mark = " **(baseline)**" if r.case in baselines else ""
        rows = _fmt_int(r.rows) + (" ✓" if r.ok else f" ✗ {_md(r.detail)}".rstrip())
        lines.append(
            f"| `{r.case}` {_md(r.label)}{mark} | {r.records:,} | {r.wall_s:.2f} | {r.cpu_s:.1f} | "
            f"{_fmt_int(r.rps)} | {r.peak_rss_mb:.0f} | {r.max_process_rss_mb:.0f} | {rows} | "
            f"{_fmt_ratio(r.vs_baseline)} | {_fmt_ratio(r.vs_sdk_noop)} |"
        )
    hows = sorted({r.rows_how.split(" of ")[0].split(",")[0] for r in results})
    notes = (
        "\nrows landed: counted by " + "; ".join(hows) + " (✓ = exit 0 and exactly N rows"
        ", and N distinct ids for Iceberg tables). Peak RSS: the whole process tree (sum, polled every "
        "50 ms); max proc: the largest single process's own peak (VmHWM). CPU s: user + system of the tree.\n"
    )
    return head + "\n".join(lines) + "\n" + notes


def goals_table(results: list[Result]) -> str:
    """Issue 7's targets against this run's numbers."""
    by_key = {(r.case, r.records): r for r in results}
    sizes = sorted({r.records for r in results})
    rows: list[tuple[str, str, str]] = []
    seen_upsert: set[int] = set()

    def verdict(passed: bool) -> str:
        return "PASS" if passed else "FAIL"

    for n in sizes:
        target = by_key.get(("target", n))
        if target:
            rows.append(
                (
                    f"target ≥ {ISSUE_RPS_GOAL:,} records/s ({n:,})",
                    f"{target.rps:,.0f}/s",
                    verdict(target.ok and target.rps >= ISSUE_RPS_GOAL),
                )
            )
            rows.append(
                (
                    f"target peak RSS < {ISSUE_RSS_LIMIT_MB} MB ({n:,})",
                    f"{target.peak_rss_mb:.0f} MB",
                    verdict(target.ok and target.peak_rss_mb < ISSUE_RSS_LIMIT_MB),
                )
            )
            noop = by_key.get(("sdk-noop", n))
            if noop:
                rows.append(
                    (
                        f"target beats the SDK no-op ceiling ({n:,})",
                        f"{target.rps / noop.rps:.2f}× of {noop.rps:,.0f}/s",
                        verdict(target.rps > noop.rps),
                    )
                )
        floor = by_key.get(("csv-iceberg", n))
        for case in ("tap-target", "tap-batch-target"):
            pipe = by_key.get((case, n))
            if pipe and floor:
                rows.append(
                    (
                        f"{case} ≥ ½ raw pyarrow.csv → pyiceberg ({n:,})",
                        f"{pipe.rps / floor.rps:.2f}× of {floor.rps:,.0f}/s",
                        verdict(pipe.ok and pipe.rps >= floor.rps / 2),
                    )
                )
            if pipe:
                rows.append(
                    (
                        f"{case} peak RSS < {ISSUE_RSS_LIMIT_MB} MB ({n:,})",
                        f"{pipe.peak_rss_mb:.0f} MB",
                        verdict(pipe.ok and pipe.peak_rss_mb < ISSUE_RSS_LIMIT_MB),
                    )
                )
                rows.append(
                    (
                        f"{case} beats dlt's Arrow path (~{DLT_ARROW_RPS:,}/s, issue's number) ({n:,})",
                        f"{pipe.rps:,.0f}/s",
                        verdict(pipe.ok and pipe.rps > DLT_ARROW_RPS),
                    )
                )
        upsert_case, append_case = by_key.get(("upsert-big", n)), by_key.get(("append-big", n))
        if upsert_case and append_case and n not in seen_upsert:
            seen_upsert.add(n)
            rows.append(
                (
                    f"upsert-big within 2× append-big ({n:,} into the big table)",
                    f"{append_case.rps / upsert_case.rps:.2f}× the append's time",
                    verdict(upsert_case.ok and upsert_case.wall_s <= 2 * append_case.wall_s),
                )
            )
            rows.append(
                (
                    f"upsert-big peak RSS < {ISSUE_RSS_LIMIT_MB} MB",
                    f"{upsert_case.peak_rss_mb:.0f} MB",
                    verdict(upsert_case.ok and upsert_case.peak_rss_mb < ISSUE_RSS_LIMIT_MB),
                )
            )
    if not rows:
        return ""
    body = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return "| target | this run | |\n| --- | ---: | --- |\n" + body + "\n"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "—"


def code_revision() -> str:
    """HEAD's short commit plus the top-level directories with uncommitted changes (read-only git)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never touch the index

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = sorted(
        {
            line[3:].split("/", 1)[0]
            for line in git("status", "--porcelain").splitlines()
            if line[3:] and not line[3:].startswith(("bench", "docs/performance.md"))
        }
    )
    return f"{head} + uncommitted changes in {', '.join(changed)}" if changed else head


def export_ref(ref: str, into: Path) -> str:
    """Extract the packages at git `ref` into `into` (read-only `git archive`); returns its short commit."""
    import io
    import tarfile

    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{ref}^{{commit}}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if commit.returncode != 0:
        raise SystemExit(f"--git-ref {ref}: {commit.stderr.strip()}")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "target_dativo_iceberg", "tap_dativo_csv"],
        cwd=REPO,
        env=env,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit.stdout.strip()


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu": model or platform.processor(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "code": code_revision(),
        "packages": {
            name: _version(name)
            for name in ("singer-sdk", "pyiceberg", "pyarrow", "msgspec", "orjson", "dativo-ingest")
        },
    }


def report(results: list[Result], info: dict[str, Any], inputs: list[generate.Inputs]) -> str:
    """The whole Markdown report."""
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    sizes = "; ".join(
        f"{i.records:,} records: Singer {i.singer.stat().st_size / 2**20:.0f} MB, "
        f"CSV {i.csv.stat().st_size / 2**20:.0f} MB"
        for i in inputs
    )
    text = (
        f"## bench/run — {info['date']}\n\n"
        f"Machine: {info['cpus']} cores ({info['cpu']}), {info['memory_gb']} GB; Python {info['python']}; "
        f"{packages}.\nCode: {info['code']}.\nInput (seed {inputs[0].seed}): {sizes}.\n"
        + (f"Environment: {info['env']}.\n" if info.get("env") else "")
        + (
            f"Each case ran {info['repeat']} times; the fastest run is shown.\n"
            if info.get("repeat", 1) > 1
            else ""
        )
    )
    busiest = max(results, key=lambda r: r.load_before, default=None)
    if busiest is not None and busiest.load_before > 1.0:
        text += (
            f"\n**Warning:** other work was running (1-min load average up to {busiest.load_before:.1f} "
            f"when a case started, e.g. `{busiest.case}`, on {info['cpus']} cores): wall times and "
            "records/s are pessimistic; CPU s is the steadier number.\n"
        )
    text += "\n" + results_table(results)
    pipes = [
        r for r in results if len([k for k in r.extra.get("peak_rss_by_program_mb", {}) if k != "bash"]) > 1
    ]
    if pipes:
        text += (
            "\nPeak RSS per program in pipelines: "
            + "; ".join(
                f"`{r.case}` {r.records:,}: "
                + ", ".join(
                    f"{name} {mb:.0f} MB"
                    for name, mb in r.extra["peak_rss_by_program_mb"].items()
                    if name != "bash"
                )
                for r in pipes
            )
            + ".\n"
        )
    goals = goals_table(results)
    if goals:
        text += "\n" + goals
    return text


# ------------------------------------------------------------------ main


def _parse_ids(text: str | None) -> list[str]:
    ids = [s.strip() for s in (text or "").split(",") if s.strip()]
    unknown = [i for i in ids if i not in CASE_IDS]
    if unknown:
        raise SystemExit(f"unknown case id(s): {', '.join(unknown)}; known: {', '.join(CASE_IDS)}")
    return ids


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit code 1 when a case failed or landed the wrong number of rows."""
    parser = argparse.ArgumentParser(
        prog="bench/run", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="records per run (default 1,000,000)")
    parser.add_argument(
        "--sizes", help="comma-separated record counts, e.g. 1000000,5000000 (overrides --records)"
    )
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--only", help="comma-separated case ids to run (default: all)")
    parser.add_argument("--skip", help="comma-separated case ids to leave out")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--data", type=Path, default=generate.DEFAULT_OUT, help="where inputs are generated")
    parser.add_argument("--tmp", type=Path, default=None, help="parent of the per-case scratch directories")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the .md/.json reports go")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per case")
    parser.add_argument("--keep", action="store_true", help="keep scratch directories (catalogs, logs)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each case this many times and report its fastest run (noise from other work only "
        "ever slows a run down)",
    )
    parser.add_argument(
        "--target-config",
        type=json.loads,
        default={},
        help="JSON merged into the target config, e.g. '{\"batch_size_rows\": 200000}'",
    )
    parser.add_argument("--tap-batch-size", type=int, default=100_000, help="rows per tap BATCH file")
    parser.add_argument(
        "--git-ref",
        help="measure the target and tap as committed at this ref (git archive → PYTHONPATH), "
        "not the working tree",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for every case, e.g. ARROW_DEFAULT_MEMORY_POOL=system (repeatable)",
    )
    parser.add_argument(
        "--py-spy", type=Path, default=None, help="profile every target process with py-spy into this dir"
    )
    parser.add_argument(
        "--upsert-base",
        type=int,
        default=2_000_000,
        help="rows of the table the upsert-big / append-big cases write a tenth of that into (default 2,000,000)",
    )
    parser.add_argument(
        "--charts",
        type=Path,
        default=None,
        help="directory for bench-throughput.png and bench-rss.png (default: next to the reports; "
        "docs/ updates the charts docs/performance.md shows); needs matplotlib (the docs extra)",
    )
    args = parser.parse_args(argv)

    if args.list:
        for case in CASES:
            mark = " (baseline)" if case.baseline else ""
            print(f"{case.id:22} [{case.group}]{mark} {case.measures}")
        return 0
    missing = [name for name in ("msgspec", "orjson") if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"bench/run needs {', '.join(missing)}: .venv/bin/pip install {' '.join(missing)}",
            file=sys.stderr,
        )
        return 2
    if any("=" not in item for item in args.env):
        parser.error("--env takes KEY=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    only, skip = _parse_ids(args.only), _parse_ids(args.skip)
    cases = [c for c in CASES if (not only or c.id in only) and c.id not in skip]
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")] if args.sizes else [args.records]
    if args.tmp is not None:
        args.tmp.mkdir(parents=True, exist_ok=True)

    info = machine()
    source: Path | None = None
    if args.git_ref:
        source = Path(tempfile.mkdtemp(prefix="bench-src-", dir=args.tmp))
        commit = export_ref(args.git_ref, source)
        info["code"] = f"{commit} (git archive of {args.git_ref}; the working tree is not used)"
        previous = os.environ.get("PYTHONPATH")
        args.env["PYTHONPATH"] = f"{source}{os.pathsep}{previous}" if previous else str(source)
    shown_env = {k: v for k, v in args.env.items() if k != "PYTHONPATH" or not args.git_ref}
    if shown_env or args.target_config:
        info["env"] = " ".join(f"{k}={v}" for k, v in shown_env.items())
        if args.target_config:
            info["env"] += f" target config {json.dumps(args.target_config)}"
    info["repeat"] = max(1, args.repeat)
    results: list[Result] = []
    inputs: list[generate.Inputs] = []
    for n in sizes:
        started = time.perf_counter()
        data = generate.write(args.data, n, args.seed)
        inputs.append(data)
        print(
            f"# {n:,} records: inputs ready in {time.perf_counter() - started:.1f} s ({data.singer.parent})"
        )
        for case in cases:
            print(f"  {case.id:22} ...", end="", flush=True)
            attempts = [run_case(case, data, args) for _ in range(max(1, args.repeat))]
            failed = [r for r in attempts if not r.ok]
            result = failed[0] if failed else min(attempts, key=lambda r: r.wall_s)
            if len(attempts) > 1:
                walls = ", ".join(f"{r.wall_s:.2f}" for r in attempts)
                print(f" (wall s of {len(attempts)} runs: {walls}; the fastest counts)", end="")
            results.append(result)
            status = "ok" if result.ok else f"FAIL ({result.rows} rows; {result.detail})"
            print(
                f" {result.wall_s:8.2f} s {result.cpu_s:7.1f} cpu-s {result.rps:>10,.0f} rec/s"
                f" {result.peak_rss_mb:6.0f} MB  load {result.load_before:.1f}  {status}",
                flush=True,
            )
    if source is not None and not args.keep:
        shutil.rmtree(source, ignore_errors=True)
    add_ratios(results)
    text = report(results, info, inputs)
    print("\n" + text)
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.results / f"{stamp}.md").write_text(text)
    payload = {
        "machine": info,
        "results": [asdict(r) for r in results],
        "argv": sys.argv[1:],
        "upsert_base": args.upsert_base,
    }
    (args.results / f"{stamp}.json").write_text(json.dumps(payload, indent=1))
    print(f"reports: {args.results / stamp}.md / .json")
    if importlib.util.find_spec("matplotlib") is None:
        print("charts skipped: matplotlib is not installed (pip install -e '.[docs]')", file=sys.stderr)
    else:
        import charts

        drawn = charts.draw(results, args.charts or args.results / f"{stamp}-charts", info, args.upsert_base)
        print("charts: " + ", ".join(str(p) for p in drawn))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
