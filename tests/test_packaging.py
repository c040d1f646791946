"""Packaging: declared dependencies are the imported ones, and another Meltano project can add and
install the plugins from `plugins/definitions/` (`meltano add --from-ref`).

The install test builds the package's wheel from a copy of the sources and lets `meltano install`
find it (pip `find-links`), as it would find the release on an index: about two minutes, for one
plugin venv.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import tomllib
import yaml

from target_dativo_iceberg.ops.readback import DUCKDB_PACKAGES

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("target_dativo_iceberg", "tap_dativo_csv", "dativo_dagster")


def _declared() -> dict[str, str]:
    """pyproject.toml's [project] dependencies: normalised name → requirement."""
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S)
    assert block
    requirements = re.findall(r'^\s*"([^"]+)"', block.group(1), re.M)
    return {re.split(r"[\[<>=!~ ]", r)[0].lower().replace("_", "-"): r for r in requirements}


def _extras() -> set[str]:
    """Distributions of the optional extras that are features of the package (not dev or docs)."""
    with (REPO / "pyproject.toml").open("rb") as handle:
        groups = tomllib.load(handle)["project"]["optional-dependencies"]
    names = {r for g, reqs in groups.items() if g not in ("dev", "docs", "postgres") for r in reqs}
    return {re.split(r"[\[<>=!~ ]", r)[0].lower().replace("_", "-") for r in names}


def _imported() -> set[str]:
    """Top-level third-party modules the packages import."""
    found: set[str] = set()
    for package in SOURCES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in SOURCES}


def test_dependencies_are_what_the_code_imports() -> None:
    declared = _declared()
    distributions = metadata.packages_distributions()
    imported = {
        module: {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        for module in _imported()
    }
    extras = _extras()  # optional features (openlineage, dagster): imported only when used
    undeclared = {m: d for m, d in imported.items() if not d & (set(declared) | extras)}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    # DuckDB's extension packages are loaded by name (readback.DUCKDB_PACKAGES), pinned together.
    loaded_by_name = {p.split("==")[0] for p in DUCKDB_PACKAGES}
    used = set().union(*imported.values()) | loaded_by_name
    unused = sorted(set(declared) - used)
    assert extras - used == set(), f"optional extras never imported: {sorted(extras - used)}"
    assert not unused, f"declared in pyproject.toml but never imported: {unused}"
    assert {declared[name] for name in loaded_by_name} == set(DUCKDB_PACKAGES)


def test_definitions_install_the_released_package() -> None:
    version = metadata.version("dativo-ingest")
    for plugin_type, name in (("extractors", "tap-dativo-csv"), ("loaders", "target-dativo-iceberg")):
        definition = yaml.safe_load((REPO / "plugins/definitions" / f"{name}.yml").read_text())
        lock = json.loads((REPO / "plugins" / plugin_type / f"{name}--dativo.lock").read_text())
        assert definition["pip_url"] == f"dativo-ingest=={version}"
        assert lock["pip_url"] == "-e ${MELTANO_PROJECT_ROOT}"  # this project: the checkout, editable
        assert {k: v for k, v in lock.items() if k not in ("pip_url", "plugin_type")} == {
            k: v for k, v in definition.items() if k != "pip_url"
        }
    target = yaml.safe_load((REPO / "plugins/definitions/target-dativo-iceberg.yml").read_text())
    assert {"batch", "hard-delete", "soft-delete", "activate-version"} <= set(target["capabilities"])


def test_another_meltano_project_adds_and_installs_the_plugins(
    tmp_path: Path, bin_dir: Path, tool_env: dict[str, str]
) -> None:
    # The release, as an index would serve it: a wheel built from a copy of the sources.
    src = tmp_path / "src"
    shutil.copytree(
        REPO, src, ignore=shutil.ignore_patterns(".*", "*.egg-info", "build", "tests", "bench", "docs")
    )
    wheels = tmp_path / "wheels"
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        str(wheels),
        ".",
    ]
    subprocess.run(build, cwd=src, check=True, capture_output=True, timeout=600)
    env = {
        **tool_env,
        "MELTANO_VENV_BACKEND": "virtualenv",  # pip, with the machine's pip configuration
        "PIP_FIND_LINKS": f"{wheels} {os.environ.get('PIP_FIND_LINKS', '')}".strip(),
    }

    def meltano(*args: str, cwd: Path = tmp_path / "elsewhere") -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(bin_dir / "meltano"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, (
            f"meltano {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
        return proc

    meltano("init", "--no-usage-stats", "elsewhere", cwd=tmp_path)
    for name in ("tap-dativo-csv", "target-dativo-iceberg"):
        meltano("add", name, "--from-ref", str(REPO / "plugins/definitions" / f"{name}.yml"), "--no-install")
    project = yaml.safe_load((tmp_path / "elsewhere/meltano.yml").read_text())
    [target] = project["plugins"]["loaders"]
    assert target["pip_url"] == f"dativo-ingest=={metadata.version('dativo-ingest')}"
    # The definition is copied into meltano.yml whole: settings and capabilities, no Hub, no lock file.
    assert {"batch", "hard-delete"} <= set(target["capabilities"])
    assert "connection.s3.secret_access_key" in {s["name"] for s in target["settings"]}
    config = json.loads(meltano("config", "print", "target-dativo-iceberg").stdout)
    assert config["tenant_id"] == "default" and config["catalog_type"] == "sql"

    meltano("install", "--plugin-type", "loader", "target-dativo-iceberg")
    about = json.loads(meltano("invoke", "target-dativo-iceberg", "--about", "--format", "json").stdout)
    assert {"batch", "hard-delete", "soft-delete"} <= set(about["capabilities"])
    venv_bin = tmp_path / "elsewhere/.meltano/loaders/target-dativo-iceberg/venv/bin"
    version = subprocess.run(
        [str(venv_bin / "dativo"), "--version"], capture_output=True, text=True, timeout=120
    )
    assert version.stdout.strip() == f"dativo-ingest {metadata.version('dativo-ingest')}"
