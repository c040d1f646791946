"""Shared test helpers: run the target CLI, open the catalog it wrote, read tables back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog, load_catalog

BIN = Path(sys.executable).parent


@dataclass
class Run:
    """Outcome of one target process."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list[dict[str, Any]]:
        """STATE values the target printed, in order."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Structured events from stderr (optionally only those named `name`)."""
        out = []
        for line in self.stderr.splitlines():
            if line.startswith("{") and '"event"' in line:
                event = json.loads(line)
                if name is None or event["event"] == name:
                    out.append(event)
        return out


def target_config(root: Path, **extra: Any) -> dict[str, Any]:
    """A config writing to an embedded catalog under `root`."""
    return {
        "tenant_id": "acme",
        "catalog_uri": f"sqlite:///{root}/catalog.db",
        "warehouse": str(root / "warehouse"),
        **extra,
    }


def singer_lines(messages: list[dict[str, Any]]) -> str:
    """Messages as a Singer stream."""
    return "".join(json.dumps(m) + "\n" for m in messages)


def run_target(
    root: Path, messages: list[dict[str, Any]] | str | bytes, env: dict[str, str] | None = None, **config: Any
) -> Run:
    """Run the target CLI with a config under `root`, the messages on stdin (bytes: as they are)."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "target.json"
    cfg.write_text(json.dumps(target_config(root, **config)))
    text = messages if isinstance(messages, (str, bytes)) else singer_lines(messages)
    proc = subprocess.run(
        [str(BIN / "target-dativo-iceberg"), "--config", str(cfg)],
        input=text.encode() if isinstance(text, str) else text,
        capture_output=True,
        cwd=root,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    return Run(proc.returncode, proc.stdout.decode(), proc.stderr.decode(errors="replace"))


def open_catalog(root: Path) -> Catalog:
    """The embedded catalog a target run with `target_config(root)` wrote to."""
    return load_catalog(
        "dativo", type="sql", uri=f"sqlite:///{root}/catalog.db", warehouse=(root / "warehouse").as_uri()
    )


def schema_msg(stream: str, properties: dict[str, Any], keys: list[str] | None = None, **extra: Any) -> dict:
    """A SCHEMA message."""
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties, **extra},
        "key_properties": keys or [],
    }


def record(stream: str, **values: Any) -> dict:
    """A RECORD message."""
    return {"type": "RECORD", "stream": stream, "record": values}


def state(value: dict[str, Any]) -> dict:
    """A STATE message."""
    return {"type": "STATE", "value": value}


#: SCHEMA properties of the examples/ person stream (as tap-dativo-csv would type it).
PERSON_PROPS: dict[str, Any] = {
    "id": {"type": ["integer", "null"]},
    "email": {"type": ["string", "null"]},
    "first_name": {"type": ["string", "null"]},
    "last_name": {"type": ["string", "null"]},
    "status": {"type": ["string", "null"]},
    "age": {"type": ["integer", "null"]},
    "country": {"type": ["string", "null"]},
    "signup_date": {"type": ["string", "null"], "format": "date"},
    "updated_at": {"type": ["string", "null"], "format": "date-time"},
}


def person(i: int, **overrides: Any) -> dict:
    """A RECORD valid under examples/contracts/person.odcs.yaml, with `overrides` applied."""
    values = {
        "id": i,
        "email": f"user{i}@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "status": "active",
        "age": 30 + i,
        "country": "NO" if i % 2 else "SE",
        "signup_date": "2024-01-02",
        "updated_at": "2025-01-01T12:00:00Z",
    }
    values.update(overrides)
    return record("person", **values)


# --------------------------------------------------------------------------- secrets

#: The example ODCS contract of the `person` stream.
PERSON = Path(__file__).resolve().parent.parent / "examples" / "contracts" / "person.odcs.yaml"
USERS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}


def secret_probe_messages() -> list[dict]:
    """A plain stream and a contract stream in warn mode (so a rejected-records table exists too);
    run with `assets={"person": str(PERSON)}, schema_validation_mode="warn"` it exits 1 (partial)."""
    return [
        schema_msg("users", USERS, ["id"]),
        record("users", id=1, name="one"),
        record("users", id=2, name="two"),
        schema_msg("person", PERSON_PROPS, ["id"]),
        person(1),
        person(2, status="deleted"),
        state({"bookmarks": {"users": {"n": 2}, "person": {"n": 2}}}),
    ]


def written_text(catalog: Catalog) -> dict[str, str]:
    """Everything the target wrote that a secret could hide in, per table: summaries, properties, metadata."""
    out: dict[str, str] = {}
    for namespace in catalog.list_namespaces():
        for ident in catalog.list_tables(namespace):
            table = catalog.load_table(ident)
            name = ".".join(ident)
            summaries = [s.summary.model_dump() if s.summary else {} for s in table.metadata.snapshots]
            out[f"{name} summaries"] = json.dumps(summaries)
            out[f"{name} properties"] = json.dumps(table.properties)
            files = [table.metadata_location, *(entry.metadata_file for entry in table.metadata.metadata_log)]
            for location in files:
                with table.io.new_input(location).open() as stream:
                    out[location] = stream.read().decode()
    return out


def assert_no_secret(secrets: list[str], run: Run, catalog: Catalog | None = None) -> None:
    """No secret in the run's stdout/stderr nor (with `catalog`, after `secret_probe_messages`) in
    any snapshot summary, table properties or metadata file of the three tables written."""
    for secret in secrets:
        assert len(secret) >= 8, "secret too short to be a meaningful probe"
        assert secret not in run.stdout, "secret in stdout"
        assert secret not in run.stderr, "secret in stderr"
    if catalog is None:
        return
    written = written_text(catalog)
    assert any("__rejected" in key for key in written), sorted(written)  # all three tables checked
    assert sum(1 for key in written if key.endswith(".metadata.json")) >= 6
    for where, text in written.items():
        for secret in secrets:
            assert secret not in text, f"secret in {where}"


CRASH_TAP = Path(__file__).with_name("crash_tap.py")


def crash_pipeline(
    root: Path, settings: dict[str, Any], tap_args: list[str], state: dict | None, fault: str | None
) -> subprocess.CompletedProcess:
    """`crash_tap.py TAP_ARGS [--state]` piped into the target with `settings` (a config under
    `root`) and `DATIVO_FAULT=fault`; the target's outcome (stdout: its STATE lines)."""
    config = root / "target.json"
    config.write_text(json.dumps(settings))
    tap_cmd = [sys.executable, str(CRASH_TAP), *tap_args]
    if state is not None:
        state_file = root / "state.json"
        state_file.write_text(json.dumps(state))
        tap_cmd += ["--state", str(state_file)]
    tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE)
    target = subprocess.run(
        [str(BIN / "target-dativo-iceberg"), "--config", str(config)],
        stdin=tap.stdout,
        capture_output=True,
        text=True,
        cwd=root,
        env={"PATH": str(BIN), "DATIVO_FAULT": fault or ""},
        timeout=300,
    )
    tap.wait(timeout=60)
    return target


def start_target(config: Path, cwd: Path) -> subprocess.Popen:
    """The target CLI with `config`, stdin/stdout/stderr as text pipes (the test feeds and reads it)."""
    return subprocess.Popen(
        [str(BIN / "target-dativo-iceberg"), "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def lab_contracts(root: Path, streams: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Minimal ODCS contracts (`id` bigint primary key, `v` string; namespace `lab`) for the crash
    tap's streams (domain `lab`), written under `root`: the `assets` setting."""
    import yaml

    assets = {}
    for index, name in enumerate(streams):
        path = root / f"{name}.yaml"
        contract = {
            "$schema": "schemas/odcs/dativo-odcs-3.0.2-extended.schema.json",
            "apiVersion": "v3.0.2",
            "kind": "DataContract",
            "id": f"0b6f3c4e-0000-4000-8000-00000000001{index}",
            "name": name,
            "version": "1.0",
            "domain": "lab",
            "dataProduct": "signals",
            "schema": [
                {"name": "id", "type": "bigint", "required": True, "primary_key": True},
                {"name": "v", "type": "string"},
            ],
        }
        path.write_text(yaml.safe_dump(contract))
        assets[name] = str(path)
    return assets
