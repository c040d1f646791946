"""Charts of a bench/run: records/s per case (bars) and memory over time (lines), as small PNG files.

Needs matplotlib (`pip install -e '.[docs]'`); bench/run skips the charts with a note without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {"singer": "#3b6ea8", "csv": "#8a8a8a", "upsert": "#c2702e"}
#: Cases drawn in the memory plot (when present), with their line style.
RSS_CASES = {
    "target": "-",
    "target-no-contract": "-",
    "sdk-noop": ":",
    "sdk-noop-validate": ":",
    "append-big": "--",
    "upsert-big": "-",
}
RSS_LIMIT_MB = 600


def _sizes_note(results: list[Any], upsert_base: int) -> str:
    plain = sorted({r.records for r in results if r.group != "upsert"})
    parts = [f"{n:,} records" for n in plain]
    big = [r for r in results if r.group == "upsert"]
    if big:
        parts.append(f"upsert/append: {big[0].records:,} records into a {upsert_base:,}-row table")
    return "; ".join(parts)


def draw(results: list[Any], out_dir: Path, info: dict[str, Any], upsert_base: int) -> list[Path]:
    """Write `bench-throughput.png` and `bench-rss.png` into `out_dir`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    note = f"{_sizes_note(results, upsert_base)} · {info['cpus']} cores · {info['date']}"
    load = max((r.load_before for r in results), default=0.0)
    if load > (info.get("cpus") or 1):
        note += (
            f"\nbusy machine (load average up to {load:.0f}): compare cases of this run, not absolute numbers"
        )
    largest = max((r.records for r in results if r.group != "upsert"), default=0)
    shown = [r for r in results if r.group == "upsert" or r.records == largest]
    shown.sort(key=lambda r: r.rps)

    fig, ax = plt.subplots(figsize=(8, 0.42 * len(shown) + 1.4), dpi=80)
    bars = ax.barh(
        [r.case for r in shown], [r.rps for r in shown], color=[COLORS.get(r.group, "#555") for r in shown]
    )
    for bar, r in zip(bars, shown, strict=True):
        ax.text(
            bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {r.rps:,.0f}", va="center", fontsize=8
        )
    ax.set_xlabel("records/s (higher is better)")
    ax.set_title(f"Throughput per case\n{note}", fontsize=9)
    ax.set_xlim(0, max((r.rps for r in shown), default=1) * 1.18)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    throughput = out_dir / "bench-throughput.png"
    fig.savefig(throughput)
    plt.close(fig)

    drawn = [
        r
        for r in results
        if r.case in RSS_CASES
        and r.extra.get("rss_timeline_mb")
        and (r.group == "upsert" or r.records == largest)
    ]
    columns = min(3, max(1, len(drawn)))
    rows = max(1, -(-len(drawn) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(8, 1.9 * rows + 1.1), dpi=80, sharey=True, squeeze=False)
    top = max([RSS_LIMIT_MB * 1.08, *(r.peak_rss_mb * 1.1 for r in drawn)])
    for ax, r in zip(axes.flat, drawn, strict=False):
        seconds, mb = zip(*r.extra["rss_timeline_mb"], strict=True)
        ax.plot(seconds, mb, color=COLORS.get(r.group, "#555"), linewidth=1.4)
        ax.axhline(RSS_LIMIT_MB, color="#b22", linewidth=0.8, linestyle="--")
        ax.set_title(f"{r.case}: peak {r.peak_rss_mb:.0f} MB", fontsize=8)
        ax.set_ylim(0, top)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(drawn) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("RSS MB", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("seconds", fontsize=8)
    fig.suptitle(
        f"Memory of each case's process tree over time (dashed: {RSS_LIMIT_MB} MB)\n{note}", fontsize=9
    )
    fig.tight_layout()
    rss = out_dir / "bench-rss.png"
    fig.savefig(rss)
    plt.close(fig)
    return [throughput, rss]


def main(argv: list[str] | None = None) -> int:
    """Redraw the charts from a bench/run JSON report: `charts.py RESULTS.json [--out DIR]`."""
    import argparse
    import json
    from types import SimpleNamespace

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    payload = json.loads(args.report.read_text())
    results = [SimpleNamespace(**r) for r in payload["results"]]
    base = payload.get("upsert_base", 2_000_000)
    for path in draw(results, args.out, payload["machine"], base):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
