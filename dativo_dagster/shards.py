"""Run one shard of a source: `meltano run` (or tap | target) with `shard_count`/`shard_index` set.

A backfill of many files is split by tap-dativo-csv's deterministic file sharding: worker i of N reads
only its files and bookmarks only them, so N shards run in parallel on any Dagster executor and all
commit to the one shared catalog, whose optimistic concurrency the target retries with jitter. Each
shard keeps its own state: `meltano run --state-id-suffix shard-<i>-of-<N>`, or a state file per
shard in direct mode. The target's JSON events on stderr give the shard's committed records, commits
and commit retries, which the Dagster op reports as metadata.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# pyiceberg's own retry of a commit rejected by a concurrent one (exponential backoff + jitter),
# logged as a warning, before the target's redo of the whole transaction (`commit_retry` event).
PYICEBERG_RETRY = "Commit failed due to a concurrent update, retrying"


@dataclass(frozen=True)
class ShardSpec:
    """How to run shard `index` of `count`.

    `mode` `meltano`: `meltano run <extractor> <loader>` in `project_root` (environment
    `environment`), shard settings through `TAP_DATIVO_CSV_SHARD_COUNT`/`_INDEX`. `direct`: the
    tap and target executables piped together with the config files `tap_config` and
    `target_config`; the shard's state is kept in `state_dir`.
    """

    index: int
    count: int
    mode: str = "meltano"
    project_root: str = "."
    environment: str = "dev"
    extractor: str = "tap-dativo-csv"
    loader: str = "target-dativo-iceberg"
    tap_config: str = ""
    target_config: str = ""
    state_dir: str = ""

    @property
    def suffix(self) -> str:
        return f"shard-{self.index}-of-{self.count}"


@dataclass(frozen=True)
class ShardResult:
    """What one shard did: exit code, committed records, commits, commit retries, times."""

    index: int
    count: int
    exit_code: int
    records: int
    commits: int
    commit_retries: int
    wall_seconds: float
    cpu_seconds: float
    stderr_tail: str


def executable(name: str) -> str:
    """`name` next to this Python (the project's venv), else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def _summarise(spec: ShardSpec, exit_code: int, stderr: str, wall: float, cpu: float) -> ShardResult:
    records = commits = retries = 0
    for line in stderr.splitlines():
        event = _message(line)
        if event.get("event") == "commit_success":
            commits += 1
            records += int(event.get("records") or 0)
        elif event.get("event") == "commit_retry" or PYICEBERG_RETRY in line:
            retries += 1
    return ShardResult(
        spec.index, spec.count, exit_code, records, commits, retries, wall, cpu, stderr[-4000:]
    )


def _message(line: str) -> dict:
    """The JSON object on `line`, after any prefix (Meltano prefixes a plugin's lines with its own
    timestamp, level and plugin name); `{}` when there is none."""
    start = line.find("{")
    if start < 0:
        return {}
    try:
        value, _ = json.JSONDecoder().raw_decode(line, start)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _run_meltano(spec: ShardSpec, log: IO[str]) -> int:
    env = {
        **os.environ,
        "TAP_DATIVO_CSV_SHARD_COUNT": str(spec.count),
        "TAP_DATIVO_CSV_SHARD_INDEX": str(spec.index),
    }
    command = [
        executable("meltano"),
        "--log-format=json",  # the target's events as JSON objects (its structured logging)
        "--environment",
        spec.environment,
        "run",
        "--state-id-suffix",
        spec.suffix,
        spec.extractor,
        spec.loader,
    ]
    return subprocess.run(
        command, cwd=spec.project_root, env=env, stderr=log, stdout=log, check=False
    ).returncode


def _run_direct(spec: ShardSpec, log: IO[str]) -> int:
    state_dir = Path(spec.state_dir or tempfile.mkdtemp(prefix="dativo-shards-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    tap_config = {
        **json.loads(Path(spec.tap_config).read_text()),
        "shard_count": spec.count,
        "shard_index": spec.index,
    }
    config_path = state_dir / f"{spec.suffix}.tap.json"
    config_path.write_text(json.dumps(tap_config))
    state_path = state_dir / f"{spec.suffix}.state.json"
    tap_cmd = [executable("tap-dativo-csv"), "--config", str(config_path)]
    if state_path.exists():
        tap_cmd += ["--state", str(state_path)]
    tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    target = subprocess.Popen(
        [executable("target-dativo-iceberg"), "--config", spec.target_config],
        stdin=tap.stdout,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert tap.stdout is not None
    tap.stdout.close()  # the target owns the pipe now: the tap sees SIGPIPE if the target exits
    out, _ = target.communicate()
    tap_code = tap.wait()
    states = [m for m in map(_message, out.splitlines()) if m]  # a target prints state values
    if states:  # printed only after the data it covers is committed: safe to keep
        state_path.write_text(json.dumps(states[-1]))
    return target.returncode or tap_code


def run_shard(spec: ShardSpec) -> ShardResult:
    """Run the shard to its end; its stderr (the target's events) is summarised."""
    started, cpu_before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile("w+") as log:
        code = _run_meltano(spec, log) if spec.mode == "meltano" else _run_direct(spec, log)
        log.seek(0)
        stderr = log.read()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return _summarise(spec, code, stderr, time.monotonic() - started, cpu)
