"""tap-dativo-csv piped into target-dativo-iceberg run after run, with the state carried over the way
Meltano carries it (the target's last STATE line is the next run's `--state`), and what landed read
back with pyiceberg and with DuckDB."""

from __future__ import annotations

import collections
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import BIN, open_catalog, target_config
from pyiceberg.table import Table

from target_dativo_iceberg.ops.readback import duckdb_connection, duckdb_rows, pyiceberg_rows

TENANT = "acme"  # helpers.target_config: the branch written


@dataclass
class PipeRun:
    """One tap | target run."""

    returncode: int
    tap_stderr: str
    target_stderr: str
    records: list[dict[str, Any]]
    state: dict[str, Any] | None


@dataclass
class Pipeline:
    """Runs of the tap into one embedded catalog under `root`, state carried from run to run."""

    root: Path
    target: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    runs: int = 0

    def run(self, tap_config: dict[str, Any], check: bool = True) -> PipeRun:
        """Tap (with the carried state) piped into the target; the target's last STATE is carried on."""
        self.runs += 1
        self.root.mkdir(parents=True, exist_ok=True)
        tap_cfg = self.root / f"tap-{self.runs}.json"
        tap_cfg.write_text(json.dumps(tap_config))
        tgt_cfg = self.root / "target.json"
        tgt_cfg.write_text(json.dumps(target_config(self.root, **self.target)))
        cmd = [str(BIN / "tap-dativo-csv"), "--config", str(tap_cfg)]
        if self.state is not None:
            state_file = self.root / f"state-{self.runs}.json"
            state_file.write_text(json.dumps(self.state))
            cmd += ["--state", str(state_file)]
        tap = subprocess.run(cmd, capture_output=True, timeout=300, cwd=self.root)
        target = subprocess.run(
            [str(BIN / "target-dativo-iceberg"), "--config", str(tgt_cfg)],
            input=tap.stdout,
            capture_output=True,
            timeout=300,
            cwd=self.root,
        )
        code = tap.returncode or target.returncode
        tap_err, target_err = tap.stderr.decode(errors="replace"), target.stderr.decode(errors="replace")
        if check:
            assert code == 0, f"tap exit {tap.returncode}:\n{tap_err[-5000:]}\ntarget:\n{target_err[-5000:]}"
        messages = [json.loads(line) for line in tap.stdout.decode().splitlines() if line.startswith("{")]
        states = [json.loads(line) for line in target.stdout.decode().splitlines() if line.strip()]
        if states and code == 0:
            self.state = states[-1]
        records = [m["record"] for m in messages if m["type"] == "RECORD"]
        return PipeRun(code, tap_err, target_err, records, states[-1] if states else None)

    def table(self, name: str) -> Table:
        """The one table called `name` (in whatever namespace the target chose)."""
        catalog = open_catalog(self.root)
        found = [i for ns in catalog.list_namespaces() for i in catalog.list_tables(ns) if i[-1] == name]
        assert len(found) == 1, f"expected one table {name!r}, found {found}"
        return catalog.load_table(found[0])

    def landed(self, name: str, columns: tuple[str, ...]) -> collections.Counter:
        """Rows of table `name` on the tenant branch (multiset of `columns` tuples), checked to be
        what pyiceberg and DuckDB both read."""
        table = self.table(name)
        by_pyiceberg = collections.Counter(
            tuple(row[c] for c in columns) for row in pyiceberg_rows(table, TENANT)
        )
        query = f"SELECT {', '.join(columns)} FROM t"
        by_duckdb = collections.Counter(
            tuple(r) for r in duckdb_rows(table, TENANT, query, duckdb_connection())
        )
        assert by_duckdb == by_pyiceberg
        return by_pyiceberg
