"""BATCH messages: tap-dativo-csv writes Parquet batch files, the target validates and commits them as Arrow."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from helpers import Run, open_catalog, target_config

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONTRACT = EXAMPLES / "contracts" / "person.odcs.yaml"
PEOPLE = EXAMPLES / "data" / "people.csv"


def _run_tap(root: Path, bin_dir: Path, config: dict[str, Any]) -> str:
    """The tap's Singer output for `config` (written to root/tap.json)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tap.json").write_text(json.dumps(config))
    command = [str(bin_dir / "tap-dativo-csv"), "--config", str(root / "tap.json")]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=300).stdout


def _batch_config(root: Path, prefix: str, size: int | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "encoding": {"format": "parquet", "compression": "none"},
        "storage": {"root": (root / "batches").as_uri(), "prefix": prefix},
    }
    return config if size is None else {**config, "batch_size": size}


def _tap_output(root: Path, bin_dir: Path, batch: bool) -> str:
    """The tap's Singer output for examples/data/people.csv (RECORDs, or BATCH messages)."""
    config: dict[str, Any] = {
        "files": [{"path": str(PEOPLE), "object": "person", "asset": str(CONTRACT), "primary_keys": ["id"]}]
    }
    if batch:
        config["batch_config"] = _batch_config(root, "person-", 1000)
    return _run_tap(root, bin_dir, config)


