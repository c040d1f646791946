"""Draw docs/architecture.png: the packages of `target_dativo_iceberg`, their modules and the imports between them.

Run from the repository root:

    pip install -e '.[docs]' && python scripts/architecture_diagram.py

The picture comes from the source (read with `ast` by `scripts/import_graph.py`; nothing is imported),
so re-run it after moving modules. One box per package with its modules and their line counts; the
top level is drawn as two boxes, the target and its sink above everything and the modules every layer
shares at the bottom (those a subpackage imports). An arrow counts the module-level imports from one
box's modules into another's (pairs of modules); imports under `if TYPE_CHECKING:` and inside
functions are left out. Red marks a module over the size limit and an import that breaks a layering
rule (`tests/test_architecture.py` fails on both).
"""

from __future__ import annotations

import argparse
import ast
import io
import math
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path as MplPath
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import import_graph as graph

TARGET, SHARED = "top: target", "top: shared"
#: Box titles and, for the two top-level boxes, their job (subpackages say theirs in `__init__.py`).
TITLES = {
    TARGET: ("top level: the target", "The Singer target and its sink, and what they hand a sink."),
    SHARED: ("top level: shared", "Settings, errors, events and helpers that every layer imports."),
}
#: Where each box sits in the 1800 × 1260 canvas: x of the left edge, y of the top edge, width, and
#: module columns. Layers from top to bottom: the target; intake, delivery, operations; contracts;
#: iceberg and the shared modules. Between delivery and ops runs a corridor for the long arrows down.
PLACES = {
    TARGET: (600, 30, 600, 1),
    "intake": (30, 310, 440, 1),
    "delivery": (620, 310, 330, 1),
    "ops": (1320, 310, 450, 1),
    "contracts": (30, 650, 560, 2),
    "iceberg": (640, 930, 600, 2),
    "files": (30, 1250, 560, 1),
    SHARED: (1300, 930, 490, 2),
}
#: How each arrow runs: where it leaves its box (`side@coordinate`: `b@700` is the bottom edge at
#: x=700, `l@440` the left edge at y=440), the bends on its way, where it enters the other box, and
#: where along the way its count sits (0..1). An import between boxes not listed here is drawn as a
#: straight line between the box centres (and the script says so: give it a route).
ROUTES = {
    (TARGET, "intake"): ("l@150", [], "t@330", 0.5),
    (TARGET, "delivery"): ("b@700", [], "t@700", 0.5),
    (TARGET, "ops"): ("r@150", [], "t@1450", 0.5),
    (TARGET, "contracts"): ("b@615", [], "t@530", 0.25),
    (TARGET, "iceberg"): ("b@1010", [], "t@1010", 0.35),
    (TARGET, SHARED): ("b@1150", [], "t@1480", 0.25),
    ("intake", "contracts"): ("b@150", [], "t@150", 0.5),
    ("contracts", "intake"): ("t@300", [], "b@300", 0.5),
    ("intake", "delivery"): ("r@380", [], "l@380", 0.5),
    ("delivery", "intake"): ("l@440", [], "r@440", 0.5),
    ("intake", "iceberg"): ("b@440", [(615, 640)], "t@680", 0.75),
    ("intake", SHARED): ("r@560", [], "t@1385", 0.38),
    ("delivery", "iceberg"): ("b@760", [], "t@760", 0.5),
    ("delivery", SHARED): ("b@900", [], "t@1430", 0.45),
    ("contracts", "iceberg"): ("b@560", [], "l@1000", 0.5),
    ("contracts", SHARED): ("r@700", [], "t@1340", 0.3),
    ("ops", "iceberg"): ("b@1360", [], "t@1200", 0.15),
    ("ops", "contracts"): ("b@1335", [(1335, 625), (575, 625)], "t@575", 0.3),
    ("ops", SHARED): ("b@1600", [], "t@1600", 0.5),
    ("iceberg", SHARED): ("r@990", [], "l@990", 0.5),
    (SHARED, "iceberg"): ("l@1050", [], "r@1050", 0.5),
}
COLOURS = {
    TARGET: "#dbe8f6",
    "intake": "#e2f0d9",
    "delivery": "#fdebd3",
    "ops": "#ece2f4",
    "contracts": "#fbe3e3",
    "iceberg": "#d9eef0",
    SHARED: "#eeeeee",
}
RED = "#c0392b"
WIDTH, HEIGHT = 1800, 1260
LINE = 21  # px per module line
TITLE = 38  # px for a box's title
JOB_LINE = 17  # px per line of its job
MODULE_PATHS = graph.modules()


