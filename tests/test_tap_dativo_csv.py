"""Tests for tap-dativo-csv: SDK standard tap tests plus CLI runs asserting on Singer messages."""

from __future__ import annotations

import atexit
import csv
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_dativo_csv.tap import TapDativoCSV

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CSV = ROOT / "examples" / "data" / "people.csv"
EXAMPLE_CONTRACT = ROOT / "examples" / "contracts" / "person.odcs.yaml"
TAP_EXE = Path(sys.executable).with_name("tap-dativo-csv")
TAP = str(TAP_EXE) if TAP_EXE.exists() else (shutil.which("tap-dativo-csv") or "tap-dativo-csv")

CONTRACT_YAML = """\
apiVersion: v3.0.2
kind: DataContract
id: test-person
version: 1.0.0
status: active
name: person
schema:
  - name: person
    physicalName: person
    logicalType: object
    properties:
      - {name: id, logicalType: integer, physicalType: bigint, required: true, primaryKey: true}
      - {name: name, logicalType: string, required: true}
      - {name: score, logicalType: number}
      - {name: active, logicalType: boolean}
      - {name: born, logicalType: date}
      - {name: seen_at, logicalType: date, physicalType: timestamp, required: true}
"""
HEADER = ["id", "name", "score", "active", "born", "seen_at"]


def person_row(i: int) -> list[str]:
    """A valid row for CONTRACT_YAML; every third row has empty optional cells."""
    empty = i % 3 == 0
    return [
        str(i),
        f"name-{i}",
        "" if empty else f"{i}.5",
        "" if empty else ("true" if i % 2 else "false"),
        "" if empty else f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10}",
        f"2025-01-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
    ]


