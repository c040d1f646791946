"""Input and table set-up of bench/run's upsert cases: a batch of changed and new keys for a big table.

`write_input(out, base)` writes `upsert-<base>-s<seed>.singer.jsonl`: `base // 10` records of
`bench_people`, half of them changing existing ids spread evenly over the whole table (every 20th
id: 1, 21, 41, ...), half new ids (`base + 1 ...`), interleaved, with fresh field values. For the
issue's shape (`base` = 2,000,000) that is 200k records: 100k changed keys, 100k new.
`load_base(...)` lands the `base`-row table on `main` (not measured); the measured run then
writes the batch to its own branch cut from it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import generate

SPREAD = 20  # every SPREAD-th existing id changes


def write_input(out_dir: Path, base: int, seed: int = generate.DEFAULT_SEED) -> tuple[Path, int]:
    """Write (or reuse) the upsert batch for a `base`-row table; returns its path and record count."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"upsert-{base}-s{seed}.singer.jsonl"
    changed = base // SPREAD
    records = 2 * changed
    done = path.with_suffix(".done")
    if done.exists() and path.exists():
        return path, records
    schema = {
        "type": "SCHEMA",
        "stream": generate.STREAM,
        "schema": generate.SINGER_SCHEMA,
        "key_properties": ["id"],
    }
    head = f'{{"type":"RECORD","stream":"{generate.STREAM}","record":{{'
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        out.write(json.dumps(schema, separators=(",", ":")) + "\n")
        for n, row in enumerate(generate.rows(records, seed + 1)):
            new_id = 1 + (n // 2) * SPREAD if n % 2 == 0 else base + 1 + n // 2
            _, email, country, status, age, created, updated, score, balance, vip = row
            email = email.split(".", 1)[0] + f".{new_id}@" + email.split("@", 1)[1]
            out.write(
                f'{head}"id":{new_id},"email":"{email}","country":"{country}","status":"{status}",'
                f'"age":{age or "null"},"created_at":"{created}","updated_at":"{updated}",'
                f'"score":{score},"balance":{balance},"is_vip":{vip}}}}}\n'
            )
            if (n + 1) % generate.STATE_EVERY == 0 or n + 1 == records:
                value = {"bookmarks": {generate.STREAM: {"upserted": n + 1}}}
                out.write(json.dumps({"type": "STATE", "value": value}) + "\n")
    done.write_text(f"{base} {seed}\n")
    return path, records


def load_base(workdir: Path, config: dict[str, Any], base_input: Path, target: Path) -> None:
    """Land the base table on `main` with the target (append-only), in `workdir`."""
    path = workdir / "base.json"
    path.write_text(json.dumps({**config, "branch": "main", "load_method": "append-only"}))
    with base_input.open("rb") as stdin, (workdir / "base.log").open("wb") as log:
        code = subprocess.run(
            [str(target), "--config", str(path)],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=workdir,
            env=dict(os.environ),
            check=False,
        ).returncode
    if code != 0:
        tail = (workdir / "base.log").read_text(errors="replace").splitlines()[-3:]
        raise RuntimeError(f"loading the base table failed (exit {code}): {' / '.join(tail)}")
