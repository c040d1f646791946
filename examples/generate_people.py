"""Write examples/data/people.csv: deterministic sample people for the demo (stdlib only).

The output is byte-for-byte stable for a given seed and row count, so the committed CSV can be
regenerated and diffed. Column names equal the properties of examples/contracts/person.odcs.yaml.

    python examples/generate_people.py [--rows 2500] [--seed 42] [--out examples/data/people.csv]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import random
from pathlib import Path

FIRST_NAMES = [
    "Ada",
    "Alan",
    "Alice",
    "Amara",
    "Ana",
    "Arjun",
    "Ben",
    "Carla",
    "Chen",
    "Chloe",
    "Dara",
    "David",
    "Elena",
    "Emma",
    "Farah",
    "Felix",
    "Grace",
    "Hana",
    "Hugo",
    "Ines",
    "Ivan",
    "Jamal",
    "Jana",
    "Jonas",
    "Kai",
    "Kenji",
    "Lara",
    "Leo",
    "Lina",
    "Luca",
    "Maya",
    "Mateo",
    "Mia",
    "Nadia",
    "Nina",
    "Noah",
    "Olga",
    "Omar",
    "Pablo",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Sara",
    "Sofia",
    "Tariq",
    "Tess",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
    "Yusuf",
    "Zoe",
]
LAST_NAMES = [
    "Abbott",
    "Alvarez",
    "Berg",
    "Brown",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Hansen",
    "Ito",
    "Jensen",
    "Kim",
    "Kowalski",
    "Lee",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Nakamura",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Quinn",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Smith",
    "Tanaka",
    "Torres",
    "Nguyen",
    "Varga",
    "Wagner",
    "Weber",
    "Wong",
    "Young",
    "Zhang",
]
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "PL", "BR", "IN", "JP", "CA", "AU", "NG")
DOMAINS = ("example.com", "mail.example.org", "corp.example.net", "example.io")
STATUSES = ("active", "inactive", "banned")
STATUS_WEIGHTS = (80, 17, 3)
COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "status",
    "age",
    "country",
    "signup_date",
    "updated_at",
)
EPOCH = datetime.date(2020, 1, 1)
UPDATED_UNTIL = datetime.datetime(2025, 11, 1, tzinfo=datetime.timezone.utc)


def make_row(rng: random.Random, person_id: int) -> dict[str, str]:
    """One person; about 5% have no age, to exercise nullable columns."""
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    signup = EPOCH + datetime.timedelta(days=rng.randrange(0, 365 * 5 + 300))
    signup_at = datetime.datetime.combine(signup, datetime.time(), tzinfo=datetime.timezone.utc)
    span = int((UPDATED_UNTIL - signup_at).total_seconds())
    updated = signup_at + datetime.timedelta(seconds=rng.randrange(0, max(span, 1)))
    age = "" if rng.random() < 0.05 else str(min(150, max(0, int(rng.gauss(40, 15)))))
    return {
        "id": str(person_id),
        "email": f"{first}.{last}{person_id}@{rng.choice(DOMAINS)}".lower(),
        "first_name": first,
        "last_name": last,
        "status": rng.choices(STATUSES, weights=STATUS_WEIGHTS)[0],
        "age": age,
        "country": rng.choice(COUNTRIES),
        "signup_date": signup.isoformat(),
        "updated_at": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def generate(out: Path, rows: int = 2500, seed: int = 42) -> Path:
    """Write `rows` people to `out` and return the path."""
    rng = random.Random(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for person_id in range(1, rows + 1):
            writer.writerow(make_row(rng, person_id))
    return out


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "people.csv")
    args = parser.parse_args()
    path = generate(args.out, args.rows, args.seed)
    print(f"wrote {args.rows} rows to {path}")


if __name__ == "__main__":
    main()