def _target(root: Path, bin_dir: Path, text: str, assets: dict[str, str] | None = None, **config: Any) -> Run:
    cfg = root / "target.json"
    assets = assets or {"person": str(CONTRACT)}
    cfg.write_text(json.dumps(target_config(root, assets=assets, **config)))
    proc = subprocess.run(
        [str(bin_dir / "target-dativo-iceberg"), "--config", str(cfg)],
        input=text,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def test_parquet_batches_land_like_records(tmp_path: Path, bin_dir: Path) -> None:
    batches = _tap_output(tmp_path / "b", bin_dir, batch=True)
    kinds = [json.loads(line)["type"] for line in batches.splitlines()]
    assert kinds.count("BATCH") == 3 and "RECORD" not in kinds  # 2500 rows in files of 1000

    run = _target(tmp_path / "b", bin_dir, batches)
    assert run.returncode == 0, run.stderr[-3000:]
    written = run.events("batch_written")
    assert [e["path"] for e in written] == ["hot"] * len(written)
    assert sum(e["records"] for e in written) == 2500
    tap_states = [json.loads(line)["value"] for line in batches.splitlines() if '"STATE"' in line]
    assert run.states[-1] == tap_states[-1]

    records = _tap_output(tmp_path / "r", bin_dir, batch=False)
    assert _target(tmp_path / "r", bin_dir, records).returncode == 0

    via_batch = open_catalog(tmp_path / "b").load_table("acme__crm.person")
    via_records = open_catalog(tmp_path / "r").load_table("acme__crm.person")
    rows_batch = sorted(pyiceberg_rows(via_batch, "acme"), key=lambda r: r["id"])
    rows_records = sorted(pyiceberg_rows(via_records, "acme"), key=lambda r: r["id"])
    assert len(rows_batch) == 2500 and rows_batch == rows_records
    assert duckdb_rows(via_batch, "acme", "SELECT count(*), count(DISTINCT id), max(id) FROM t") == [
        (2500, 2500, 2500)
    ]


def test_parquet_batches_are_validated_against_the_contract(tmp_path: Path, bin_dir: Path) -> None:
    """A row breaking the contract in a BATCH file fails the run (strict) naming field and rule."""
    bad = tmp_path / "people.csv"
    lines = PEOPLE.read_text().splitlines()
    lines[5] = lines[5].replace("@", "-at-", 1)  # email pattern/format violation at record 5
    bad.write_text("\n".join(lines) + "\n")
    config = {
        "files": [{"path": str(bad), "object": "person", "asset": str(CONTRACT)}],
        "batch_config": _batch_config(tmp_path, "person-"),
    }
    out = _run_tap(tmp_path, bin_dir, config)
    run = _target(tmp_path, bin_dir, out)
    assert run.returncode == 2
    assert "stream 'person'" in run.stderr and "email" in run.stderr and "record 5" in run.stderr
    assert run.stdout == ""


def test_batches_replayed_after_a_crash_are_skipped(tmp_path: Path, bin_dir: Path) -> None:
    """Crash after a BATCH file was committed but before its STATE was printed; Meltano restarts the
    tap from the last printed STATE, and the re-sent file is recognised as committed (no duplicates)."""
    lines = _tap_output(tmp_path, bin_dir, batch=True).splitlines(keepends=True)
    kinds = [json.loads(line)["type"] for line in lines]
    batches = [i for i, kind in enumerate(kinds) if kind == "BATCH"]
    first = _target(tmp_path, bin_dir, "".join(lines[: batches[1] + 1]))  # input ends after BATCH 2
    assert first.returncode == 0, first.stderr[-3000:]
    resumed_from = first.states[-1]
    assert resumed_from == json.loads(lines[batches[1] - 1])["value"]  # the STATE before BATCH 2
    schema = [line for line, kind in zip(lines, kinds, strict=True) if kind == "SCHEMA"]
    again = _target(tmp_path, bin_dir, "".join(schema + lines[batches[1] :]))  # the tap resumed there
    assert again.returncode == 0, again.stderr[-3000:]
    assert [e["records"] for e in again.events("replay_skipped")] == [1000]
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    rows = pyiceberg_rows(table, "acme")
    assert len(rows) == 2500 and len({r["id"] for r in rows}) == 2500


LEDGER = """
apiVersion: v3.0.2
kind: DataContract
id: 0b6f3c4e-0000-4000-8000-0000000000d1
name: ledger
version: 1.0.0
status: active
domain: fin
schema:
  - name: ledger
    properties:
      - {name: id, logicalType: integer, physicalType: bigint, required: true, primaryKey: true}
      - {name: amount, logicalType: number, physicalType: "decimal(38,10)", required: true}
"""


def test_batch_files_carry_contract_decimals_exactly(tmp_path: Path, bin_dir: Path) -> None:
    """Decimals beyond a float's 15-17 digits land digit for digit through Parquet BATCH files; a
    chunk with a value the column cannot hold (11 decimals) goes in a file of its own, as floats,
    and the target rejects just that value (warn mode)."""
    (tmp_path / "ledger.yaml").write_text(LEDGER)
    amounts = {i: f"{i}{i:07d}12345678901.{i:010d}" for i in range(1, 251)}
    amounts[150] = "1.23456789012"  # scale 11 > 10: lossy
    (tmp_path / "ledger.csv").write_text("id,amount\n" + "".join(f"{i},{a}\n" for i, a in amounts.items()))
    config = {
        "files": [
            {"path": str(tmp_path / "ledger.csv"), "object": "ledger", "asset": str(tmp_path / "ledger.yaml")}
        ],
        "chunk_size": 100,
        "batch_config": _batch_config(tmp_path, "ledger-", 1000),
    }
    out = _run_tap(tmp_path, bin_dir, config)
    files = [json.loads(line)["manifest"][0] for line in out.splitlines() if '"BATCH"' in line]
    types = [str(pq.read_schema(f.removeprefix("file://")).field("amount").type) for f in files]
    assert types == ["decimal128(38, 10)", "double", "decimal128(38, 10)"]  # rows 1-100, 101-200, 201-250

    assets = {"ledger": str(tmp_path / "ledger.yaml")}
    run = _target(tmp_path, bin_dir, out, assets, schema_validation_mode="warn")
    assert run.returncode == 1, run.stderr[-3000:]  # partial: one value rejected
    table = open_catalog(tmp_path).load_table("acme__fin.ledger")
    landed = {r["id"]: r["amount"] for r in pyiceberg_rows(table, "acme")}
    exact = {i: a for i, a in amounts.items() if 1 <= i <= 100 or 201 <= i <= 250}
    assert {i: str(landed[i]) for i in exact} == exact  # digit for digit
    assert 150 not in landed and len(landed) == 249
    got = duckdb_rows(table, "acme", "SELECT CAST(amount AS VARCHAR) FROM t WHERE id IN (7, 250) ORDER BY id")
    assert got == [(amounts[7],), (amounts[250],)]
    rejected = pyiceberg_rows(open_catalog(tmp_path).load_table("acme__fin.ledger__rejected"), "acme")
    assert len(rejected) == 1 and json.loads(rejected[0]["_record"])["id"] == 150
