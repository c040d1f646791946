"""Bad input built in code through the real target process: values nested too deep for a file to
hold (named, never dumped, never crashing Arrow) and settings that are wrong (named with what they take).

Crafted Singer inputs that fit in a file are cases of the `.singer` corpus (tests/data/, run by
tests/test_corpus.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import PERSON_PROPS, Run, open_catalog, person, record, run_target, schema_msg, state
from pyiceberg.catalog import load_catalog

from target_dativo_iceberg.ops.readback import pyiceberg_rows

PERSON = Path(__file__).resolve().parent.parent / "examples" / "contracts" / "person.odcs.yaml"
CONTRACT = {"assets": {"person": str(PERSON)}}


# ---------------------------------------------------------------- deep nesting


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def _deep_line(stream: str, values: dict[str, Any], key: str, levels: int) -> str:
    line = json.dumps(record(stream, **values, **{key: "DEEP"}))
    return line.replace('"DEEP"', _deep(levels))


def _assert_named_not_dumped(run: Run, where: str) -> None:
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"{where}: value nested more than 100 levels deep" in run.stderr
    assert "RecursionError" not in run.stderr and "<exception str() failed>" not in run.stderr
    assert not re.search(r"\[{100}", run.stderr)  # a preview, not the value


@pytest.mark.parametrize("levels", [900, 10_000])
def test_deep_value_on_the_record_path_is_named(tmp_path: Path, levels: int) -> None:
    props = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}
    text = json.dumps(schema_msg("s", props)) + "\n" + _deep_line("s", {"id": 1}, "name", levels) + "\n"
    run = run_target(tmp_path, text, schema_validation_mode="warn")
    _assert_named_not_dumped(run, "input line 2, stream 's', record 1, field 'name'")


def test_deep_value_on_the_hot_path_is_named_and_does_not_crash_arrow(tmp_path: Path) -> None:
    """Arrow crashes the process (SIGSEGV) on values a few thousand levels deep."""
    lines = [
        json.dumps(schema_msg("person", PERSON_PROPS, ["id"])),
        json.dumps(person(1)),
        _deep_line("person", {k: v for k, v in person(2)["record"].items() if k != "age"}, "age", 100_000),
    ]
    run = run_target(tmp_path, "\n".join(lines) + "\n", **CONTRACT)
    _assert_named_not_dumped(run, "input line 3, stream 'person', record 2, field 'age'")
    catalog = open_catalog(tmp_path)
    assert not catalog.table_exists("acme__crm.person") or not pyiceberg_rows(
        catalog.load_table("acme__crm.person"), "acme"
    )


def test_nesting_up_to_the_limit_lands(tmp_path: Path) -> None:
    """100 levels per line, the message and the record object included: a value may nest 98 deep."""
    props = {"id": {"type": "integer"}, "doc": {}}
    ok = [json.dumps(schema_msg("s", props)), _deep_line("s", {"id": 1}, "doc", 98)]
    run = run_target(tmp_path / "ok", "\n".join(ok) + "\n")
    assert run.returncode == 0, run.stderr
    rows = pyiceberg_rows(open_catalog(tmp_path / "ok").load_table("acme.s"), "acme")
    assert rows == [{"id": 1, "doc": _deep(98)}]

    over = [json.dumps(schema_msg("s", props)), _deep_line("s", {"id": 1}, "doc", 99)]
    _assert_named_not_dumped(
        run_target(tmp_path / "over", "\n".join(over) + "\n"),
        "input line 2, stream 's', record 1, field 'doc'",
    )


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        (
            {"load_method": "merge"},
            "load_method: expected one of append-only, upsert, overwrite, got 'merge'",
        ),
        ({"batch_size_rows": "abc"}, "batch_size_rows: expected an integer, got 'abc'"),
        (
            {"schema_validation_mode": "loose"},
            "schema_validation_mode: expected one of strict, warn, got 'loose'",
        ),
        ({"retry_config": {"max_retries": "x"}}, "retry_config.max_retries: expected an integer, got 'x'"),
    ],
)
def test_invalid_setting_is_named_with_what_it_takes(tmp_path: Path, setting: dict, named: str) -> None:
    run = run_target(tmp_path, "", **setting)
    assert run.returncode == 2
    assert f"invalid settings: {named}" in run.stderr
    assert "Traceback" not in run.stderr


def test_invalid_secret_setting_is_named_without_its_value(tmp_path: Path) -> None:
    run = run_target(tmp_path, "", connection={"s3": {"secret_access_key": 987654321}})
    assert run.returncode == 2
    assert "invalid settings: connection.s3.secret_access_key: expected a string" in run.stderr
    assert "987654321" not in run.stderr


def test_sqlite_catalog_in_a_missing_absolute_directory_is_created(tmp_path: Path) -> None:
    db = tmp_path / "not" / "yet" / "catalog.db"
    messages = [schema_msg("s", {"id": {"type": "integer"}}), record("s", id=7), state({"done": 1})]
    run = run_target(tmp_path, messages, catalog_uri=f"sqlite:///{db}")
    assert run.returncode == 0, run.stderr
    assert run.states == [{"done": 1}]
    catalog = load_catalog(
        "dativo", type="sql", uri=f"sqlite:///{db}", warehouse=(tmp_path / "warehouse").as_uri()
    )
    assert pyiceberg_rows(catalog.load_table("acme.s"), "acme") == [{"id": 7}]


def test_sqlite_catalog_directory_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run = run_target(tmp_path, "", catalog_uri=f"sqlite:///{blocker}/sub/catalog.db")
    assert run.returncode == 2
    assert (
        f"cannot create directory {blocker}/sub for catalog_uri (the SQLite catalog file's directory): "
        "Not a directory"
    ) in run.stderr