@dataclass
class Box:
    key: str
    modules: list[tuple[str, int]] = field(default_factory=list)  # (shown name, lines)
    x: float = 0
    y: float = 0
    w: float = 0
    h: float = 0
    columns: int = 1
    job: list[str] = field(default_factory=list)
    header: float = 0

    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def anchor(self, spec: str) -> tuple[float, float]:
        """`b@700` → the point of the bottom edge at x=700 (`t`, `b`: x given; `l`, `r`: y given)."""
        side, _, at = spec.partition("@")
        value = float(at)
        low, high = (self.x, self.x + self.w) if side in "tb" else (self.y, self.y + self.h)
        if not low <= value <= high:
            print(
                f"note: {spec} lies off the {self.key} box ({low:.0f}..{high:.0f}); adjust ROUTES",
                file=sys.stderr,
            )
        return {
            "t": (value, self.y),
            "b": (value, self.y + self.h),
            "l": (self.x, value),
            "r": (self.x + self.w, value),
        }[side]

    def border_point(self, towards: tuple[float, float]) -> tuple[float, float]:
        """Where the line from the box's centre towards a point leaves the box."""
        (sx, sy), (tx, ty) = self.centre(), towards
        dx, dy = tx - sx, ty - sy
        scales = []
        if dx:
            scales.append(((self.x + self.w if dx > 0 else self.x) - sx) / dx)
        if dy:
            scales.append(((self.y + self.h if dy > 0 else self.y) - sy) / dy)
        s = min(v for v in scales if v > 0)
        return sx + dx * s, sy + dy * s


#: Subpackages drawn inside the shared box (what every layer imports, split into modules).
SHARED_PACKAGES = {"settings"}


def box_of(module: str, shared_top: set[str]) -> str:
    layer = graph.layer_of(module)
    if layer in SHARED_PACKAGES:
        return SHARED
    if layer != "top":
        return layer
    return SHARED if module in shared_top else TARGET


def shown_name(module: str, layer: str) -> str:
    """`target_dativo_iceberg.contracts.odcs.types` → `odcs/types.py` in the contracts box."""
    parts = module.split(".")[1:]
    if parts and parts[0] == layer and layer not in SHARED_PACKAGES:
        parts = parts[1:]
    path = MODULE_PATHS[module]
    if path.name == "__init__.py":
        return "/".join(parts + ["__init__.py"])
    return "/".join(parts) + ".py"


def job_of(layer: str) -> str:
    if layer in TITLES:
        return TITLES[layer][1]
    doc = ast.get_docstring(graph.parse(MODULE_PATHS[f"{graph.PACKAGE}.{layer}"])) or ""
    return doc.splitlines()[0] if doc else ""


def build() -> tuple[dict[str, Box], Counter[tuple[str, str]], set[tuple[str, str]]]:
    imports = [i for i in graph.all_imports() if i.where == graph.MODULE_LEVEL]
    shared_top = {
        i.imported
        for i in imports
        if graph.layer_of(i.imported) == "top" and graph.layer_of(i.importer) != "top"
    }
    boxes = {key: Box(key) for key in PLACES}
    for module, path in MODULE_PATHS.items():
        lines = graph.line_count(path)
        if path.name == "__init__.py" and lines <= 1:
            continue  # a package's one-line docstring: nothing to show
        key = box_of(module, shared_top)
        if key not in boxes:
            raise SystemExit(f"{path}: package {key!r} has no place in PLACES; give it one")
        boxes[key].modules.append((shown_name(module, graph.layer_of(module)), lines))
    pairs = {(i.importer, i.imported) for i in imports}
    edges: Counter[tuple[str, str]] = Counter()
    broken: set[tuple[str, str]] = set()
    for importer, imported in pairs:
        a, b = box_of(importer, shared_top), box_of(imported, shared_top)
        if a != b:
            edges[a, b] += 1
            if graph.breaks_layering(importer, imported):
                broken.add((a, b))
    for box in boxes.values():
        box.modules.sort(key=lambda m: (m[0].count("/"), m[0]))
        box.x, box.y, box.w, box.columns = PLACES[box.key]
        box.job = textwrap.wrap(job_of(box.key), width=int((box.w - 28) / 7.6))
        box.header = TITLE + JOB_LINE * len(box.job) + 8
        box.h = box.header + LINE * math.ceil(len(box.modules) / box.columns) + 12
    return boxes, edges, broken


