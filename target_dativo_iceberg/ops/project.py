"""Where `dativo` takes the target's settings from: `--config FILE`, a Meltano project, or the environment.

An operator should not have to restate what the pipeline already knows. Every `dativo` command takes
- `--config FILE`: a target config JSON (the file `target-dativo-iceberg --config` reads);
- `--meltano [--environment E] [--loader NAME]`: the settings Meltano gives the loader, read with
  `meltano --environment E config --unsafe print NAME` (Meltano 4's syntax) in the project's directory;
  this is also the default when the working directory (or a parent) holds a `meltano.yml` naming the
  loader and `meltano` is installed, so `dativo inspect` in a Meltano project finds its data with no
  flags;
- otherwise `TARGET_DATIVO_ICEBERG_*` environment variables, named as Meltano names them (a dotted
  setting's dots become `_`: `TARGET_DATIVO_ICEBERG_CONNECTION_S3_ENDPOINT`); lists and objects are
  JSON. They also override a `--config` file's values, as they do in the target.

In a Meltano project the commands run from the project's directory (relative paths in the settings,
such as the default SQLite catalog, mean what they mean to the pipeline), and `state_ids` lists the
project's real Meltano state ids for this loader (`{environment}:{tap}-to-{loader}[:suffix]`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.iceberg.runtables import is_ledger_table
from target_dativo_iceberg.redact import activate
from target_dativo_iceberg.settings import Settings, config_jsonschema

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

ENV_PREFIX = "TARGET_DATIVO_ICEBERG_"
LOADER = "target-dativo-iceberg"
MELTANO_TIMEOUT = 300
# Meltano's own parse of a state id (meltano/cli/state.py): env:tap-to-target[:suffix].
_STATE_ID = re.compile(r"^(?P<env>.+?):(?P<tap>.+)-to-(?P<target>.+?)(?::(?P<suffix>.+))?$")


@dataclass
class Project:
    """The settings `dativo` works with and where they came from."""

    settings: Settings
    source: str
    #: Meltano project directory, environment and loader name, when the settings came from Meltano.
    meltano_root: Path | None = None
    environment: str | None = None
    loader: str = LOADER
    meltano: str | None = None
    extractors: list[str] = field(default_factory=list)

    def state_ids(self) -> list[str]:
        """Meltano state ids of this loader in this environment: the stored ones (`meltano state
        list`), else the ids the project's extractors would get (`{env}:{tap}-to-{loader}`)."""
        if not self.meltano_root or not self.meltano or not self.environment:
            return []
        out = run_meltano(
            self.meltano,
            self.meltano_root,
            self.environment,
            "state",
            "list",
            "--pattern",
            f"{self.environment}:*",
        )
        stored = []
        for line in out.split():
            match = _STATE_ID.match(line.strip())
            if match and match["env"] == self.environment and match["target"] == self.loader:
                stored.append(line.strip())
        if stored:
            return sorted(stored)
        suffix = _environment_entry(self.meltano_root, self.environment).get("state_id_suffix")
        tail = f":{suffix}" if suffix else ""
        return [f"{self.environment}:{tap}-to-{self.loader}{tail}" for tap in self.extractors]


def catalog_of(settings: Settings) -> Catalog:
    """The catalog the settings name (on Nessie: opened on the tenant's reference)."""
    from pyiceberg.catalog import load_catalog

    return load_catalog(settings.catalog_name, **settings.catalog_load_properties())


def all_tables(
    catalog: Catalog, names: list[str] | None = None, settings: Settings | None = None
) -> list[Table]:
    """The named tables (`namespace.table`), or every table in the catalog — of the tenant of
    `settings` when given (other tenants' namespaces are not shown)."""
    if names:
        return [catalog.load_table(name) for name in names]
    return [
        catalog.load_table(ident)
        for ns in catalog.list_namespaces()
        if settings is None or settings.owns_namespace(".".join(ns))
        for ident in catalog.list_tables(ns)
        if not is_ledger_table(ident)
    ]


def table_name(table: Table) -> str:
    """`namespace.table` of a loaded table."""
    return ".".join(table.name()[-2:])


def where(settings: Settings, branch: str) -> str:
    """The catalog and branch in words, for headers and "nothing here" messages."""
    place = f"catalog {settings.catalog_name!r} ({settings.catalog_type})"
    if settings.catalog_type == "nessie":
        return f"{place}, Nessie reference {settings.branch!r}, table branch {branch!r}"
    return f"{place}, branch {branch!r}"


def chosen_branch(project: Project, args: argparse.Namespace) -> str:
    """`--branch`, else the branch the target writes: the tenant's (on Nessie the tables' main)."""
    return getattr(args, "branch", None) or project.settings.table_branch


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every `dativo` command takes to find the target's settings."""
    group = parser.add_argument_group(
        "settings (default: the Meltano project here, else TARGET_DATIVO_ICEBERG_*)"
    )
    group.add_argument(
        "--config", help="target config JSON file; TARGET_DATIVO_ICEBERG_* variables override it"
    )
    group.add_argument(
        "--meltano",
        action="store_true",
        help="read the loader's settings from the Meltano project (meltano.yml)",
    )
    group.add_argument(
        "--environment", help="Meltano environment (default: the project's default_environment)"
    )
    group.add_argument(
        "--loader", default=LOADER, help=f"the loader's name in meltano.yml (default {LOADER})"
    )


