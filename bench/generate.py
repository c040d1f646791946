"""Deterministic benchmark input: one Singer stream and the same rows as CSV (issue 7, item 1).

Stream `bench_people`, 10 fields typed by bench/contracts/bench_people.odcs.yaml: id (1..N), email,
country (2 letters), status (active|inactive|banned), age (0-150, ~5% null), created_at and updated_at
(ISO-8601 UTC with `Z`), score (double 0-100), balance (2 decimals, may be negative), is_vip.
The Singer file holds SCHEMA, the N RECORDs (with `time_extracted`, as SDK taps write them) and a
STATE after every 10,000 records and at the end. Output is byte-for-byte stable for (records, seed).

    python bench/generate.py --records 1000000 [--seed 7] [--out .local/bench/data]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

STREAM = "bench_people"
REPO = Path(__file__).resolve().parent.parent
CONTRACT = REPO / "bench" / "contracts" / "bench_people.odcs.yaml"
DEFAULT_OUT = REPO / ".local" / "bench" / "data"  # .local/ is git-ignored
DEFAULT_SEED = 7
STATE_EVERY = 10_000
COLUMNS = (
    "id",
    "email",
    "country",
    "status",
    "age",
    "created_at",
    "updated_at",
    "score",
    "balance",
    "is_vip",
)
TIME_EXTRACTED = "2025-01-01T00:00:00.000000+00:00"

_NAMES = (  # noqa: SIM905 - one word list reads better than 53 string literals
    "ada alan alice amara ana arjun ben carla chen chloe dara david elena emma farah felix grace hana "
    "hugo ines ivan jamal jana jonas kai kenji lara leo lina luca maya mateo mia nadia nina noah "
    "olga omar pablo priya quinn rosa sam sara sofia tariq tess uma victor wen yara yusuf zoe"
).split()
_DOMAINS = ("example.com", "mail.example.org", "corp.example.net", "example.io", "post.example.de")
_COUNTRIES = "US DE FR GB ES IT NL SE PL PT IE BE AT CH DK NO FI CZ IN JP BR CA AU MX ZA NG KE".split()  # noqa: SIM905
_STATUSES = ("active", "active", "active", "active", "inactive", "inactive", "banned")
_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z

SINGER_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "country": {"type": "string"},
        "status": {"type": "string"},
        "age": {"type": ["integer", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "score": {"type": "number"},
        "balance": {"type": "number"},
        "is_vip": {"type": "boolean"},
    },
    "required": [
        "id",
        "email",
        "country",
        "status",
        "created_at",
        "updated_at",
        "score",
        "balance",
        "is_vip",
    ],
}


def arrow_schema() -> pa.Schema:
    """The contract's columns as an Arrow schema (required → not nullable), for the floor runs.

    pyarrow is imported here: the generator itself needs only the standard library.
    """
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("email", pa.string(), nullable=False),
            pa.field("country", pa.string(), nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("age", pa.int32()),
            pa.field("created_at", pa.timestamp("us", "UTC"), nullable=False),
            pa.field("updated_at", pa.timestamp("us", "UTC"), nullable=False),
            pa.field("score", pa.float64(), nullable=False),
            pa.field("balance", pa.decimal128(12, 2), nullable=False),
            pa.field("is_vip", pa.bool_(), nullable=False),
        ]
    )


@dataclass(frozen=True)
class Inputs:
    """Paths of one generated input set."""

    records: int
    seed: int
    singer: Path
    csv: Path


def _iso(seconds: int, millis: int | None = None) -> str:
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{millis:03d}Z" if millis is not None else f"{text}Z"


def rows(records: int, seed: int = DEFAULT_SEED) -> Iterator[tuple[str, ...]]:
    """The rows as already-formatted text cells (JSON literals; '' is null), in COLUMNS order."""
    rng = random.Random(seed)
    rand, bits = rng.random, rng.getrandbits
    names, domains, countries, statuses = _NAMES, _DOMAINS, _COUNTRIES, _STATUSES
    for i in range(1, records + 1):
        created = _EPOCH + i * 60 + bits(6)
        updated = created + bits(24)
        age = "" if rand() < 0.05 else str(bits(8) % 151)
        balance = bits(27) - 20_000_000  # cents, about -200k .. +1.14M
        sign = "-" if balance < 0 else ""
        yield (
            str(i),
            f"{names[bits(6) % len(names)]}.{i}@{domains[bits(3) % len(domains)]}",
            countries[bits(5) % len(countries)],
            statuses[bits(3) % len(statuses)],
            age,
            _iso(created),
            _iso(updated, bits(10) % 1000),
            repr(round(rand() * 100, 4)),
            f"{sign}{abs(balance) // 100}.{abs(balance) % 100:02d}",
            "true" if rand() < 0.1 else "false",
        )


def _state_line(last_id: int) -> str:
    value = {"bookmarks": {STREAM: {"replication_key": "id", "replication_key_value": last_id}}}
    return json.dumps({"type": "STATE", "value": value}, separators=(",", ":")) + "\n"


def write(out_dir: Path, records: int, seed: int = DEFAULT_SEED, force: bool = False) -> Inputs:
    """Write (or reuse) `<out>/people-<N>-s<seed>.singer.jsonl` and `.csv`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"people-{records}-s{seed}"
    inputs = Inputs(records, seed, stem.with_suffix(".singer.jsonl"), stem.with_suffix(".csv"))
    done = stem.with_suffix(".done")
    if done.exists() and inputs.singer.exists() and inputs.csv.exists() and not force:
        return inputs
    done.unlink(missing_ok=True)
    schema = {"type": "SCHEMA", "stream": STREAM, "schema": SINGER_SCHEMA, "key_properties": ["id"]}
    head = f'{{"type":"RECORD","stream":"{STREAM}","record":{{'
    tail = f'}},"time_extracted":"{TIME_EXTRACTED}"}}\n'
    with (
        inputs.singer.open("w", encoding="utf-8", buffering=1 << 20) as singer,
        inputs.csv.open("w", encoding="utf-8", buffering=1 << 20) as table,
    ):
        singer.write(json.dumps(schema, separators=(",", ":")) + "\n")
        table.write(",".join(COLUMNS) + "\n")
        for n, (i, email, country, status, age, created, updated, score, balance, vip) in enumerate(
            rows(records, seed), start=1
        ):
            singer.write(
                f'{head}"id":{i},"email":"{email}","country":"{country}","status":"{status}",'
                f'"age":{age or "null"},"created_at":"{created}","updated_at":"{updated}",'
                f'"score":{score},"balance":{balance},"is_vip":{vip}{tail}'
            )
            table.write(f"{i},{email},{country},{status},{age},{created},{updated},{score},{balance},{vip}\n")
            if n % STATE_EVERY == 0:
                singer.write(_state_line(n))
        if records % STATE_EVERY:
            singer.write(_state_line(records))
    done.write_text(f"{records} {seed}\n")
    return inputs


def main(argv: list[str] | None = None) -> int:
    """CLI: write the input set and print its paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="rewrite even if the files exist")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    inputs = write(args.out, args.records, args.seed, args.force)
    print(f"singer: {inputs.singer}\ncsv:    {inputs.csv}\n({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
