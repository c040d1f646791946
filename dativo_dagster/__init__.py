"""Dagster definitions for dativo-ingest: Meltano jobs, their schedules and sharded backfills.

Scaling out is left to an orchestrator rather than a home-made cluster: Dagster runs many
`meltano run`s (on one machine with the multiprocess executor, on Kubernetes with its executor),
all committing to one shared catalog. `dagster definitions validate` reads
`dativo_dagster.definitions` from `[tool.dagster]` in pyproject.toml. See docs/scale-out.md.
"""