def load_project(args: argparse.Namespace) -> Project:
    """The settings per the command line (see the module docstring), with redaction of their secrets on."""
    if args.config:
        config = {**_read_json(args.config), **env_config()}
        project = Project(_settings(config), f"config file {args.config}")
    else:
        root = find_meltano_project(Path.cwd())
        meltano = meltano_executable()
        if args.meltano and root is None:
            raise ConfigError(f"--meltano: no meltano.yml in {Path.cwd()} or its parents")
        if args.meltano and meltano is None:
            raise ConfigError("--meltano: the meltano command is not installed (pip install meltano)")
        # Without --meltano, a project that does not name the loader (a parent directory's unrelated
        # project) is passed over.
        named = root is not None and (args.meltano or args.loader in (root / "meltano.yml").read_text())
        if named and meltano is None:
            print(
                f"dativo: {root}/meltano.yml found, but meltano is not installed: not reading it",
                file=sys.stderr,
            )
        if root is not None and named and meltano is not None:
            project = _from_meltano(root, meltano, args.environment, args.loader)
        else:
            variables = env_config()
            names = ", ".join(sorted(ENV_PREFIX + k.upper() for k in variables)) or "none set"
            project = Project(
                _settings(variables), f"environment variables {ENV_PREFIX}* ({names}) and defaults"
            )
    activate(project.settings.redactor())
    return project


def find_meltano_project(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding a meltano.yml."""
    for directory in (start, *start.parents):
        if (directory / "meltano.yml").is_file():
            return directory
    return None


def meltano_executable() -> str | None:
    """`meltano` next to this Python (same venv) or on PATH."""
    local = Path(sys.executable).parent / "meltano"
    return str(local) if local.exists() else shutil.which("meltano")


def env_config(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The settings given as `TARGET_DATIVO_ICEBERG_*` variables, nested as Meltano nests them."""
    environ = dict(os.environ if environ is None else environ)
    config: dict[str, Any] = {}
    for name, kind in setting_kinds().items():
        raw = environ.get(ENV_PREFIX + name.upper().replace(".", "_"))
        if raw is None:
            continue
        value: Any = raw
        if kind in ("array", "object") and raw.strip()[:1] in ("[", "{"):
            try:
                value = json.loads(raw)
            except ValueError as exc:
                var = ENV_PREFIX + name.upper().replace(".", "_")
                raise ConfigError(f"{var} must be JSON ({kind}) for setting {name}: {exc}") from exc
        node = config
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


def setting_kinds(schema: dict[str, Any] | None = None, prefix: str = "") -> dict[str, str]:
    """Dotted setting name → JSON type, for every setting in the target's config schema."""
    schema = schema if schema is not None else config_jsonschema()
    kinds: dict[str, str] = {}
    for name, prop in (schema.get("properties") or {}).items():
        types = prop.get("type") or "string"
        types = [t for t in ([types] if isinstance(types, str) else types) if t != "null"] or ["string"]
        if types[0] == "object" and prop.get("properties"):
            kinds.update(setting_kinds(prop, f"{prefix}{name}."))
        else:
            kinds[prefix + name] = types[0]
    return kinds


def _read_json(path: str) -> dict[str, Any]:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"config {path} is not a JSON object")
    return config


def _settings(config: dict[str, Any]) -> Settings:
    return Settings.from_config(config)


def _environment_entry(root: Path, environment: str) -> dict[str, Any]:
    project = yaml.safe_load((root / "meltano.yml").read_text()) or {}
    for entry in project.get("environments") or []:
        if entry.get("name") == environment:
            return entry
    return {}


def _from_meltano(root: Path, meltano: str, environment: str | None, loader: str) -> Project:
    """Settings of `loader` as Meltano resolves them (meltano.yml, environment, .env, variables)."""
    os.chdir(root)  # Meltano runs plugins here: relative paths in the settings are relative to it
    declared = yaml.safe_load((root / "meltano.yml").read_text()) or {}
    environment = environment or os.environ.get("MELTANO_ENVIRONMENT") or declared.get("default_environment")
    extractors = [p["name"] for p in (declared.get("plugins") or {}).get("extractors") or [] if "name" in p]
    out = run_meltano(meltano, root, environment, "config", "--unsafe", "print", loader, "--format", "json")
    try:
        config = json.loads(out)
    except ValueError as exc:
        raise ConfigError(f"meltano config print {loader}: not JSON ({exc})") from exc
    return Project(
        _settings(config),
        f"Meltano project {root} (environment {environment or 'none'}, loader {loader})",
        meltano_root=root,
        environment=environment,
        loader=loader,
        meltano=meltano,
        extractors=extractors,
    )


def run_meltano(meltano: str, root: Path, environment: str | None, *args: str) -> str:
    """Run `meltano [--environment E] ARGS` in the project directory; its stdout."""
    command = [meltano]
    if environment:
        command += ["--environment", environment]
    command += list(args)
    env = {"MELTANO_CLI_DISABLE_VERSION_CHECK": "1", **os.environ}
    try:
        proc = subprocess.run(
            command,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=MELTANO_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"`meltano {' '.join(args[:2])}` failed: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise ConfigError(f"`meltano {' '.join(args[:3])}` in {root} exited {proc.returncode}: {tail}")
    return proc.stdout