def write_csv(path: Path, rows: list[list[str]], header: list[str] | None = HEADER) -> Path:
    """Write a CSV file (header first unless None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def write_people(path: Path, start: int, count: int) -> Path:
    """Write `count` contract-valid people with ids from `start`."""
    return write_csv(path, [person_row(i) for i in range(start, start + count)])


# -- Singer SDK standard tests -------------------------------------------------------------------
# The factory instantiates the tap when the class is defined, so the data must exist at import time.

_STANDARD_DIR = Path(tempfile.mkdtemp(prefix="tap-dativo-csv-std-"))
atexit.register(shutil.rmtree, _STANDARD_DIR, True)
(_STANDARD_DIR / "person.odcs.yaml").write_text(CONTRACT_YAML, encoding="utf-8")
write_people(_STANDARD_DIR / "people" / "a.csv", 1, 40)
write_people(_STANDARD_DIR / "people" / "b.csv", 41, 40)
write_csv(_STANDARD_DIR / "plain.csv", [["1", "x", "007"], ["2", "", "8"]], header=["k", "v", "code"])

STANDARD_CONFIG: dict[str, Any] = {
    "files": [
        {
            "path": str(_STANDARD_DIR / "people" / "*.csv"),
            "object": "person",
            "asset": str(_STANDARD_DIR / "person.odcs.yaml"),
        },
        {"path": str(_STANDARD_DIR / "plain.csv"), "object": "plain", "primary_keys": ["k"]},
    ],
}

# No standard test is excluded.
TestTapDativoCSVStandard = get_tap_test_class(
    TapDativoCSV,
    config=STANDARD_CONFIG,
    suite_config=SuiteConfig(max_records_limit=None),
)


# -- CLI helpers ---------------------------------------------------------------------------------


@dataclass
class TapRun:
    """Parsed output of one tap subprocess."""

    returncode: int
    messages: list[dict[str, Any]]
    stderr: str

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        """Record payloads, optionally for one stream."""
        return [
            m["record"]
            for m in self.messages
            if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)
        ]

    @property
    def states(self) -> list[dict[str, Any]]:
        """Values of every STATE message, in order."""
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, Any]:
        """The last STATE value (what Meltano would persist)."""
        assert self.states, f"no STATE emitted; stderr:\n{self.stderr}"
        return self.states[-1]

    def schema(self, stream: str) -> dict[str, Any]:
        """The SCHEMA message of one stream."""
        return next(m for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream)


def run_tap(
    tmp_path: Path,
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    *args: str,
    check: bool = True,
) -> TapRun:
    """Run the installed console script with config (and state) files, like Meltano does."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    cmd = [TAP, "--config", str(config_file), *args]
    if state is not None:
        state_file = tmp_path / "state.json"
        state_file.write_text(json.dumps(state), encoding="utf-8")
        cmd += ["--state", str(state_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return TapRun(proc.returncode, messages, proc.stderr)


def mtime_iso(path: Path) -> str:
    """The bookmark form of a file's mtime."""
    micros = os.stat(path).st_mtime_ns // 1000
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        microseconds=micros
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bookmarks(state: dict[str, Any], stream: str) -> dict[str, str]:
    """path -> last_modified of every per-file bookmark of a stream."""
    parts = state["bookmarks"][stream]["partitions"]
    return {p["context"]["path"]: p.get("last_modified") for p in parts}


def set_mtime(path: Path, when: float) -> None:
    """Set atime and mtime of a file (seconds since the epoch)."""
    os.utime(path, (when, when))


# -- CLI behaviour -------------------------------------------------------------------------------


def test_about_json_lists_every_setting_with_description() -> None:
    """--about --format json works and every (nested) setting carries a description."""
    proc = subprocess.run([TAP, "--about", "--format", "json"], capture_output=True, text=True, check=True)
    about = json.loads(proc.stdout)
    assert about["name"] == "tap-dativo-csv"
    settings = about["settings"]["properties"]
    expected = {
        "files",
        "incremental",
        "chunk_size",
        "delimiter",
        "quotechar",
        "encoding",
        "header",
        "null_values",
        "infer_types",
        "connection",
        "escapechar",
        "skip_rows",
        "column_names",
        "on_bad_rows",
        "infer_sample_rows",
        "add_metadata_columns",
    }
    assert expected <= set(settings)
    assert about["settings"]["required"] == ["files"]
    s3 = settings["connection"]["properties"]["s3"]["properties"]
    assert all(s3[k]["secret"] is True for k in ("access_key_id", "secret_access_key", "session_token"))
    assert (
        settings["on_bad_rows"]["default"] == "fail" and settings["add_metadata_columns"]["default"] is False
    )
    assert settings["incremental"]["properties"]["strategy"]["default"] == "file_modified_time"

    def walk(props: dict[str, Any], prefix: str = "") -> None:
        for name, spec in props.items():
            assert spec.get("description"), f"setting {prefix}{name} has no description"
            nested = spec.get("properties") or (spec.get("items") or {}).get("properties")
            if nested:
                walk(nested, f"{prefix}{name}.")

    walk(settings)


def test_version() -> None:
    """--version reports the package version (package_name = dativo-ingest)."""
    proc = subprocess.run([TAP, "--version"], capture_output=True, text=True, check=True)
    assert "tap-dativo-csv v0.1.0" in proc.stdout


def test_example_people_with_contract(tmp_path: Path) -> None:
    """The shipped example: 2500 typed records, key from the contract, bookmark per file."""
    config = {
        "files": [{"path": "examples/data/people.csv", "object": "person", "asset": str(EXAMPLE_CONTRACT)}]
    }
    run = run_tap(tmp_path, config)
    records = run.records("person")
    assert len(records) == 2500
    schema = run.schema("person")
    assert schema["key_properties"] == ["id"]
    props = schema["schema"]["properties"]
    assert props["id"]["type"] == "integer"
    assert props["age"]["type"] == ["integer", "null"]
    assert props["updated_at"]["format"] == "date-time"
    assert props["signup_date"]["format"] == "date"
    assert list(records[0]) == list(props)
    assert [r["id"] for r in records] == list(range(1, 2501))
    assert all(isinstance(r["age"], int) or r["age"] is None for r in records)
    assert any(r["age"] is None for r in records)
    assert {r["status"] for r in records} == {"active", "inactive", "banned"}
    first = records[0]
    datetime.date.fromisoformat(first["signup_date"])
    assert first["updated_at"].endswith("Z")
    datetime.datetime.fromisoformat(first["updated_at"].replace("Z", "+00:00"))
    assert bookmarks(run.final_state, "person") == {"examples/data/people.csv": mtime_iso(EXAMPLE_CSV)}


def test_typed_values_with_contract(tmp_path: Path) -> None:
    """Contract types give JSON ints/floats/bools/dates/timestamps; bad values pass through raw."""
    contract = tmp_path / "person.odcs.yaml"
    contract.write_text(CONTRACT_YAML, encoding="utf-8")
    rows = [person_row(1), person_row(3), ["3", "bad", "x", "maybe", "2024-13-01", "2025-01-01 08:00:00"]]
    data = write_csv(tmp_path / "p.csv", rows)
    run = run_tap(tmp_path, {"files": [{"path": str(data), "object": "person", "asset": str(contract)}]})
    one, three, bad = run.records("person")
    assert one == {
        "id": 1,
        "name": "name-1",
        "score": 1.5,
        "active": True,
        "born": "1951-02-11",
        "seen_at": "2025-01-02T10:01:00.000000Z",
    }
    assert three["score"] is None and three["active"] is None and three["born"] is None
    assert bad["id"] == 3
    assert bad["score"] == "x" and bad["active"] == "maybe" and bad["born"] == "2024-13-01"
    assert bad["seen_at"] == "2025-01-01T08:00:00.000000Z"
    assert run.schema("person")["key_properties"] == ["id"]


def test_strings_without_contract_and_inferred_types(tmp_path: Path) -> None:
    """Without a contract everything is a nullable string; infer_types types from a sample."""
    data = write_csv(
        tmp_path / "t.csv", [["007", "1.5", "true", "x"], ["8", "", "false", ""]], ["a", "b", "c", "d"]
    )
    run = run_tap(tmp_path, {"files": [{"path": str(data), "object": "t"}]})
    assert run.records() == [
        {"a": "007", "b": "1.5", "c": "true", "d": "x"},
        {"a": "8", "b": None, "c": "false", "d": None},
    ]
    props = run.schema("t")["schema"]["properties"]
    assert all(p == {"type": ["string", "null"]} for p in props.values())

    run = run_tap(tmp_path, {"files": [{"path": str(data), "object": "t"}], "infer_types": True})
    props = run.schema("t")["schema"]["properties"]
    assert [props[c]["type"][0] for c in "abcd"] == ["integer", "number", "boolean", "string"]
    assert run.records() == [
        {"a": 7, "b": 1.5, "c": True, "d": "x"},
        {"a": 8, "b": None, "c": False, "d": None},
    ]


def test_dialect_settings(tmp_path: Path) -> None:
    """delimiter, quotechar, encoding, null_values and header: false (names from the contract)."""
    data = tmp_path / "d.csv"
    data.write_bytes("1;'Zoë; Ünal';NA\n2;Bo;7\n".encode("latin-1"))
    contract = tmp_path / "c.yaml"
    contract.write_text(
        "apiVersion: v3.0.2\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\nschema:\n"
        "  - name: d\n    properties:\n      - {name: id, logicalType: integer}\n"
        "      - {name: who, logicalType: string}\n      - {name: n, logicalType: integer}\n",
        encoding="utf-8",
    )
    config = {
        "files": [{"path": str(data), "object": "d", "asset": str(contract)}],
        "delimiter": ";",
        "quotechar": "'",
        "encoding": "latin-1",
        "null_values": ["NA"],
        "header": False,
    }
    assert run_tap(tmp_path, config).records() == [
        {"id": 1, "who": "Zoë; Ünal", "n": None},
        {"id": 2, "who": "Bo", "n": 7},
    ]


def test_one_stream_per_object_and_union_of_columns(tmp_path: Path) -> None:
    """Files of one object feed one stream in path order; another object is its own stream."""
    write_csv(tmp_path / "in" / "b.csv", [["3", "c"]], ["id", "x"])
    write_csv(tmp_path / "in" / "a.csv", [["1", "a"], ["2", "b"]], ["id", "y"])
    write_csv(tmp_path / "other.csv", [["9"]], ["z"])
    config = {
        "files": [
            {"path": str(tmp_path / "in" / "*.csv"), "object": "things"},
            {"path": str(tmp_path / "other.csv"), "object": "others"},
        ]
    }
    run = run_tap(tmp_path, config)
    assert run.records("things") == [
        {"id": "1", "y": "a", "x": None},
        {"id": "2", "y": "b", "x": None},
        {"id": "3", "x": "c", "y": None},
    ]
    assert list(run.schema("things")["schema"]["properties"]) == ["id", "y", "x"]
    assert run.records("others") == [{"z": "9"}]
    assert set(run.final_state["bookmarks"]) == {"things", "others"}
    assert len(bookmarks(run.final_state, "things")) == 2


def test_bad_path_fails_naming_path(tmp_path: Path) -> None:
    """A missing file or an empty glob exits non-zero with the path in the message."""
    for path in (tmp_path / "missing.csv", tmp_path / "nothing" / "*.csv"):
        run = run_tap(tmp_path, {"files": [{"path": str(path), "object": "x"}]}, check=False)
        assert run.returncode != 0
        assert str(path) in run.stderr
        assert "Traceback" not in run.stderr
        disc = run_tap(
            tmp_path, {"files": [{"path": str(path), "object": "x"}]}, None, "--discover", check=False
        )
        assert disc.returncode != 0 and str(path) in disc.stderr


def test_malformed_csv_names_file_and_line(tmp_path: Path) -> None:
    """A row with the wrong number of fields fails the run with file and line in the message."""
    data = tmp_path / "broken.csv"
    data.write_text("a,b\n1,2\n3,4\n5\n6,7\n", encoding="utf-8")
    run = run_tap(tmp_path, {"files": [{"path": str(data), "object": "x"}]}, check=False)
    assert run.returncode != 0
    assert f"{data}: malformed CSV at line 4" in run.stderr


def test_config_errors_are_clear(tmp_path: Path) -> None:
    """Unsupported schemes and inconsistent settings fail with a clear message."""
    data = write_csv(tmp_path / "a.csv", [["1"]], ["id"])
    run = run_tap(tmp_path, {"files": [{"path": "gs://bucket/people/*.csv", "object": "a"}]}, check=False)
    assert run.returncode != 0 and "gs://bucket/people/*.csv" in run.stderr and "not supported" in run.stderr

    run = run_tap(
        tmp_path, {"files": [{"path": str(data), "object": "a", "primary_keys": ["nope"]}]}, check=False
    )
    assert run.returncode != 0 and "nope" in run.stderr

    config = {"files": [{"path": str(data), "object": "a"}], "incremental": {"strategy": "replication_key"}}
    run = run_tap(tmp_path, config, check=False)
    assert run.returncode != 0 and "needs `replication_key`" in run.stderr

    config = {
        "files": [{"path": str(data), "object": "a", "replication_key": "ts"}],
        "incremental": {"strategy": "replication_key"},
    }
    run = run_tap(tmp_path, config, check=False)
    assert run.returncode != 0 and "'ts' not found" in run.stderr

    run = run_tap(tmp_path, {"files": [{"path": str(data), "object": "a", "pk": ["id"]}]}, check=False)
    assert run.returncode != 0 and "pk" in run.stderr


def test_contract_problems_fail_naming_stream_and_contract(tmp_path: Path) -> None:
    """A missing or unusable contract stops the tap (exit 1, no traceback) naming stream and file."""
    data = write_csv(tmp_path / "a.csv", [["1"]], ["id"])
    empty = tmp_path / "empty.odcs.yaml"
    empty.write_text("schema:\n  - name: a\n    properties: []\n", encoding="utf-8")
    for asset, problem in (
        (tmp_path / "missing.yaml", "file not found"),
        (empty, "schema object has no properties"),
    ):
        for args in ((), ("--discover",)):
            config = {"files": [{"path": str(data), "object": "a", "asset": str(asset)}]}
            run = run_tap(tmp_path, config, None, *args, check=False)
            assert run.returncode == 1, run.stderr
            assert f"stream 'a': contract {asset}: {problem}" in run.stderr
            assert "Traceback" not in run.stderr
