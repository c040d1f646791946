"""The `.singer` corpus: each `tests/data/<case>.singer` piped into the target CLI, the outcome
checked against `tests/data/<case>.expected.json` (see tests/data/README.md for the format).

One parametrized test so that a case users hit is one pair of files, not one more test function:
the exit code, every STATE line, stderr messages and events, and what landed in every table, read
back by pyiceberg and by DuckDB (the two readers must agree too).
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from forked import run_target_forked
from helpers import Run, open_catalog, run_target
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table
from pyiceberg.types import ListType, MapType, StructType

from target_dativo_iceberg.ops.readback import duckdb_connection, duckdb_rows, pyiceberg_rows

DATA = Path(__file__).resolve().parent / "data"
REPO = DATA.parent.parent
NAMES = sorted(path.name.removesuffix(".expected.json") for path in DATA.glob("*.expected.json"))


def _expected(case: str) -> dict[str, Any]:
    return json.loads((DATA / f"{case}.expected.json").read_text())


def _input(case: str, expected: dict[str, Any]) -> str:
    """The case's Singer input: `<case>.singer`, or the file its `input` names (another case's)."""
    return expected.get("input", f"{case}.singer")


def _param(case: str) -> Any:
    """A case; one whose expected file says `xfail` (a known bug, named there) must fail until fixed."""
    reason = _expected(case).get("xfail")
    return pytest.param(case, marks=pytest.mark.xfail(reason=reason, strict=True) if reason else ())


CASES = [_param(case) for case in NAMES]
#: Keys an expected file may hold (a typo must fail, not silently check nothing).
CASE_KEYS = {
    *("description", "xfail", "input", "config", "files", "before"),
    *("exit_code", "states", "stderr", "error", "events", "tables", "traceback"),
}
TABLE_KEYS = {"branch", "columns", "order_by", "rows", "row_count", "some_rows"}
ANY, NOT_NULL = "<any>", "<not-null>"
#: `DATIVO_CORPUS_SUBPROCESS=1`: each run a fresh `target-dativo-iceberg` process (slower, ~1 s of
#: imports each) instead of a child forked from a server that imported the target once.
RUN = run_target if os.environ.get("DATIVO_CORPUS_SUBPROCESS") == "1" else run_target_forked


@pytest.fixture(scope="module")
def duck() -> Iterator[Any]:
    """One DuckDB connection (extensions loaded once) for every case."""
    con = duckdb_connection()
    yield con
    con.close()


def _expand(value: Any) -> Any:
    """`{data}` and `{repo}` in config strings become the corpus and checkout directories."""
    if isinstance(value, str):
        return value.replace("{data}", str(DATA)).replace("{repo}", str(REPO))
    if isinstance(value, dict):
        return {key: _expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """A value read back as JSON-like data, so both readers compare with the expected file:
    timestamps with a zone in UTC ISO form; dates, times, decimals (all their digits) as strings."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")  # positional: 1E-10 reads as 0.0000000001
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _project(expected: Any, actual: Any) -> Any:
    """`actual` shaped like `expected` so that `==` (and pytest's diff) checks what the case names:
    a sentinel the value satisfies becomes the sentinel, `{"$json": x}` parses a JSON string,
    `{"$has": {...}}` keeps only the keys named, and a row keeps only the columns named."""
    if expected == ANY:
        return ANY
    if expected == NOT_NULL:
        return NOT_NULL if actual is not None else actual
    if isinstance(expected, dict) and set(expected) == {"$json"} and isinstance(actual, str):
        return {"$json": _project(expected["$json"], json.loads(actual))}
    if isinstance(expected, dict) and set(expected) == {"$has"} and isinstance(actual, dict):
        subset = {key: actual[key] for key in expected["$has"] if key in actual}
        return {"$has": _project(expected["$has"], subset)}
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {
            key: _project(expected[key], actual[key]) if key in expected else actual[key] for key in actual
        }
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [_project(e, a) for e, a in zip(expected, actual, strict=True)]
    if isinstance(expected, bool) != isinstance(actual, bool):  # True == 1 in Python, not here
        return {"$not-the-same-type": actual}
    return actual


