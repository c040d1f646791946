"""Singer taps piped into target-dativo-iceberg with a plain shell pipe (no Meltano in between)."""

from __future__ import annotations

import csv
import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.table import Table

from target_dativo_iceberg.ops.readback import duckdb_connection, duckdb_rows, pyiceberg_rows

TAP_JSONL_VERSION = "0.3.1"  # keep in step with TAP_JSONL_VERSION in the Makefile


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


def target_config(root: Path, tenant: str) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "catalog_uri": f"sqlite:///{root}/iceberg/catalog.db",
        "warehouse": str(root / "iceberg" / "warehouse"),
    }


def open_catalog(root: Path) -> Catalog:
    base = root / "iceberg"
    return load_catalog(
        "dativo", type="sql", uri=f"sqlite:///{base}/catalog.db", warehouse=(base / "warehouse").as_uri()
    )


def only_table(catalog: Catalog, name: str) -> Table:
    found = [i for ns in catalog.list_namespaces() for i in catalog.list_tables(ns) if i[-1] == name]
    assert len(found) == 1, f"expected one table {name!r}, found {found}"
    return catalog.load_table(found[0])


def shell_pipe(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a shell pipeline; pipefail makes a failing tap fail the pipeline too."""
    proc = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"pipeline exited {proc.returncode}\n{proc.stderr[-15000:]}"
    return proc


def last_state(lines: str) -> dict[str, Any]:
    states = [m["value"] for m in map(json.loads, lines.splitlines()) if m.get("type") == "STATE"]
    assert states, "the tap printed no STATE"
    return states[-1]


def test_tap_dativo_csv_pipe_into_target(tmp_path: Path, bin_dir: Path, tool_env: dict[str, str]) -> None:
    rows = [
        {"id": i, "name": f"order {i}", "amount": f"{i * 2.5:.2f}", "region": ["eu", "us", "apac"][i % 3]}
        for i in range(1, 1201)
    ]
    data = tmp_path / "orders.csv"
    with data.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tap_cfg = write_json(
        tmp_path / "c.json",
        {"files": [{"path": str(data), "object": "orders", "primary_keys": ["id"]}], "infer_types": True},
    )
    target_cfg = write_json(tmp_path / "t.json", target_config(tmp_path, "pipes"))

    proc = shell_pipe(
        f"{bin_dir / 'tap-dativo-csv'} --config {tap_cfg} | tee tap.out"
        f" | {bin_dir / 'target-dativo-iceberg'} --config {target_cfg}",
        tmp_path,
        tool_env,
    )

    # The target prints STATE lines only; its last one is the tap's last STATE, now committed.
    target_states = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert target_states, "the target printed no STATE"
    assert target_states[-1] == last_state((tmp_path / "tap.out").read_text())

    table = only_table(open_catalog(tmp_path), "orders")
    landed = {r["id"]: r for r in pyiceberg_rows(table, "pipes")}
    assert len(landed) == len(rows) == len(pyiceberg_rows(table, "pipes"))
    for row in (rows[0], rows[599], rows[-1]):
        got = landed[row["id"]]
        assert got["name"] == row["name"]
        assert float(got["amount"]) == float(row["amount"])
        assert got["region"] == row["region"]
    con = duckdb_connection()
    assert duckdb_rows(
        table, "pipes", "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM t", con
    ) == [(1200, 1200, 1, 1200)]
    assert duckdb_rows(table, "pipes", "SELECT name, region FROM t WHERE id = 600", con) == [
        ("order 600", "eu")
    ]
    assert pyiceberg_rows(table, "main") == []


@pytest.fixture(scope="module")
def tap_jsonl(repo_root: Path, tool_env: dict[str, str]) -> Path:
    """tap-jsonl from PyPI in its own venv (.venv-taps/tap-jsonl, built by `make taps`)."""
    exe = repo_root / ".venv-taps" / "tap-jsonl" / "bin" / "tap-jsonl"
    if not exe.exists():
        subprocess.run(
            ["make", "-s", "taps"],
            cwd=repo_root,
            env=tool_env,
            check=False,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
    assert exe.exists(), f"{exe} missing: `make taps` could not install tap-jsonl=={TAP_JSONL_VERSION}"
    about = json.loads(
        subprocess.run([exe, "--about", "--format", "json"], capture_output=True, check=True).stdout
    )
    assert about["version"] == TAP_JSONL_VERSION
    return exe


def test_third_party_tap_jsonl_pipe_into_target(
    tmp_path: Path, bin_dir: Path, tool_env: dict[str, str], tap_jsonl: Path
) -> None:
    start = datetime.datetime(2025, 3, 1, tzinfo=datetime.timezone.utc)
    events = [
        {
            "id": i,
            "kind": ["click", "view", "purchase"][i % 3],
            "value": i * 1.5,
            "ts": (start + datetime.timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
        }
        for i in range(1, 301)
    ]
    data_dir = tmp_path / "events"
    data_dir.mkdir()
    for part in range(3):  # three files, one partition (and bookmark) each in tap-jsonl's state
        chunk = events[part * 100 : (part + 1) * 100]
        (data_dir / f"part-{part}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in chunk))
    tap_cfg = write_json(
        tmp_path / "c.json", {"path": f"{data_dir}/*.jsonl", "stream_name": "events", "primary_keys": ["id"]}
    )
    target_cfg = write_json(tmp_path / "t.json", target_config(tmp_path, "thirdparty"))

    proc = shell_pipe(
        f"{tap_jsonl} --config {tap_cfg} | tee tap.out | {bin_dir / 'target-dativo-iceberg'} --config {target_cfg}",
        tmp_path,
        tool_env,
    )
    target_states = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert target_states and target_states[-1] == last_state((tmp_path / "tap.out").read_text())

    table = only_table(open_catalog(tmp_path), "events")
    landed = {r["id"]: r for r in pyiceberg_rows(table, "thirdparty")}
    assert sorted(landed) == [e["id"] for e in events]
    for event in (events[0], events[150], events[-1]):
        got = landed[event["id"]]
        assert got["kind"] == event["kind"]
        assert got["value"] == pytest.approx(event["value"])
        ts = got["ts"]
        ts = ts if isinstance(ts, str) else ts.isoformat().replace("+00:00", "Z")
        assert ts.replace("+00:00", "Z") == event["ts"]
    con = duckdb_connection()
    assert duckdb_rows(table, "thirdparty", "SELECT count(*), sum(value) FROM t", con) == [
        (300, pytest.approx(sum(e["value"] for e in events)))
    ]
    assert pyiceberg_rows(table, "main") == []
