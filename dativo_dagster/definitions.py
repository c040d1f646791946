"""The Dagster code location: a job per Meltano job, its schedules, and a sharded backfill job.

Loaded by `dagster definitions validate` / `dagster dev` through `[tool.dagster] module_name` in
pyproject.toml, from the Meltano project in `MELTANO_PROJECT_ROOT` or the working directory.

- `<meltano job>` (e.g. `csv_to_iceberg`): one op running `meltano run <job>`; Meltano keeps the state.
- `<meltano schedule>` (e.g. `daily_csv_to_iceberg`): a Dagster schedule on the job, Meltano's
  `@daily`-style intervals turned into cron.
- `sharded_backfill`: `plan_shards` fans a source out into `shard_count` dynamic outputs; one
  `load_shard` op per shard runs in parallel (the multiprocess executor locally, any Dagster executor
  on a cluster, e.g. dagster-k8s's `k8s_job_executor`); `summarise_backfill` adds up records, commits
  and commit retries. A failed shard fails the run; re-running it resumes from that shard's state.
"""

import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import OpExecutionContext

from dativo_dagster.meltano_project import MeltanoJob, MeltanoProject, dagster_name, load_project
from dativo_dagster.shards import ShardSpec, executable, run_shard


class BackfillConfig(dg.Config):
    """Settings of a sharded backfill (`ops: plan_shards: config:` in the run config)."""

    shard_count: int = 4
    mode: str = "meltano"  # or "direct": tap | target with the config files below
    project_root: str = ""  # default: the code location's Meltano project
    environment: str = "dev"
    extractor: str = "tap-dativo-csv"
    loader: str = "target-dativo-iceberg"
    tap_config: str = ""
    target_config: str = ""
    state_dir: str = ""


def meltano_job(job: MeltanoJob, root: Path) -> dg.JobDefinition:
    """A Dagster job of one op that runs `meltano run <job>` in the project."""

    @dg.op(name=f"meltano_run_{dagster_name(job.name)}", description=f"meltano run {job.name}")
    def run_job(context: OpExecutionContext) -> None:
        done = subprocess.run(
            [executable("meltano"), "run", job.name], cwd=root, capture_output=True, text=True, check=False
        )
        context.log.info(done.stderr[-4000:])
        if done.returncode != 0:
            raise dg.Failure(
                f"meltano run {job.name} exited {done.returncode}", metadata={"stderr": done.stderr[-4000:]}
            )

    @dg.job(name=dagster_name(job.name), description=f"Meltano job {job.name}: " + "; ".join(job.tasks))
    def the_job() -> None:
        run_job()

    return the_job


def backfill_job(root: Path) -> dg.JobDefinition:
    """The sharded backfill: plan, one load per shard (in parallel), summary."""

    @dg.op(out=dg.DynamicOut(dict))
    def plan_shards(config: BackfillConfig) -> Any:
        if config.shard_count < 1:
            raise dg.Failure(f"shard_count must be at least 1, got {config.shard_count}")
        settings = config.model_dump()
        settings["project_root"] = settings["project_root"] or str(root)
        del settings["shard_count"]
        for index in range(config.shard_count):
            spec = ShardSpec(index=index, count=config.shard_count, **settings)
            yield dg.DynamicOutput(asdict(spec), mapping_key=f"shard_{index}")

    @dg.op
    def load_shard(context: OpExecutionContext, spec: dict) -> dict:
        result = run_shard(ShardSpec(**spec))
        context.add_output_metadata(
            {
                "records": result.records,
                "commits": result.commits,
                "commit_retries": result.commit_retries,
                "wall_seconds": round(result.wall_seconds, 2),
                "cpu_seconds": round(result.cpu_seconds, 2),
            }
        )
        if result.exit_code not in (0, 1):  # 1: warn mode rejected some records, the rest committed
            raise dg.Failure(
                f"shard {result.index} of {result.count} exited {result.exit_code}",
                metadata={"stderr": result.stderr_tail},
            )
        return asdict(result)

    @dg.op
    def summarise_backfill(context: OpExecutionContext, results: list[dict]) -> dict:
        total = {
            k: sum(r[k] for r in results) for k in ("records", "commits", "commit_retries", "cpu_seconds")
        }
        total["shards"] = len(results)
        context.add_output_metadata(total)
        return total

    @dg.job(name="sharded_backfill", executor_def=dg.multiprocess_executor)
    def sharded_backfill() -> None:
        summarise_backfill(plan_shards().map(load_shard).collect())

    return sharded_backfill


def build_definitions(project: MeltanoProject | None = None) -> dg.Definitions:
    """Definitions for the Meltano project (default: `MELTANO_PROJECT_ROOT` or the working directory)."""
    project = project or load_project()
    jobs = {job.name: meltano_job(job, project.root) for job in project.jobs}
    schedules = [
        dg.ScheduleDefinition(name=dagster_name(s.name), cron_schedule=s.cron, job=jobs[s.job])
        for s in project.schedules
    ]
    return dg.Definitions(jobs=[*jobs.values(), backfill_job(project.root)], schedules=schedules)


defs = build_definitions()
