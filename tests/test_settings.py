"""Every setting is declared once: the `--about` schema, the typed `Settings` and its checks agree.

The schema the SDK validates and prints (our declarations plus the SDK's built-in settings) is walked
next to the `Settings` of an empty config: every setting has one entry whose type, default, allowed
values, secret flag and description are the declaration's. No module outside `settings/` reads the
raw config. A bad value fails with a message naming the setting (and the allowed values); through
the CLI that is exit code 2 before any input is read.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, get_origin, get_type_hints

import pytest
from helpers import BIN, record, run_target, schema_msg

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.settings import Settings, config_jsonschema
from target_dativo_iceberg.settings.declare import declared, value_type
from target_dativo_iceberg.target import TargetDativoIceberg

PACKAGE = Path(__file__).resolve().parent.parent / "target_dativo_iceberg"
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (float,),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}


def full_schema() -> dict[str, Any]:
    """What the SDK validates and `--about` prints: our schema plus the SDK's built-in settings."""
    schema = copy.deepcopy(TargetDativoIceberg.config_jsonschema)
    TargetDativoIceberg.append_builtin_config(schema)
    return schema


def walk(props: dict[str, Any], value: Any, prefix: str = "") -> Any:
    """(dotted name, field, schema entry, value) of every declared setting, nested ones too."""
    hints = get_type_hints(type(value))
    for f in fields(value):
        name = prefix + f.name
        assert f.name in props, f"{name} is declared but not in the schema"
        prop, current = props[f.name], getattr(value, f.name)
        yield name, f, prop, current, value_type(hints[f.name])
        if is_dataclass(current):
            yield from walk(prop["properties"], current, f"{name}.")


def plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def test_schema_and_settings_come_from_one_declaration() -> None:
    defaults = Settings.from_config({})
    seen = []
    for name, f, prop, value, kind in walk(full_schema()["properties"], defaults):
        decl = declared(f)
        seen.append(name)
        json_type = next(
            t for t in ([prop["type"]] if isinstance(prop["type"], str) else prop["type"]) if t != "null"
        )
        python_type = get_origin(kind) or kind
        assert python_type in JSON_TYPES[json_type] or (json_type == "object" and is_dataclass(kind)), name
        if decl.derive is not None:
            assert "default" not in prop and "default" in decl.description, name  # said in words
        elif is_dataclass(value):
            assert "default" not in prop, name
        elif "default" in prop:
            assert plain(prop["default"]) == value, name
            assert isinstance(value, JSON_TYPES[json_type]) and not (
                json_type != "boolean" and value is True
            ), name
        else:
            assert value in (None, (), {}, False), f"{name}: default {value!r} is not in the schema"
        assert [plain(v) for v in prop.get("enum", [])] == list(decl.allowed), name
        assert bool(prop.get("secret")) == decl.secret, name
        assert prop.get("description") == decl.description, name
    assert "retry_config.max_conflict_retries" in seen and "connection.s3.session_token" in seen
    # Our schema holds exactly the declared settings, the SDK's built-ins left to the SDK.
    ours = config_jsonschema()["properties"]
    builtins = {
        "add_record_metadata",
        "flattening_enabled",
    }  # load_method is ours: its default depends on the stream
    assert set(ours) == {f.name for f in fields(Settings)} - builtins
    assert not builtins & set(ours) and builtins <= set(full_schema()["properties"])


def test_declared_types_are_the_stored_types() -> None:
    """parquet_target_size_mb is whole MB (integer in the schema, int in Settings); sizes in bytes too."""
    settings = Settings.from_config({"parquet_target_size_mb": 2, "batch_max_file_mb": 0.5})
    assert settings.parquet_target_size_mb == 2 and isinstance(settings.parquet_target_size_mb, int)
    assert settings.parquet_target_bytes == 2 * 1024 * 1024
    assert settings.batch_max_file_bytes == 512 * 1024
    with pytest.raises(ConfigError, match=r"parquet_target_size_mb must be a whole number, got 0\.5"):
        Settings.from_config({"parquet_target_size_mb": 0.5})


