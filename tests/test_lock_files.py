"""The Meltano lock files and meltano.yml declarations match what the plugins say about themselves.

`make lock` (scripts/generate_lock_files.py) rewrites them from each plugin's `--about`; these
tests fail when a setting was added to a plugin without regenerating them.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

PLUGINS = {
    "tap-dativo-csv": ("extractors", "tap_dativo_csv"),
    "target-dativo-iceberg": ("loaders", "target_dativo_iceberg"),
}


@pytest.fixture(scope="module")
def generator(repo_root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_lock_files", repo_root / "scripts/generate_lock_files.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def meltano_yml(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "meltano.yml").read_text())


def _plugin(meltano_yml: dict, name: str) -> dict:
    plugin_type = PLUGINS[name][0]
    [entry] = [p for p in meltano_yml["plugins"][plugin_type] if p["name"] == name]
    return entry


def _lock(repo_root: Path, name: str) -> dict:
    return json.loads((repo_root / "plugins" / PLUGINS[name][0] / f"{name}--dativo.lock").read_text())


def test_generator_check_passes(repo_root: Path) -> None:
    """The committed lock files and meltano.yml are exactly what the generator writes today."""
    proc = subprocess.run(
        [sys.executable, "scripts/generate_lock_files.py", "--check"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"lock files drift: run `make lock`\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_lock_file_matches_plugin_about(
    repo_root: Path, generator: ModuleType, meltano_yml: dict, name
) -> None:
    plugin = _plugin(meltano_yml, name)
    generated = generator.lock_definition(PLUGINS[name][0], plugin)
    assert _lock(repo_root, name) == generated


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_lock_file_shape(repo_root: Path, meltano_yml: dict, name: str) -> None:
    """The fields Meltano needs to use the lock file instead of Meltano Hub."""
    lock = _lock(repo_root, name)
    plugin = _plugin(meltano_yml, name)
    plugin_type, namespace = PLUGINS[name]
    assert lock["plugin_type"] == plugin_type
    assert lock["name"] == name
    assert lock["namespace"] == namespace == plugin["namespace"]
    assert lock["variant"] == "dativo" == plugin["variant"]
    assert lock["executable"] == name == plugin["executable"]
    assert lock["pip_url"] == plugin["pip_url"]
    assert lock["label"]
    assert "about" in lock["capabilities"]
    for setting in lock["settings"]:
        assert {"name", "kind", "sensitive", "description"} <= set(setting), setting
    names = [s["name"] for s in lock["settings"]]
    assert len(names) == len(set(names)), "duplicate setting names"


def test_tap_declares_meltano_capabilities(repo_root: Path) -> None:
    """`meltano run` passes --catalog and --state only to taps that declare these capabilities."""
    assert {"catalog", "discover", "state"} <= set(_lock(repo_root, "tap-dativo-csv")["capabilities"])


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_every_locked_setting_declared_in_meltano_yml(repo_root: Path, meltano_yml: dict, name: str) -> None:
    """Meltano passes only declared settings, and a meltano.yml declaration replaces the lock's."""
    plugin = _plugin(meltano_yml, name)
    declared = {s["name"]: s for s in plugin.get("settings") or []}
    for setting in _lock(repo_root, name)["settings"]:
        assert setting["name"] in declared, f"{name}: setting {setting['name']} not declared in meltano.yml"
        mine = declared[setting["name"]]
        assert mine["kind"] == setting["kind"], setting["name"]
        assert bool(mine.get("sensitive")) == setting["sensitive"], setting["name"]
        assert mine.get("value") == setting.get("value"), setting["name"]
        assert mine.get("options") == setting.get("options"), setting["name"]
    assert sorted(plugin["capabilities"]) == sorted(_lock(repo_root, name)["capabilities"])


def test_nested_settings_are_dotted(repo_root: Path) -> None:
    """Dotted names are how Meltano nests settings into objects (connection.s3.endpoint)."""
    for name in PLUGINS:
        names = {s["name"] for s in _lock(repo_root, name)["settings"]}
        assert "connection.s3.endpoint" in names
        assert "connection.s3.secret_access_key" in names
        assert "connection" not in names
    target = {s["name"]: s for s in _lock(repo_root, "target-dativo-iceberg")["settings"]}
    assert target["connection.s3.secret_access_key"]["sensitive"] is True
    assert target["connection.s3.secret_access_key"]["kind"] == "password"


def test_generator_check_detects_drift(repo_root: Path, generator: ModuleType, tmp_path: Path) -> None:
    """--check fails on an edited lock file and on a setting missing from meltano.yml."""
    shutil.copy(repo_root / "meltano.yml", tmp_path / "meltano.yml")
    shutil.copy(repo_root / "pyproject.toml", tmp_path / "pyproject.toml")  # the definitions' version
    shutil.copytree(repo_root / "plugins", tmp_path / "plugins")
    assert generator.main(["--check", "--root", str(tmp_path)]) == 0

    definition = tmp_path / "plugins/definitions/target-dativo-iceberg.yml"
    definition.write_text(definition.read_text().replace("pip_url: dativo-ingest==", "pip_url: other=="))
    assert generator.main(["--check", "--root", str(tmp_path)]) == 1
    assert generator.main(["--root", str(tmp_path)]) == 0  # rewritten

    lock_file = tmp_path / "plugins/loaders/target-dativo-iceberg--dativo.lock"
    original = lock_file.read_text()
    lock = json.loads(original)
    lock["settings"] = lock["settings"][:-1]
    lock_file.write_text(json.dumps(lock, indent=2) + "\n")
    assert generator.main(["--check", "--root", str(tmp_path)]) == 1
    lock_file.write_text(original)

    text = (tmp_path / "meltano.yml").read_text()
    line = "    - {name: tenant_id, kind: string, value: default}\n"
    assert line in text
    (tmp_path / "meltano.yml").write_text(text.replace(line, ""))
    assert generator.undeclared_settings(tmp_path) == {"target-dativo-iceberg": ["tenant_id"]}
    assert generator.main(["--check", "--root", str(tmp_path)]) == 1

    # Without --check the generator repairs both.
    assert generator.main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / "meltano.yml").read_text() == (repo_root / "meltano.yml").read_text()