def draw_box(ax, box: Box) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (box.x, box.y),
            box.w,
            box.h,
            boxstyle="round,pad=0,rounding_size=12",
            facecolor=COLOURS[box.key],
            edgecolor="#555555",
            linewidth=1.4,
            zorder=3,
        )
    )
    title = TITLES[box.key][0] if box.key in TITLES else f"{box.key}/"
    total = sum(n for _, n in box.modules)
    ax.text(box.x + 14, box.y + 10, title, fontsize=15, fontweight="bold", va="top", zorder=4)
    ax.text(
        box.x + box.w - 14,
        box.y + 13,
        f"{len(box.modules)} modules, {total} lines",
        fontsize=10,
        color="#444444",
        va="top",
        ha="right",
        zorder=4,
    )
    for i, line in enumerate(box.job):
        ax.text(
            box.x + 14,
            box.y + TITLE + i * JOB_LINE,
            line,
            fontsize=10,
            style="italic",
            color="#333333",
            va="top",
            zorder=4,
        )
    rows = math.ceil(len(box.modules) / box.columns)
    col_w = (box.w - 28) / box.columns
    for i, (name, lines) in enumerate(box.modules):
        col, row = divmod(i, rows)
        x = box.x + 14 + col * col_w
        y = box.y + box.header + row * LINE
        over = lines > graph.MAX_LINES
        style = {"color": RED, "fontweight": "bold"} if over else {"color": "#111111"}
        ax.text(x, y, name, fontsize=11, family="monospace", va="top", zorder=4, **style)
        ax.text(
            x + col_w - 22,
            y,
            str(lines),
            fontsize=11,
            family="monospace",
            va="top",
            ha="right",
            zorder=4,
            **style,
        )


def route(boxes: dict[str, Box], a: str, b: str) -> tuple[list[tuple[float, float]], float]:
    """The points an arrow runs through, and where along it the count sits."""
    if (a, b) in ROUTES:
        start, bends, end, label_at = ROUTES[a, b]
        return [boxes[a].anchor(start), *bends, boxes[b].anchor(end)], label_at
    print(f"note: no route for {a} → {b} in ROUTES; drawn straight", file=sys.stderr)
    return [boxes[a].border_point(boxes[b].centre()), boxes[b].border_point(boxes[a].centre())], 0.5


def point_along(points: list[tuple[float, float]], t: float) -> tuple[float, float]:
    """The point at fraction t of a polyline's length."""
    segments = list(pairwise(points))
    lengths = [math.dist(p, q) for p, q in segments]
    left = t * sum(lengths)
    for (p, q), length in zip(segments, lengths, strict=True):
        if left <= length:
            f = left / length if length else 0
            return p[0] + (q[0] - p[0]) * f, p[1] + (q[1] - p[1]) * f
        left -= length
    return points[-1]


def draw_edge(ax, boxes: dict[str, Box], a: str, b: str, count: int, broken: bool) -> None:
    points, label_at = route(boxes, a, b)
    colour = RED if broken else "#34495e"
    codes = [MplPath.MOVETO] + [MplPath.LINETO] * (len(points) - 1)
    ax.add_patch(
        FancyArrowPatch(
            path=MplPath(points, codes),
            arrowstyle="-|>,head_length=10,head_width=5",
            color=colour,
            linewidth=1.0 + 1.1 * math.log2(count + 1),
            joinstyle="round",
            zorder=2,
        )
    )
    x, y = point_along(points, label_at)
    ax.text(
        x,
        y,
        str(count),
        fontsize=12,
        fontweight="bold",
        color=colour,
        ha="center",
        va="center",
        zorder=5,
        bbox={"boxstyle": "circle,pad=0.25", "facecolor": "white", "edgecolor": colour, "linewidth": 1.2},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=graph.REPO_ROOT / "docs" / "architecture.png")
    args = parser.parse_args(argv)
    boxes, edges, broken = build()
    fig = plt.figure(figsize=(WIDTH / 100, HEIGHT / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(HEIGHT, 0)
    ax.axis("off")
    for box in boxes.values():
        draw_box(ax, box)
    for (a, b), count in sorted(edges.items()):
        draw_edge(ax, boxes, a, b, count, (a, b) in broken)
    legend = (
        "box: a package with its modules and their lines (the top level split: the target above, the modules "
        "every layer imports below)\n"
        "arrow: module-level imports from one box's modules into another's, the number counts importing/imported "
        "module pairs (TYPE_CHECKING and function-level imports left out)\n"
        f"red: a module over {graph.MAX_LINES} lines, or imports that break a layering rule of "
        "docs/architecture.md (tests/test_architecture.py fails on both)"
    )
    ax.text(30, HEIGHT - 12, legend, fontsize=10.5, color="#333333", ha="left", va="bottom", linespacing=1.5)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, facecolor="white")
    image = Image.open(buffer).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    image.save(args.out, optimize=True)  # a palette image: a third of the size, same look
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
