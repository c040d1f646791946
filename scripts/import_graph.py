"""The imports between a package's modules, read from its source with `ast` (nothing is imported or run).

Shared by `scripts/architecture_diagram.py` (the picture in docs/architecture.md) and
`tests/test_architecture.py` (the rules it states), so both see the same graph. Standard library only:
the test runs in CI without the diagram's extra dependencies.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "target_dativo_iceberg"

#: Where an import statement sits: at module level, inside a function or class body (runs later),
#: or under `if TYPE_CHECKING:` (never runs).
MODULE_LEVEL, FUNCTION_LEVEL, TYPE_CHECKING = "module", "function", "type_checking"

#: The layering rules of docs/architecture.md: subpackage → what it must not import (subpackages with
#: everything under them, or top-level modules of the package).
FORBIDDEN = {
    "iceberg": [
        "intake",
        "delivery",
        "contracts",
        "files",
        "ops",
        "target",
        "sink",
        "services",
        "table_plan",
    ],
    "files": ["intake", "delivery", "contracts", "ops", "target", "sink", "services", "table_plan"],
    "contracts": ["intake", "delivery", "ops", "target", "sink"],
}
MAX_LINES = 400


@dataclass(frozen=True)
class Import:
    """One import of a package module by another (`importer` and `imported` are dotted names)."""

    importer: str
    imported: str
    line: int
    where: str


def modules(package: str = PACKAGE, root: Path = REPO_ROOT) -> dict[str, Path]:
    """Dotted module name → source file, for every module of the package (a package is its `__init__`)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def line_count(path: Path) -> int:
    """Lines in a source file, as `wc -l` counts them."""
    return len(path.read_text(encoding="utf-8").splitlines())


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:` (any alias of typing)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_statements(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement of a module with where it sits."""

    def walk(node: ast.AST, where: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, where
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk_one(stmt, TYPE_CHECKING)
                for stmt in child.orelse:
                    yield from walk_one(stmt, where)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, TYPE_CHECKING if where == TYPE_CHECKING else FUNCTION_LEVEL)
            else:
                yield from walk(child, where)

    def walk_one(stmt: ast.stmt, where: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            yield stmt, where
        else:
            yield from walk(stmt, where)

    yield from walk(tree, MODULE_LEVEL)


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    """The imports of package modules in one module (several names from one module count once per statement)."""
    package_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]

    def resolve(name: str) -> str | None:
        """The deepest package module a dotted name falls in (`a.b.Class` → `a.b`)."""
        while name:
            if name in known:
                return name
            name = name.rpartition(".")[0]
        return None

    found: list[Import] = []
    for stmt, where in _import_statements(parse(path)):
        targets: set[str] = set()
        if isinstance(stmt, ast.Import):
            targets = {t for a in stmt.names if (t := resolve(a.name))}
        else:
            if stmt.level:
                anchor = package_parts[: len(package_parts) - (stmt.level - 1)]
                prefix = ".".join(anchor + ([stmt.module] if stmt.module else []))
            else:
                prefix = stmt.module or ""
            targets = {t for a in stmt.names if (t := resolve(f"{prefix}.{a.name}") or resolve(prefix))}
        found.extend(Import(module, t, stmt.lineno, where) for t in sorted(targets) if t != module)
    return found


def all_imports(package: str = PACKAGE, root: Path = REPO_ROOT) -> list[Import]:
    """Every import between the package's modules."""
    mods = modules(package, root)
    known = set(mods)
    return [imp for name, path in mods.items() for imp in imports_of(name, path, known)]


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (Tarjan's strongly connected
    components with more than one module, plus any module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in edges.get(v, ()):
                found.append(sorted(group))

    try:
        for v in sorted(edges):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def layer_of(module: str, root: Path = REPO_ROOT) -> str:
    """The subpackage a module belongs to (`intake`, `contracts`, ...; `contracts.odcs` and the
    subpackage's `__init__` count as `contracts`), or `top` for the package's top-level modules."""
    package, _, rest = module.partition(".")
    first = rest.split(".")[0]
    return first if first and (root / package / first).is_dir() else "top"


def within(module: str, name: str, package: str = PACKAGE) -> bool:
    """`module` is `<package>.<name>` or lies under it."""
    prefix = f"{package}.{name}"
    return module == prefix or module.startswith(prefix + ".")


def breaks_layering(importer: str, imported: str) -> str | None:
    """The rule an import breaks (`contracts/ must not import intake`), or None."""
    for layer, names in FORBIDDEN.items():
        if within(importer, layer):
            for name in names:
                if within(imported, name):
                    return f"{layer}/ must not import {name}"
    return None
