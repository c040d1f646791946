"""`dativo run`: Dativo job files run as tap-dativo-csv piped into target-dativo-iceberg.

`dativo run --config JOB.yaml [--mode self_hosted]` runs one job, `dativo run --job-dir DIR` every
`*.yaml`/`*.yml` job below DIR, grouped by tenant (tenants in name order, jobs in file order). Each
job's configs come from `jobfile.py`; they are written to a private temporary directory (mode 0700,
deleted after the run), never printed. The tap starts from the job's saved Singer state; the state
file is rewritten from each STATE line the target prints (the target prints one only once the data
it covers is committed), so it never runs ahead of the table. The tap's and the target's log lines
are printed as they come, through the redaction of the job's secrets.

State: `{STATE_DIR}/{tenant_id}/{job}.state.json`, `STATE_DIR` defaulting to `.local/state`; an
`s3://bucket/prefix` STATE_DIR keeps it in S3 (through the job's `connection.s3`).
Exit code: the target's (0, 1 partial, 2 failure, 143/130 stopped by SIGTERM/SIGINT, which
`dativo run` forwards to it); a tap failure is 2; for a directory, the worst job's (a stopped job
ends the directory run with its code).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import typing as t
import uuid
from pathlib import Path

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.objecttags import is_s3, s3_client, split_s3
from target_dativo_iceberg.ops.jobfile import Job, load_job
from target_dativo_iceberg.redact import Redactor, activate

DEFAULT_STATE_DIR = ".local/state"
#: Exit codes of a target stopped by SIGINT / SIGTERM (passed through; a directory run stops there).
STOPPED = (130, 143)


class StateStore:
    """A job's Singer state: a local file (replaced atomically) or an S3 object."""

    def __init__(self, job: Job, state_dir: str | None = None) -> None:
        base = (state_dir or os.environ.get("STATE_DIR") or DEFAULT_STATE_DIR).rstrip("/")
        self.location = f"{base}/{job.tenant_id}/{job.name}.state.json"
        self._settings = job.settings
        self._client: t.Any = None

    def _s3(self) -> t.Any:
        if self._client is None:
            self._client = s3_client(self._settings)
        return self._client

    def read(self) -> dict[str, t.Any] | None:
        """The saved state, or None before the first run."""
        if is_s3(self.location):
            bucket, key = split_s3(self.location)
            try:
                body = self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()
            except self._s3().exceptions.NoSuchKey:
                return None
            return json.loads(body)
        path = Path(self.location)
        return json.loads(path.read_text()) if path.is_file() else None

    def write(self, state: dict[str, t.Any]) -> None:
        data = json.dumps(state, sort_keys=True).encode()
        if is_s3(self.location):
            bucket, key = split_s3(self.location)
            self._s3().put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
            return
        path = Path(self.location)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


def _executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def _pump(stream: t.IO[str], out: t.TextIO, redactor: Redactor, lock: threading.Lock) -> None:
    """Copy a child's log lines to our stderr, redacted, whole lines at a time."""
    for line in stream:
        with lock:
            out.write(redactor.text(line))
            out.flush()


@contextlib.contextmanager
def _forwarding_signals(*children: subprocess.Popen) -> t.Iterator[None]:
    """SIGTERM/SIGINT to `dativo run` go to the target (which stops at a safe point, printing STATE
    for what it committed) and then the tap."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, _frame: t.Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_job(job: Job) -> int:
    """Run one job; returns its exit code (0, 1 or 2)."""
    events = EventLog(job.tenant_id, f"job-{uuid.uuid4()}", job.settings.secret_values(), sys.stderr)
    store = StateStore(job)
    redactor = Redactor(job.settings.secret_values())
    if job.ignored:
        events.emit("job_keys_ignored", job=str(job.path), keys=job.ignored)
    events.emit("job_file_started", job=str(job.path), tenant=job.tenant_id, state=store.location)
    with tempfile.TemporaryDirectory(prefix="dativo-job-") as private:
        os.chmod(private, 0o700)
        tap_cfg, target_cfg = Path(private, "tap.json"), Path(private, "target.json")
        tap_cfg.write_text(json.dumps(job.tap_config))
        target_cfg.write_text(json.dumps(job.target_config))
        tap_cmd = [_executable("tap-dativo-csv"), "--config", str(tap_cfg)]
        state = store.read()
        if state is not None:
            state_file = Path(private, "state.json")
            state_file.write_text(json.dumps(state))
            tap_cmd += ["--state", str(state_file)]
        target_cmd = [_executable("target-dativo-iceberg"), "--config", str(target_cfg)]
        lock = threading.Lock()
        tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        target = subprocess.Popen(
            target_cmd, stdin=tap.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert tap.stdout is not None and tap.stderr is not None
        assert target.stdout is not None and target.stderr is not None
        tap.stdout.close()  # the target owns the pipe now: the tap sees it close if the target dies
        pumps = [
            threading.Thread(target=_pump, args=(s, sys.stderr, redactor, lock), daemon=True)
            for s in (tap.stderr, target.stderr)
        ]
        for pump in pumps:
            pump.start()
        saved = 0
        with _forwarding_signals(target, tap):
            for line in target.stdout:  # STATE lines: each covers committed data only
                if line.strip():
                    store.write(json.loads(line))
                    saved += 1
            target_code, tap_code = target.wait(), tap.wait()
        for pump in pumps:
            pump.join()
    code = target_code if target_code in (0, 1, *STOPPED) else 2
    if tap_code != 0 and code == 0:
        code = 2
    events.emit(
        "job_file_finished",
        job=str(job.path),
        tenant=job.tenant_id,
        exit_code=code,
        tap_exit_code=tap_code,
        target_exit_code=target_code,
        states_saved=saved,
    )
    return code


def _job_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ConfigError(f"--job-dir {directory}: not a directory")
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def run_command(args: argparse.Namespace) -> int:
    """`dativo run`: one job file or a directory of them; the worst exit code."""
    if args.config:
        job = load_job(Path(args.config))
        activate(Redactor(job.settings.secret_values()))
        return run_job(job)
    jobs: list[Job] = []
    worst = 0
    for path in _job_files(Path(args.job_dir)):
        try:
            jobs.append(load_job(path))
        except ConfigError as exc:
            print(f"dativo: {exc}", file=sys.stderr)
            worst = 2
    secrets = [s for job in jobs for s in job.settings.secret_values()]
    activate(Redactor(secrets))
    results = []
    for job in sorted(jobs, key=lambda j: j.tenant_id):  # stable: file order within a tenant
        code = run_job(job)
        results.append((job, code))
        if code in STOPPED:
            worst = code
            break
        worst = max(worst, code)
    for job, code in results:
        print(f"{job.tenant_id:<20} {str(job.path):<60} exit {code}")
    return worst


def add_parser(sub: t.Any) -> None:
    """Register `dativo run`."""
    cmd = sub.add_parser("run", help="run Dativo job files (tap-dativo-csv | target-dativo-iceberg)")
    which = cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="one job YAML file")
    which.add_argument("--job-dir", help="a directory of job YAML files (every job, grouped by tenant)")
    cmd.add_argument(
        "--mode",
        choices=["self_hosted"],
        default="self_hosted",
        help="self_hosted (the only mode: jobs run here, state under STATE_DIR)",
    )
    cmd.set_defaults(func=run_command)
