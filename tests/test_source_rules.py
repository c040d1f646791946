"""Rules of the source, checked by scanning it (no run needed).

- Private library APIs are used from their adapter module only, so a library upgrade touches one file:
  importing a private pyiceberg or singer-sdk name, or reaching a private member of another object
  (`obj._x`, `getattr(obj, "_x")`), is allowed in the adapters only.
- Exception classes of the target and the tap are defined in `target_dativo_iceberg/errors.py` only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("target_dativo_iceberg", "tap_dativo_csv")
PYICEBERG_ADAPTER = "target_dativo_iceberg/iceberg/pyiceberg_compat.py"
SDK_ADAPTER = "target_dativo_iceberg/sdk_compat.py"
ERRORS = "target_dativo_iceberg/errors.py"
#: Modules still importing a private singer-sdk name directly, until they move to the SDK adapter.
SDK_PENDING: set[str] = set()
#: Private-looking names of the standard library that are its public API.
STDLIB_PUBLIC = {("os", "_exit")}


def _sources() -> list[tuple[str, ast.Module]]:
    files = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
    return [(str(p.relative_to(ROOT)), ast.parse(p.read_text(encoding="utf-8"))) for p in files]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_imports(tree: ast.Module, library: str) -> list[str]:
    """`from library... import _x` and imports of a private module of `library`, as written."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == library:
            if any(_private(part) for part in node.module.split(".")):
                found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Import):
            found += [
                a.name
                for a in node.names
                if a.name.split(".")[0] == library and any(_private(p) for p in a.name.split("."))
            ]
    return found


def _private_members(tree: ast.Module) -> list[str]:
    """`obj._x` on anything but `self`, `cls` and `super()`, and `getattr(obj, "_x")`-style reads."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and (
                owner.id in ("self", "cls") or (owner.id, node.attr) in STDLIB_PUBLIC
            ):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            found.append(f"line {node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            found.append(f"line {node.lineno}: {node.func.id} {node.args[1].value}")
    return found


SOURCES = _sources()


def test_the_scan_sees_the_package():
    names = {path for path, _ in SOURCES}
    assert PYICEBERG_ADAPTER in names and SDK_ADAPTER in names
    assert _private_imports(dict(SOURCES)[PYICEBERG_ADAPTER], "pyiceberg")
    assert _private_imports(dict(SOURCES)[SDK_ADAPTER], "singer_sdk")


@pytest.mark.parametrize("path,tree", SOURCES, ids=[p for p, _ in SOURCES])
def test_private_pyiceberg_names_only_in_the_adapter(path, tree):
    if path != PYICEBERG_ADAPTER:
        assert _private_imports(tree, "pyiceberg") == []


@pytest.mark.parametrize("path,tree", SOURCES, ids=[p for p, _ in SOURCES])
def test_private_singer_sdk_names_only_in_the_adapter(path, tree):
    if path != SDK_ADAPTER and path not in SDK_PENDING:
        assert _private_imports(tree, "singer_sdk") == []


@pytest.mark.parametrize("path,tree", SOURCES, ids=[p for p, _ in SOURCES])
def test_no_private_members_of_other_objects_outside_the_adapters(path, tree):
    if path not in (PYICEBERG_ADAPTER, SDK_ADAPTER):
        assert _private_members(tree) == []


def _exception_classes(tree: ast.Module) -> list[str]:
    """Classes with a base whose name ends in Error or Exception (BaseException included)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
            if any(b.endswith(("Error", "Exception")) for b in bases):
                found.append(node.name)
    return found


def test_the_errors_module_holds_the_exceptions():
    assert {"ContractError", "CSVReadError", "Interrupted"} <= set(_exception_classes(dict(SOURCES)[ERRORS]))


@pytest.mark.parametrize("path,tree", SOURCES, ids=[p for p, _ in SOURCES])
def test_exception_classes_only_in_the_errors_module(path, tree):
    if path != ERRORS:
        assert _exception_classes(tree) == []