def _row(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """A row projected on the columns the expected row names."""
    return _project(expected, {key: actual[key] for key in expected if key in actual})


def _type_name(field_type: Any) -> str:
    if isinstance(field_type, StructType):
        return "struct"
    if isinstance(field_type, ListType):
        return "list"
    if isinstance(field_type, MapType):
        return "map"
    return str(field_type)


def _read(table: Table, branch: str, order_by: list[str], duck: Any) -> list[dict[str, Any]]:
    """The table's rows at the head of `branch`, sorted, after checking both readers agree."""

    def key(row: dict[str, Any]) -> tuple:
        """`order_by` columns (numbers by value, nulls last), then the whole row: a total order."""
        named = [row[col] for col in order_by]
        plain = [
            (v is None, v if isinstance(v, (int, float)) else json.dumps(v, sort_keys=True)) for v in named
        ]
        return *plain, json.dumps(row, sort_keys=True)

    by_pyiceberg = sorted((_plain(row) for row in pyiceberg_rows(table, branch)), key=key)
    names = [field.name for field in table.schema().fields]
    columns = ", ".join(f'"{name}"' for name in names)
    tuples = duckdb_rows(table, branch, f"SELECT {columns} FROM t", duck)
    by_duckdb = sorted((_plain(dict(zip(names, row, strict=True))) for row in tuples), key=key)
    assert by_duckdb == by_pyiceberg, f"{table.name()}: DuckDB and pyiceberg read different rows"
    return by_pyiceberg


def _user_tables(catalog: Catalog) -> set[str]:
    """The data tables (not the run ledger's `_dativo` tables, which every run writes)."""
    namespaces = [ns for ns in catalog.list_namespaces() if ns != ("_dativo",)]
    return {".".join(ident) for ns in namespaces for ident in catalog.list_tables(ns)}


def _check_table(name: str, want: dict[str, Any], catalog: Catalog, branch: str, duck: Any) -> None:
    assert set(want) <= TABLE_KEYS, f"{name}: unknown keys {sorted(set(want) - TABLE_KEYS)}"
    table = catalog.load_table(name)
    if "columns" in want:
        got = {field.name: _type_name(field.field_type) for field in table.schema().fields}
        assert list(got.items()) == list(want["columns"].items()), f"{name}: columns"
    rows = _read(table, want.get("branch", branch), want.get("order_by", []), duck)
    if "rows" in want:
        assert [_row(e, a) for e, a in zip(want["rows"], rows, strict=False)] == want["rows"], name
        assert len(rows) == len(want["rows"]), f"{name}: {len(rows)} rows"
    if "row_count" in want:
        assert len(rows) == want["row_count"], f"{name}: row count"
    for expected in want.get("some_rows", []):
        assert any(_row(expected, row) == expected for row in rows), f"{name}: no row like {expected}"


def _run(case: str, root: Path) -> tuple[dict[str, Any], Run]:
    """Run the case's earlier inputs (each must exit 0), then its own; the expected outcome and the run."""
    expected = _expected(case)
    assert set(expected) <= CASE_KEYS, f"unknown keys {sorted(set(expected) - CASE_KEYS)}"
    assert expected.get("description"), "say in `description` what users hit here"
    config = _expand(expected.get("config", {}))
    root.mkdir()
    for name in expected.get("files", []):  # BATCH files, named relative to the run's directory
        shutil.copy(DATA / name, root / name)
    for item in expected.get("before", []):
        name, overrides = (item, {}) if isinstance(item, str) else (item["singer"], item.get("config", {}))
        before = RUN(root, (DATA / name).read_bytes(), **{**config, **_expand(overrides)})
        assert before.returncode == 0, f"{name}: {before.stderr[-3000:]}"
    return expected, RUN(root, (DATA / _input(case, expected)).read_bytes(), **config)


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str, tmp_path: Path, duck: Any) -> None:
    expected, run = _run(case, tmp_path / "run")
    assert run.returncode == expected["exit_code"], run.stderr[-3000:]
    known = expected.get("traceback")  # a known bug, named: stderr has a traceback until it is fixed
    assert ("Traceback" in run.stderr) == bool(known), known or "bad input is named, not dumped"
    assert run.states == expected.get("states", [])
    for text in expected.get("stderr", []):
        assert text in run.stderr, f"{text!r} not in stderr:\n{run.stderr[-3000:]}"
    for name, count in expected.get("events", {}).items():
        assert len(run.events(name)) == count, f"event {name}"
    finished = run.events("job_finished")
    assert finished and finished[-1]["exit_code"] == run.returncode, "job_finished names the exit code"
    for text in expected.get("error", []):
        assert text in finished[-1].get("error", ""), (
            f"{text!r} not in the error {finished[-1].get('error')!r}"
        )

    tables = expected.get("tables", {})
    catalog_db = tmp_path / "run" / "catalog.db"
    if not catalog_db.exists():
        assert tables == {}, "no catalog was written"
        return
    catalog = open_catalog(tmp_path / "run")
    assert _user_tables(catalog) == set(tables), "tables in the catalog"
    branch = expected.get("config", {}).get("branch", "acme")
    for name, want in tables.items():
        _check_table(name, want, catalog, branch, duck)


def test_every_corpus_file_belongs_to_a_case() -> None:
    """A `.singer` or data file no case reads is a case someone forgot to finish."""
    used = set()
    for case in NAMES:
        expected = _expected(case)
        before = [item if isinstance(item, str) else item["singer"] for item in expected.get("before", [])]
        used |= {_input(case, expected), f"{case}.expected.json", *before, *expected.get("files", [])}
        used |= set(re.findall(r"\{data\}/([^\"]+)", json.dumps(expected)))
    present = {str(path.relative_to(DATA)) for path in DATA.rglob("*") if path.is_file()} - {"README.md"}
    assert present - used == set()
    assert used - present == set()


def _show(case: str) -> None:
    """Print what a case's run did, in the expected file's terms: a start for writing one (check
    every value against what the input should give before copying it)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        expected, run = _run(case, Path(tmp) / "run")
        finished = run.events("job_finished")[-1]
        print(json.dumps({"exit_code": run.returncode, "states": run.states, "error": finished.get("error")}))
        events = sorted({event["event"] for event in run.events()})
        print("events:", {name: len(run.events(name)) for name in events})
        if not (Path(tmp) / "run" / "catalog.db").exists():
            return
        catalog, con = open_catalog(Path(tmp) / "run"), duckdb_connection()
        for name in sorted(_user_tables(catalog)):
            table = catalog.load_table(name)
            print(name, json.dumps({f.name: _type_name(f.field_type) for f in table.schema().fields}))
            for row in _read(table, expected.get("config", {}).get("branch", "acme"), [], con):
                print("   ", json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    import sys

    _show(sys.argv[1])
