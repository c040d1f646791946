"""`dativo state show`: the Singer state the newest commits carry, and the `meltano state set` that restores it.

Every commit's snapshot summary holds the Singer STATE it covers (`dativo.singer-state`), so the
lakehouse itself says where the pipeline may resume: after a lost Meltano system database, or to
replay from a chosen point. The command prints it per table and, ready to paste, the
`meltano state set --force <state id> '<state>'` with the project's real state id
(`{environment}:{tap}-to-{loader}`, plus `:{state_id_suffix}` when the environment sets one), read
from `meltano state list` or, before any Meltano run, made from the project's extractors.
States are printed as data (`redact.write_data`): a tap's own `next_page_token` stays as it is.
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from target_dativo_iceberg.iceberg.markers import committed_state
from target_dativo_iceberg.ops.project import (
    LOADER,
    add_source_arguments,
    all_tables,
    catalog_of,
    chosen_branch,
    load_project,
    where,
)
from target_dativo_iceberg.redact import write_data


def state_command(args: argparse.Namespace) -> int:
    """Print the committed states and the `meltano state set` command; say so when there is none."""
    project = load_project(args)
    branch = chosen_branch(project, args)
    tables = all_tables(catalog_of(project.settings), args.table, project.settings)
    found = [c for c in (committed_state(t, branch) for t in tables) if c is not None]
    if args.json:
        states = [{**c.__dict__, "singer_state": c.state} for c in found]
        write_data(json.dumps(states, indent=2, default=str) + "\n")
        return 0
    if not found:
        print(f"no committed Singer state in {where(project.settings, branch)} ({len(tables)} table(s))")
        return 0
    for c in found:
        print(f"# {c.table} on {c.branch}: snapshot {c.snapshot_id}, run {c.run_id}, stream {c.stream}")
        write_data(json.dumps({"singer_state": c.state}, sort_keys=True) + "\n")
    state_ids = project.state_ids()
    newest = max(found, key=lambda c: c.timestamp_ms)
    payload = shlex.quote(json.dumps({"singer_state": newest.state}, sort_keys=True))
    prefix = (
        f"meltano --environment {shlex.quote(project.environment)} " if project.environment else "meltano "
    )
    print(
        f"# to restore Meltano's state from the newest commit ({newest.table}, snapshot {newest.snapshot_id}):"
    )
    if not state_ids:
        print(
            f"# (state id: {{environment}}:{{tap}}-to-{project.loader or LOADER}; "
            "run `dativo state show` in the Meltano project to have it filled in)"
        )
        state_ids = [f"<environment>:<tap>-to-{project.loader or LOADER}"]
    elif len(state_ids) > 1:
        print(f"# {len(state_ids)} pipelines load into {project.loader}: use the one this state belongs to")
    for state_id in state_ids:
        write_data(f"{prefix}state set --force {shlex.quote(state_id)} {payload}\n")
    return 0


def add_parser(sub: Any) -> None:
    """Register `dativo state show` on the `dativo` CLI's subparsers."""
    state = sub.add_parser(
        "state", help="committed Singer state per table, and the meltano state set command"
    )
    state.add_argument("action", choices=["show"])
    add_source_arguments(state)
    state.add_argument("--branch", help="branch (default: the tenant's branch the target writes)")
    state.add_argument("--table", action="append", help="namespace.table (repeatable; default: all tables)")
    state.add_argument("--json", action="store_true", help="machine-readable output")
    state.set_defaults(func=state_command)
