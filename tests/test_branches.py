"""Write-audit-publish through the `dativo` CLI: diff, publish (fast-forward only), state show."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import BIN, open_catalog, record, run_target, schema_msg, state

from target_dativo_iceberg.ops.readback import duckdb_rows

PROPS = {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}


def dativo(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dativo"), *args, "--config", str(root / "target.json")],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )


def load(root: Path, ids: list[int], bookmark: int, **config: str) -> None:
    messages = [schema_msg("items", PROPS), *[record("items", id=i, v=f"v{i}") for i in ids]]
    run = run_target(root, [*messages, state({"bookmarks": {"items": {"n": bookmark}}})], **config)
    assert run.returncode == 0, run.stderr


def test_diff_publish_and_state_show(tmp_path: Path) -> None:
    load(tmp_path, [1, 2, 3], 3)
    load(tmp_path, [4, 5], 5)
    out = dativo(tmp_path, "branch", "diff")
    assert out.returncode == 0, out.stderr
    assert (
        "acme.items: 2 snapshot(s), 5 record(s) on 'acme' not on main (fast-forward possible)" in out.stdout
    )

    listed = dativo(tmp_path, "branch", "list").stdout.split()
    assert "main" in listed and "acme" in listed

    shown = dativo(tmp_path, "state", "show")
    assert shown.returncode == 0, shown.stderr
    assert '{"singer_state": {"bookmarks": {"items": {"n": 5}}}}' in shown.stdout

    table = open_catalog(tmp_path).load_table("acme.items")
    assert duckdb_rows(table, "main", "SELECT count(*) FROM t") == [(0,)]
    pub = dativo(tmp_path, "branch", "publish")
    assert pub.returncode == 0, pub.stderr
    table = open_catalog(tmp_path).load_table("acme.items")
    assert table.snapshot_by_name("main").snapshot_id == table.snapshot_by_name("acme").snapshot_id
    assert duckdb_rows(table, "main", "SELECT id FROM t ORDER BY id") == [(i,) for i in range(1, 6)]
    assert (
        "no differences: branch 'acme' holds nothing that main lacks"
        in dativo(tmp_path, "branch", "diff").stdout
    )


def test_publish_refuses_when_main_diverged(tmp_path: Path) -> None:
    load(tmp_path, [1], 1)  # branch acme: 1 row
    load(tmp_path, [100], 100, branch="main")  # main moves on by itself
    # The config file now says branch=main; rewrite it for the tenant branch.
    load(tmp_path, [2], 2)
    table = open_catalog(tmp_path).load_table("acme.items")
    main_before = table.snapshot_by_name("main").snapshot_id
    out = dativo(tmp_path, "branch", "publish", "--branch", "acme")
    assert out.returncode == 2
    assert "is not an ancestor of branch 'acme'" in out.stderr and "main is untouched" in out.stderr
    table = open_catalog(tmp_path).load_table("acme.items")
    assert table.snapshot_by_name("main").snapshot_id == main_before
    assert duckdb_rows(table, "main", "SELECT id FROM t") == [(100,)]
    assert "diverged from main" in dativo(tmp_path, "branch", "diff", "--branch", "acme").stdout
    state_json = json.loads(dativo(tmp_path, "state", "show", "--json").stdout)
    assert state_json[0]["singer_state"] == {"bookmarks": {"items": {"n": 2}}}
