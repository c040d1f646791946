"""The rules of docs/architecture.md, checked on the source of `target_dativo_iceberg` with `ast`.

Nothing is imported or run: the import graph comes from `scripts/import_graph.py` (the same graph the
architecture diagram is drawn from), so these tests take well under a second and need only the
standard library. Each failure names the module, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _load_import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", REPO_ROOT / "scripts/import_graph.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


graph = _load_import_graph()
PACKAGE = graph.PACKAGE
MODULES: dict[str, Path] = graph.modules()
IMPORTS = graph.all_imports()
MAX_LINES = graph.MAX_LINES
SDK_COMPAT = f"{PACKAGE}.sdk_compat"


def _rel(module: str) -> str:
    return str(MODULES[module].relative_to(REPO_ROOT))


def test_the_graph_sees_the_package():
    """Guards the checks below against an empty graph (a moved package, a broken parser)."""
    assert f"{PACKAGE}.target" in MODULES and f"{PACKAGE}.iceberg.committer" in MODULES
    assert any(i.importer == f"{PACKAGE}.target" and i.imported == f"{PACKAGE}.sink" for i in IMPORTS)


def test_no_import_circle():
    """Imports under `if TYPE_CHECKING:` never run and are left out; function-level imports count
    (a circle dodged at run time is still a circle)."""
    edges: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], list[str]] = defaultdict(list)
    for imp in IMPORTS:
        if imp.where != graph.TYPE_CHECKING:
            edges[imp.importer].add(imp.imported)
            where[imp.importer, imp.imported].append(f"{_rel(imp.importer)}:{imp.line}")
    circles = graph.circles(edges)
    report = []
    for circle in circles:
        members = set(circle)
        links = [
            f"    {a} → {b} ({', '.join(where[a, b])})" for a in circle for b in sorted(edges[a] & members)
        ]
        report.append("import circle: " + ", ".join(circle) + "\n" + "\n".join(links))
    assert not circles, "\n".join(report)


@pytest.mark.parametrize("layer", sorted(graph.FORBIDDEN))
def test_layering(layer: str):
    """A lower layer never imports an upper one (`import_graph.FORBIDDEN`: `iceberg/` nothing of the
    layers above it, `contracts/` nothing of intake, delivery, ops, the target or the sink); type-only
    imports count too: they are dependencies as well."""
    offences = [
        f"{_rel(imp.importer)}:{imp.line} imports {imp.imported} ({imp.where}); {rule}"
        for imp in IMPORTS
        if graph.within(imp.importer, layer) and (rule := graph.breaks_layering(imp.importer, imp.imported))
    ]
    assert not offences, "\n".join(offences)


def test_no_module_over_the_size_limit():
    """Split a module rather than grow it past the limit; every offender is listed."""
    sizes = {module: graph.line_count(path) for module, path in MODULES.items()}
    over = [f"{_rel(m)}: {n} lines (limit {MAX_LINES})" for m, n in sorted(sizes.items()) if n > MAX_LINES]
    assert not over, "\n".join(over)


def _sdk_private_names() -> set[str]:
    """The private singer-sdk members sdk_compat.py's docstring table lists (`Target._sinks_active`,
    `plugin_base._ConfigInput`, ... → `_sinks_active`, `_ConfigInput`, ...)."""
    doc = ast.get_docstring(graph.parse(MODULES[SDK_COMPAT])) or ""
    names = set()
    for row in doc.splitlines():
        if row.startswith("| `"):
            first_cell = row.split("|")[1]
            for ref in re.findall(r"`([^`]+)`", first_cell):
                last = ref.rpartition(".")[2]
                if last.startswith("_") and not last.startswith("__"):
                    names.add(last)
    return names


SDK_PRIVATES = _sdk_private_names()


def _private_sdk_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(graph.parse(path)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "singer_sdk":
            private_path = [p for p in node.module.split(".") if p.startswith("_")]
            private_names = [a.name for a in node.names if a.name.startswith("_")]
            if private_path or private_names:
                found.append(
                    f"{node.lineno}: from {node.module} import {', '.join(a.name for a in node.names)}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "singer_sdk" and any(p.startswith("_") for p in parts):
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in SDK_PRIVATES:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:  # a method or class attribute overriding a private SDK member
                if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name in SDK_PRIVATES:
                    found.append(f"{stmt.lineno}: def {stmt.name} in class {node.name}")
                targets = stmt.targets if isinstance(stmt, ast.Assign) else []
                if isinstance(stmt, ast.AnnAssign):
                    targets = [stmt.target]
                for target in targets:
                    if isinstance(target, ast.Name) and target.id in SDK_PRIVATES:
                        found.append(f"{stmt.lineno}: {target.id} = ... in class {node.name}")
    return found


def test_sdk_privates_are_listed():
    """The table in sdk_compat.py's docstring is where the check below takes its names from."""
    assert {"_process_state_message", "_sinks_active", "_ConfigInput", "_validate_and_parse"} <= SDK_PRIVATES


