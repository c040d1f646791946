"""Bad input through the real target process: every failure names what to fix, streams never merge,
text that is not valid Unicode is a per-record violation.

The `.singer` files in tests/singer_inputs/ are the crafted inputs; `CASES` says what each must do
(exit code, what stderr names, what landed, what was rejected, which STATE was printed). Inputs
that are too big to keep as files (deep nesting) and config errors are tested below them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import PERSON_PROPS, Run, open_catalog, person, record, run_target, schema_msg, state
from pyiceberg.catalog import load_catalog

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

INPUTS = Path(__file__).parent / "singer_inputs"
PERSON = Path(__file__).resolve().parent.parent / "examples" / "contracts" / "person.odcs.yaml"
CONTRACT = {"assets": {"person": str(PERSON)}}


@dataclass
class Case:
    """One corpus file run under one config, and what must come of it."""

    file: str
    config: dict[str, Any]
    code: int
    names: list[str]  # substrings stderr must contain
    landed: dict[str, list[int]] = field(default_factory=dict)  # table → ids on the branch
    rejected: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)  # table → (id, field, rule)
    state: dict[str, Any] | None = None  # the last STATE printed (None: none at all)
    absent: list[str] = field(default_factory=list)  # tables that must not exist


SURROGATE = "contains the lone UTF-16 surrogate"
CASES = {
    "non_latin_streams_collide": Case(
        "table_collision_non_latin.singer",
        {},
        2,
        ["streams '日本' and '中国' both map to Iceberg table 'acme.__'", "stream_maps with __alias__"],
        absent=["acme.__"],
    ),
    "case_only_streams_collide": Case(
        "table_collision_case.singer",
        {"schema_validation_mode": "warn"},
        2,
        ["streams 'Users' and 'users' both map to Iceberg table 'acme.users'"],
        absent=["acme.users"],
    ),
    "resent_schema_is_no_collision": Case(
        "schema_resent.singer",
        {},
        0,
        [],
        landed={"acme.users": [1, 2]},
        state={"bookmarks": {"Users": {"id": 2}}},
    ),
    "surrogate_record_path_warn": Case(
        "lone_surrogate_record_path.singer",
        {"schema_validation_mode": "warn"},
        1,
        ['"rule": "type"'],
        landed={"acme.s": [1, 4]},
        rejected={"acme.s__rejected": [(2, "name", "type"), (3, "extra.k", "type")]},
        state={"bookmarks": {"s": {"id": 4}}},
    ),
    "surrogate_record_path_strict": Case(
        "lone_surrogate_record_path.singer",
        {},
        2,
        [f"stream 's', record 2, field 'name': {SURROGATE} \\ud800", "Nothing of this batch was committed"],
        absent=["acme.s"],
    ),
    "surrogate_hot_path_warn": Case(
        "lone_surrogate_contract.singer",
        {**CONTRACT, "schema_validation_mode": "warn"},
        1,
        ['"path": "hot"'],
        landed={"crm.person": [1, 3]},
        rejected={"crm.person__rejected": [(2, "first_name", "type")]},
        state={"bookmarks": {"person": {"id": 3}}},
    ),
    "surrogate_contract_record_path_warn": Case(
        "lone_surrogate_contract.singer",
        {**CONTRACT, "schema_validation_mode": "warn", "hot_path": False},
        1,
        ['"path": "record"'],
        landed={"crm.person": [1, 3]},
        rejected={"crm.person__rejected": [(2, "first_name", "type")]},
        state={"bookmarks": {"person": {"id": 3}}},
    ),
    "surrogate_contract_strict": Case(
        "lone_surrogate_contract.singer",
        CONTRACT,
        2,
        ["stream 'person' violates contract", "first_name/type: 1 (e.g. record 2: 'Ad\\ud800a')"],
        absent=["crm.person__rejected"],
    ),
    "batch_without_manifest": Case(
        "batch_without_manifest.singer",
        {},
        2,
        [
            "input line 2: BATCH message of stream 's' lacks 'manifest' (a BATCH message needs stream, encoding, manifest)"
        ],
    ),
    "batch_without_encoding": Case(
        "batch_without_encoding.singer",
        {},
        2,
        ["input line 2: BATCH message of stream 's' lacks 'encoding'"],
    ),
    "batch_encoding_without_format": Case(
        "batch_encoding_without_format.singer",
        {},
        2,
        ["input line 2: BATCH message of stream 's' has an 'encoding' without 'format'"],
    ),
    "invalid_utf8": Case(
        "invalid_utf8.singer",
        CONTRACT,
        2,
        ["input line 3: not valid UTF-8 at byte offset", "(0xff)"],
        absent=["crm.person"],
    ),
    "not_json": Case(
        "not_json.singer",
        {},
        2,
        ["input line 3: not valid JSON (Expecting property name enclosed in double quotes at column"],
        absent=["acme.s"],
    ),
    "unknown_message_type": Case(
        "unknown_message_type.singer",
        {},
        2,
        ["input line 2: RECORDS message of stream 's' has type 'RECORDS'; expected one of RECORD, SCHEMA"],
    ),
    "record_not_an_object": Case(
        "record_not_an_object.singer",
        {},
        2,
        ["input line 2: RECORD message of stream 's' has a 'record' that is not a JSON object"],
    ),
}


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return sorted(row["id"] for row in rows)


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    run = run_target(tmp_path, (INPUTS / case.file).read_bytes(), **case.config)
    assert run.returncode == case.code, run.stderr
    for text in case.names:
        assert text in run.stderr
    assert "Traceback" not in run.stderr
    assert (run.states[-1] if run.states else None) == case.state
    catalog = open_catalog(tmp_path)
    for table_name in case.absent:
        assert not catalog.table_exists(table_name) or not pyiceberg_rows(
            catalog.load_table(table_name), "acme"
        )
    for table_name, ids in case.landed.items():
        table = catalog.load_table(table_name)
        assert _ids(pyiceberg_rows(table, "acme")) == ids
        assert sorted(row[0] for row in duckdb_rows(table, "acme", "SELECT id FROM t")) == ids
    for table_name, expected in case.rejected.items():
        rows = duckdb_rows(catalog.load_table(table_name), "acme", "SELECT _record, _errors FROM t")
        found = []
        for text, errors in rows:
            raw = json.loads(text)  # valid JSON whose string still holds the surrogate
            found += [(raw["id"], error["field"], error["rule"]) for error in errors]
            assert any(SURROGATE in error["message"] for error in errors)
        assert sorted(found) == expected


def test_invalid_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    data = (INPUTS / "invalid_utf8.singer").read_bytes()
    offset = data.splitlines()[2].index(b"\xff")
    run = run_target(tmp_path, data)
    assert run.returncode == 2
    assert f"input line 3: not valid UTF-8 at byte offset {offset} of the line (0xff)" in run.stderr


def test_lone_surrogate_in_a_batch_file_is_rejected(tmp_path: Path) -> None:
    """BATCH (JSONL) records of a stream without a contract get the same check as RECORD lines."""
    batch = tmp_path / "batch.jsonl"
    batch.write_text('{"id": 1, "name": "ok"}\n{"id": 2, "name": "\\udbff"}\n')
    messages = [
        schema_msg("s", {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}),
        {"type": "BATCH", "stream": "s", "encoding": {"format": "jsonl"}, "manifest": [batch.as_uri()]},
        state({"bookmarks": {"s": {"done": True}}}),
    ]
    run = run_target(tmp_path, messages, schema_validation_mode="warn", batch_allowed_roots=[str(tmp_path)])
    assert run.returncode == 1, run.stderr
    catalog = open_catalog(tmp_path)
    assert _ids(pyiceberg_rows(catalog.load_table("acme.s"), "acme")) == [1]
    rejected = pyiceberg_rows(catalog.load_table("acme.s__rejected"), "acme")
    assert [(e["field"], e["rule"]) for e in rejected[0]["_errors"]] == [("name", "type")]
    assert run.states == [{"bookmarks": {"s": {"done": True}}}]

    strict = run_target(tmp_path / "strict", messages, batch_allowed_roots=[str(tmp_path)])
    assert strict.returncode == 2
    assert f"stream 's', record 2, field 'name': {SURROGATE} \\udbff" in strict.stderr


def test_schema_violation_without_contract_is_named_and_rejected_in_warn_mode(tmp_path: Path) -> None:
    messages = [
        schema_msg("s", {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}, ["id"]),
        record("s", id=1, name="ok"),
        record("s", id="abc", name="x"),
        record("s", name="no key"),
        state({"bookmarks": {"s": {"id": 3}}}),
    ]
    strict = run_target(tmp_path / "strict", messages)
    assert strict.returncode == 2
    assert "stream 's', record 2, field 'id': 'abc' is not of type 'integer'" in strict.stderr
    assert strict.states == []

    warn = run_target(tmp_path / "warn", messages, schema_validation_mode="warn")
    assert warn.returncode == 1, warn.stderr
    catalog = open_catalog(tmp_path / "warn")
    assert _ids(pyiceberg_rows(catalog.load_table("acme.s"), "acme")) == [1]
    rejected = pyiceberg_rows(catalog.load_table("acme.s__rejected"), "acme")
    reasons = sorted((e["field"], e["rule"]) for row in rejected for e in row["_errors"])
    assert reasons == [("id", "required"), ("id", "type")]
    assert warn.states == [{"bookmarks": {"s": {"id": 3}}}]


def test_colliding_stream_renamed_with_stream_maps_lands_apart(tmp_path: Path) -> None:
    """The fix the collision message suggests works: an alias gives the stream its own table."""
    data = (INPUTS / "table_collision_non_latin.singer").read_bytes()
    run = run_target(tmp_path, data, stream_maps={"中国": {"__alias__": "zhongguo"}})
    assert run.returncode == 0, run.stderr
    catalog = open_catalog(tmp_path)
    assert _ids(pyiceberg_rows(catalog.load_table("acme.__"), "acme")) == [1]
    assert _ids(pyiceberg_rows(catalog.load_table("acme.zhongguo"), "acme")) == [2]


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
    assert not catalog.table_exists("crm.person") or not pyiceberg_rows(
        catalog.load_table("crm.person"), "acme"
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
