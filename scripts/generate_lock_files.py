#!/usr/bin/env python
"""Write the Meltano lock files of our two plugins from their `--about --format json` output.

Meltano resolves a plugin declared with `variant: dativo` from
`plugins/<type>/<name>--dativo.lock`; with that file present, `meltano install` and `meltano run`
never contact Meltano Hub (`meltano lock` always does, so it is never used here).

Plugin metadata (namespace, label, pip_url, executable, variant) comes from the plugin's entry in
`meltano.yml`; capabilities and settings come from the plugin's own `--about`. Nested object
settings become dotted names (`connection.s3.endpoint`), which Meltano nests back into objects
when it writes the plugin's config.

The lock files serve this project: their `pip_url` is meltano.yml's editable install of the checkout.
For other Meltano projects the script also writes `plugins/definitions/<name>.yml`, the same
definitions with `pip_url: dativo-ingest==<version>` (the released package), which
`meltano add <name> --from-ref <path or URL of the file>` adds.

A setting declared in a meltano.yml plugin entry replaces the lock file's definition of it, so the
script also keeps the `capabilities:` and `settings:` lists of our two entries in meltano.yml in
step with the lock files (one flow-style line per setting; the rest of meltano.yml is untouched).

    python scripts/generate_lock_files.py            # (re)write lock files, definitions, meltano.yml
    python scripts/generate_lock_files.py --check    # write nothing; exit 1 on any drift
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_TYPES = ("extractors", "loaders")
OUR_PLUGINS = ("tap-dativo-csv", "target-dativo-iceberg")

# JSON Schema type -> Meltano setting kind.
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}


def meltano_plugins(root: Path = ROOT) -> dict[str, tuple[str, dict[str, Any]]]:
    """Our plugins as declared in meltano.yml: name -> (plugin type, definition)."""
    project = yaml.safe_load((root / "meltano.yml").read_text())
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for plugin_type in PLUGIN_TYPES:
        for plugin in (project.get("plugins") or {}).get(plugin_type) or []:
            if plugin["name"] in OUR_PLUGINS:
                found[plugin["name"]] = (plugin_type, plugin)
    missing = sorted(set(OUR_PLUGINS) - set(found))
    if missing:
        raise SystemExit(f"meltano.yml does not declare: {', '.join(missing)}")
    return found


def lock_path(plugin_type: str, plugin: dict[str, Any], root: Path = ROOT) -> Path:
    """Where Meltano looks for the lock file of a plugin variant."""
    return root / "plugins" / plugin_type / f"{plugin['name']}--{plugin['variant']}.lock"


@functools.cache
def about(executable: str) -> dict[str, Any]:
    """The plugin's `--about --format json`, run from the same environment as this script."""
    local = Path(sys.executable).parent / executable
    command = str(local) if local.exists() else shutil.which(executable)
    if not command:
        raise SystemExit(f"{executable} not found next to {sys.executable} nor on PATH: install the project")
    out = subprocess.run(
        [command, "--about", "--format", "json"], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    return json.loads(out)


def _types(schema: dict[str, Any]) -> list[str]:
    """Non-null JSON types of a property (from oneOf/anyOf when there is no `type`)."""
    declared = schema.get("type")
    if declared is None:
        found: list[str] = []
        for alternative in schema.get("oneOf") or schema.get("anyOf") or []:
            if isinstance(alternative, dict):
                found += [t for t in _types(alternative) if t not in found]
        # Several alternatives (e.g. number or string): a string setting, passed through uncast.
        return ["string"] if len(found) > 1 else found
    declared = [declared] if isinstance(declared, str) else declared
    return [t for t in declared if t != "null"]


def _nested(schema: dict[str, Any]) -> bool:
    """An object whose properties are settings of their own (not a free-form mapping)."""
    return (
        "object" in _types(schema)
        and bool(schema.get("properties"))
        and not isinstance(schema.get("additionalProperties"), dict)
    )


def settings_from_schema(schema: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Flatten a config JSON schema into Meltano setting definitions, in declaration order."""
    settings: list[dict[str, Any]] = []
    for name, prop in (schema.get("properties") or {}).items():
        full = f"{prefix}{name}"
        if _nested(prop):
            settings.extend(settings_from_schema(prop, f"{full}."))
            continue
        types = _types(prop)
        secret = bool(prop.get("secret"))
        kind = KINDS.get(types[0], "string") if types else "string"
        enum = prop.get("enum") if kind == "string" and not secret else None
        if secret:
            kind = "password"
        elif enum:
            kind = "options"
        setting: dict[str, Any] = {"name": full}
        if prop.get("title"):
            setting["label"] = prop["title"]
        setting["kind"] = kind
        if "default" in prop:
            setting["value"] = prop["default"]
        if enum:
            setting["options"] = [{"label": str(v), "value": v} for v in enum]
        setting["sensitive"] = secret
        if prop.get("description"):
            setting["description"] = prop["description"]
        settings.append(setting)
    return settings


def lock_definition(plugin_type: str, plugin: dict[str, Any]) -> dict[str, Any]:
    """The lock file content of one plugin."""
    info = about(plugin.get("executable") or plugin["name"])
    schema = info.get("settings") or {}
    lock: dict[str, Any] = {
        "plugin_type": plugin_type,
        "name": plugin["name"],
        "namespace": plugin["namespace"],
        "variant": plugin["variant"],
        "label": plugin.get("label") or info.get("name") or plugin["name"],
        "pip_url": plugin["pip_url"],
        "executable": plugin.get("executable") or plugin["name"],
        "description": info.get("description") or "",
        "capabilities": sorted(info.get("capabilities") or []),
    }
    required = schema.get("required") or []
    if required:
        lock["settings_group_validation"] = [sorted(required)]
    lock["settings"] = settings_from_schema(schema)
    return lock


def package_version(root: Path = ROOT) -> str:
    """The project's version, from pyproject.toml."""
    match = re.search(r'^version = "([^"]+)"', (root / "pyproject.toml").read_text(), re.M)
    if not match:
        raise SystemExit("pyproject.toml: no version")
    return match.group(1)


def definition_path(name: str, root: Path = ROOT) -> Path:
    """Where the plugin definition other projects add with `meltano add --from-ref` lives."""
    return root / "plugins" / "definitions" / f"{name}.yml"


def render_definition(lock: dict[str, Any], version: str) -> str:
    """A plugin definition for `meltano add --from-ref`: the lock's content, installing the release."""
    definition = {k: v for k, v in lock.items() if k != "plugin_type"}
    definition["pip_url"] = f"dativo-ingest=={version}"
    header = (
        f"# {lock['name']}: plugin definition for other Meltano projects. Written by\n"
        "# scripts/generate_lock_files.py (`make lock`) from the plugin's --about; do not edit.\n"
        f"#   meltano add {lock['name']} --from-ref <path or URL of this file>\n"
        "# pip_url installs the released package; point it at a wheel or a git URL to install another build.\n"
    )
    return header + yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, width=100)


def render(lock: dict[str, Any]) -> str:
    """Lock file text: the JSON layout Meltano itself writes."""
    return json.dumps(lock, indent=2) + "\n"


def declaration(setting: dict[str, Any]) -> dict[str, Any]:
    """How meltano.yml declares a setting.

    A setting declared in meltano.yml replaces the lock file's definition of it as a whole, so the
    declaration repeats what matters at run time: kind, default value, options, sensitivity.
    """
    out: dict[str, Any] = {"name": setting["name"], "kind": setting["kind"]}
    if "value" in setting:
        out["value"] = setting["value"]
    if setting.get("sensitive"):
        out["sensitive"] = True
    if "options" in setting:
        out["options"] = setting["options"]
    return out


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _inline(value: Any) -> str:
    """A value as inline YAML: plain words unquoted, anything else as JSON (which YAML reads as is)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, str) and _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def _entry_span(text: str, name: str) -> tuple[int, int]:
    """Start and end offsets of a plugin's entry under `plugins:` in meltano.yml."""
    match = re.search(rf"^  - name: {re.escape(name)}\n", text, re.M)
    if not match:
        raise SystemExit(f"meltano.yml: no plugin entry `  - name: {name}`")
    end = re.compile(r"^(  - |  \S|\S)", re.M).search(text, match.end())
    return match.start(), end.start() if end else len(text)


def _replace_list(entry: str, key: str, items: list[str]) -> str:
    """Replace the block list `    key:` (one `    - ...` line per item) in a plugin entry."""
    block = f"    {key}:\n" + "".join(f"    - {item}\n" for item in items)
    pattern = re.compile(rf"^    {key}:(?: \[\])?\n(?:    - .*\n)*", re.M)
    if pattern.search(entry):
        return pattern.sub(lambda _: block, entry, count=1)
    return entry + block


def synced_meltano_yml(locks: dict[str, dict[str, Any]], root: Path = ROOT) -> str:
    """meltano.yml with our plugins' `capabilities` and `settings` declarations matching the locks."""
    text = (root / "meltano.yml").read_text()
    for name, lock in locks.items():
        start, end = _entry_span(text, name)
        entry = _replace_list(text[start:end], "capabilities", lock["capabilities"])
        entry = _replace_list(entry, "settings", [_inline(declaration(s)) for s in lock["settings"]])
        text = text[:start] + entry + text[end:]
    return text


def undeclared_settings(root: Path = ROOT) -> dict[str, list[str]]:
    """Lock file settings that meltano.yml does not declare, or declares differently."""
    problems: dict[str, list[str]] = {}
    for name, (plugin_type, plugin) in meltano_plugins(root).items():
        path = lock_path(plugin_type, plugin, root)
        locked = json.loads(path.read_text())["settings"] if path.exists() else []
        declared = {s["name"]: s for s in plugin.get("settings") or []}
        gaps = [s["name"] for s in locked if declared.get(s["name"]) != declaration(s)]
        if gaps:
            problems[name] = gaps
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when lock files or meltano.yml drift"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="project directory (default: this checkout)")
    args = parser.parse_args(argv)
    root = args.root.resolve()

    plugins = meltano_plugins(root)
    locks = {name: lock_definition(plugin_type, plugin) for name, (plugin_type, plugin) in plugins.items()}
    wanted = {
        lock_path(plugins[name][0], plugins[name][1], root): render(lock) for name, lock in locks.items()
    }
    version = package_version(root)
    for name, lock in locks.items():
        wanted[definition_path(name, root)] = render_definition(lock, version)
    wanted[root / "meltano.yml"] = synced_meltano_yml(locks, root)

    drift = False
    for path, text in wanted.items():
        current = path.read_text() if path.exists() else ""
        rel = path.relative_to(root)
        if current == text:
            print(f"up to date: {rel}")
        elif args.check:
            drift = True
            print(f"DRIFT: {rel} differs from the plugins' --about (run `make lock`)")
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(True),
                    text.splitlines(True),
                    f"{rel} (committed)",
                    f"{rel} (generated)",
                )
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote: {rel}")
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