@pytest.mark.parametrize("package", [PACKAGE, "tap_dativo_csv"])
def test_sdk_private_members_only_in_sdk_compat(package: str):
    """singer-sdk's private members (those sdk_compat.py lists, and anything imported from singer_sdk
    with a leading underscore) are used in `target_dativo_iceberg/sdk_compat.py` only, so an SDK
    upgrade touches one file."""
    offences = [
        f"{path.relative_to(REPO_ROOT)}:{use}"
        for module, path in graph.modules(package).items()
        if module != SDK_COMPAT
        for use in _private_sdk_uses(path)
    ]
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_has_a_docstring(module: str):
    """Each module's docstring says its one job."""
    doc = ast.get_docstring(graph.parse(MODULES[module]))
    assert doc and doc.strip(), f"{_rel(module)} has no module docstring saying its job"


def test_sdk_check_sees_the_privates_where_they_are_used():
    """The detector finds sdk_compat.py's own uses, so a clean result elsewhere means something."""
    uses = _private_sdk_uses(MODULES[SDK_COMPAT])
    assert any("._sinks_active" in u for u in uses) and any("_ConfigInput" in u for u in uses)


def test_graph_reader_on_a_small_package(tmp_path: Path):
    """How imports are read: relative and absolute, module- and function-level, TYPE_CHECKING apart."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": '"""Package."""\n',
        "a.py": "from pkg import b\nfrom .sub.c import thing\n",
        "b.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.a import x\n",
        "sub/__init__.py": "",
        "sub/c.py": "def f():\n    from ..a import y\n    return y\nfrom . import d\n",
        "sub/d.py": "import pkg.sub.c as c\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    imports = {(i.importer, i.imported, i.where) for i in graph.all_imports("pkg", tmp_path)}
    assert imports == {
        ("pkg.a", "pkg.b", graph.MODULE_LEVEL),
        ("pkg.a", "pkg.sub.c", graph.MODULE_LEVEL),
        ("pkg.b", "pkg.a", graph.TYPE_CHECKING),
        ("pkg.sub.c", "pkg.a", graph.FUNCTION_LEVEL),
        ("pkg.sub.c", "pkg.sub.d", graph.MODULE_LEVEL),
        ("pkg.sub.d", "pkg.sub.c", graph.MODULE_LEVEL),
    }
    assert graph.layer_of("pkg.sub.c", tmp_path) == "sub" and graph.layer_of("pkg.a", tmp_path) == "top"
    run_time = {
        (i.importer, i.imported) for i in graph.all_imports("pkg", tmp_path) if i.where != "type_checking"
    }
    edges: dict[str, set[str]] = defaultdict(set)
    for a, b in run_time:
        edges[a].add(b)
    assert graph.circles(edges) == [["pkg.a", "pkg.sub.c", "pkg.sub.d"]]


def test_layering_rule_matching():
    """Names match whole modules or packages: `sink` is not `sinks`, `intake` covers `intake.reader`."""
    p = PACKAGE
    assert graph.breaks_layering(f"{p}.iceberg.writer", f"{p}.sink") == "iceberg/ must not import sink"
    assert graph.breaks_layering(f"{p}.contracts.odcs.types", f"{p}.intake.reader") == (
        "contracts/ must not import intake"
    )
    assert graph.breaks_layering(f"{p}.iceberg.writer", f"{p}.sinks") is None
    assert graph.breaks_layering(f"{p}.iceberg.writer", f"{p}.settings") is None
    assert graph.breaks_layering(f"{p}.intake.reader", f"{p}.sink") is None
