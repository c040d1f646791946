"""Read the jobs and schedules of a Meltano project (meltano.yml) for the Dagster definitions.

The definitions are generated from meltano.yml so the orchestrator runs exactly what `meltano run`
runs by hand: one Dagster job per Meltano job, one Dagster schedule per Meltano schedule.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

# Meltano's interval shorthands as cron expressions (Airflow's presets, which Meltano uses).
INTERVALS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


@dataclass(frozen=True)
class MeltanoJob:
    """A `jobs:` entry: its name and tasks (each a space-separated list of plugins)."""

    name: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class MeltanoSchedule:
    """A `schedules:` entry that runs a job on a cron expression."""

    name: str
    job: str
    cron: str


@dataclass(frozen=True)
class MeltanoProject:
    """The parts of meltano.yml the orchestrator needs."""

    root: Path
    jobs: tuple[MeltanoJob, ...]
    schedules: tuple[MeltanoSchedule, ...]


def project_root() -> Path:
    """`MELTANO_PROJECT_ROOT` (Meltano's own variable), else the working directory."""
    return Path(os.environ.get("MELTANO_PROJECT_ROOT") or Path.cwd()).resolve()


def dagster_name(name: str) -> str:
    """A Meltano name as a Dagster name (letters, digits and underscores only)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def cron_of(interval: str) -> str:
    """Cron expression of a Meltano schedule `interval` (a shorthand such as `@daily`, or cron)."""
    return INTERVALS.get(interval.strip(), interval.strip())


def load_project(root: Path | None = None) -> MeltanoProject:
    """Parse `root/meltano.yml`; a missing file is a project with no jobs."""
    root = root or project_root()
    path = root / "meltano.yml"
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    data = data or {}
    jobs = tuple(
        MeltanoJob(
            str(j["name"]), tuple(t if isinstance(t, str) else " ".join(t) for t in j.get("tasks", []))
        )
        for j in data.get("jobs") or []
    )
    known = {j.name for j in jobs}
    schedules = tuple(
        MeltanoSchedule(
            str(s["name"]), str(s["job"]), cron_of(str(s.get("interval") or s.get("cron_interval")))
        )
        for s in data.get("schedules") or []
        if s.get("job") in known and (s.get("interval") or s.get("cron_interval"))
    )
    return MeltanoProject(root, jobs, schedules)
