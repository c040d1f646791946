"""Summarize a py-spy collapsed-stack profile (`bench/run --py-spy DIR` writes them).

Prints the functions holding the most samples, inclusive (anywhere on the stack) and self (on top).

    python bench/profile_summary.py .local/bench/profiles/target-100000.collapsed.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*?)(?::\d+)?\)$")


def _frame(raw: str) -> str:
    """`func (path/to/pkg/file.py:123)` → `func (pkg/file.py)`; no line number, so a function sums up."""
    match = _FRAME.match(raw)
    if not match:
        return raw
    short = "/".join(match.group("path").split("/")[-2:])
    return f"{match.group('name')} ({short})"


def summarize(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Total samples, inclusive samples per function, self samples per function."""
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_frame(f) for f in stack.split(";") if f]
        total += samples
        for name in set(frames):
            inclusive[name] += samples
        if frames:
            own[frames[-1]] += samples
    return total, inclusive, own


def main(argv: list[str] | None = None) -> int:
    """CLI: print the two top lists."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    total, inclusive, own = summarize(args.profile)
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"\n{title} (of {total} samples)")
        for name, samples in counter.most_common(args.top):
            print(f"{100 * samples / total:6.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