def test_no_module_outside_settings_reads_the_raw_config() -> None:
    raw = re.compile(r"\b(?:self|target|dativo)\.config\b|\bconfig\.get\(|\bconfig\[")
    allowed = "Settings.from_config(self.config)"  # where the target builds its Settings
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "settings":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if raw.search(code) and allowed not in code:
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"load_method": "merge"}, "load_method must be one of append-only, upsert, overwrite, got 'merge'"),
        (
            {"catalog_type": "bogus"},
            "catalog_type must be one of sql, rest, nessie, glue, hive, none, got 'bogus'",
        ),
        (
            {"schema_validation_mode": "lenient"},
            "schema_validation_mode must be one of strict, warn, got 'lenient'",
        ),
        ({"hot_path": "maybe"}, "hot_path must be true or false, got 'maybe'"),
        ({"max_snapshots": "many"}, "max_snapshots must be a whole number, got 'many'"),
        ({"max_batch_age_seconds": 0}, "max_batch_age_seconds must be a positive number, got 0.0"),
        ({"max_snapshots": -1}, "max_snapshots must not be negative, got -1"),
        ({"batch_max_file_mb": 0}, "batch_max_file_mb must be a positive number, got 0.0"),
        ({"tenant_id": 7}, "tenant_id must be a string, got 7"),
        ({"partitioning": "day(ts)"}, "partitioning must be a list of strings, got 'day(ts)'"),
        (
            {"connection": {"s3": {"path_style_access": "sideways"}}},
            "connection.s3.path_style_access must be true or false",
        ),
        ({"connection": {"s3": "http://s3"}}, "connection.s3 must be an object, got 'http://s3'"),
        ({"batch_allowed_roots": [""]}, "batch_allowed_roots must be a list of directory paths"),
    ],
)
def test_a_bad_value_names_the_setting(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as failed:
        Settings.from_config(config)
    assert message in str(failed.value)


def test_text_values_and_derived_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATIVO_TEST_SNAPSHOTS", "12")
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_config(
        {
            "tenant_id": "Acme Corp",
            "namespace": "Sales-EU",
            "max_snapshots": "${DATIVO_TEST_SNAPSHOTS}",
            "hot_path": "false",
            "connection": {"s3": {"path_style_access": "true", "session_token": "tok-Zq81x"}},
            "catalog_name": "",  # empty text counts as absent
        }
    )
    assert (settings.branch, settings.namespace, settings.default_namespace) == (
        "Acme Corp",
        "sales_eu",
        "sales_eu",
    )
    assert (settings.max_snapshots, settings.hot_path, settings.catalog_name) == (12, False, "dativo")
    assert settings.connection.s3.given() == {"path_style_access": True, "session_token": "tok-Zq81x"}
    assert settings.s3_file_io_properties()["s3.session-token"] == "tok-Zq81x"
    assert "tok-Zq81x" in settings.secret_values() and "tok-Zq81x" not in repr(settings)
    assert Settings.from_config({}).batch_allowed_roots[0] == str(tmp_path.resolve())
    assert Settings.from_config({"batch_allowed_roots": []}).batch_allowed_roots == ()
    assert Settings.from_config({"tenant_id": "t", "branch": "main"}).branch == "main"


def test_an_invalid_setting_fails_the_run_before_input(tmp_path: Path) -> None:
    """Exit 2, a message naming the setting and its allowed values, nothing written."""
    messages = [schema_msg("things", {"id": {"type": "integer"}}), record("things", id=1)]
    run = run_target(tmp_path / "a", messages, load_method="merge")
    assert run.returncode == 2
    expected = "invalid settings: load_method: expected one of append-only, upsert, overwrite, got 'merge'"
    assert expected in run.stderr
    assert not (tmp_path / "a" / "catalog.db").exists() and not (tmp_path / "a" / "warehouse").exists()
    # A secret given with the wrong type is named by its setting, its value not printed.
    run = run_target(tmp_path / "b", messages, connection={"s3": {"secret_access_key": 98765432109}})
    assert run.returncode == 2
    assert "invalid settings: connection.s3.secret_access_key: expected a string" in run.stderr
    assert "98765432109" not in run.stderr + run.stdout


def test_a_secret_value_is_not_quoted() -> None:
    with pytest.raises(ConfigError) as failed:
        Settings.from_config({"connection": {"s3": {"access_key_id": 98765432109}}})
    assert (
        str(failed.value)
        == "connection.s3.access_key_id must be a string, got a value that is not shown (secret)"
    )


def test_doctor_names_the_bad_setting(tmp_path: Path) -> None:
    config = tmp_path / "target.json"
    config.write_text(json.dumps({"retry_config": {"max_retries": -2}}))
    proc = subprocess.run(
        [str(BIN / "dativo"), "doctor", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "FAILED  config   retry_config.max_retries must not be negative, got -2" in proc.stdout
