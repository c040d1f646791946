#!/usr/bin/env python
"""Write README.md's settings tables from the plugins' own `--about --format=markdown`.

The tables sit between marker comments in README.md
(`<!-- settings:NAME ... -->` ... `<!-- /settings:NAME -->`); everything else in the README is left
as it is. The settings' names, defaults and descriptions are declared once in the code, so the
README cannot drift from what the plugins accept (tests/test_docs.py runs `--check`).

    python scripts/readme_settings.py           # rewrite the tables
    python scripts/readme_settings.py --check   # write nothing; exit 1 when README.md differs
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("target-dativo-iceberg", "tap-dativo-csv")


def about_markdown(executable: str) -> str:
    """`EXECUTABLE --about --format=markdown`, from the environment running this script."""
    local = Path(sys.executable).parent / executable
    command = str(local) if local.exists() else shutil.which(executable)
    if not command:
        raise SystemExit(f"{executable} not found next to {sys.executable} nor on PATH: install the project")
    return subprocess.run(
        [command, "--about", "--format=markdown"], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout


def section(markdown: str, title: str) -> str:
    """The body of `## TITLE` in the --about markdown."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    if not match:
        raise SystemExit(f"--about --format=markdown has no '## {title}' section")
    return match.group(1).strip()


def block(name: str) -> str:
    """The generated block of one plugin: capabilities on one line, then the settings table."""
    markdown = about_markdown(name)
    capabilities = re.findall(r"^- `([^`]+)`", section(markdown, "Capabilities"), re.M)
    return (
        f"<!-- settings:{name} (written by scripts/readme_settings.py from `{name} --about "
        "--format=markdown`; do not edit) -->\n"
        f"Capabilities: {', '.join(f'`{c}`' for c in capabilities)}.\n\n"
        f"{section(markdown, 'Settings')}\n"
        f"<!-- /settings:{name} -->"
    )


def rendered(readme: str) -> str:
    """README text with every plugin's block regenerated."""
    for name in PLUGINS:
        pattern = re.compile(
            rf"<!-- settings:{re.escape(name)}[ >].*?<!-- /settings:{re.escape(name)} -->", re.S
        )
        if not pattern.search(readme):
            raise SystemExit(
                f"README.md has no `<!-- settings:{name} -->` ... `<!-- /settings:{name} -->` block"
            )
        readme = pattern.sub(lambda _, name=name: block(name), readme, count=1)
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when README.md differs")
    args = parser.parse_args(argv)
    path = ROOT / "README.md"
    current = path.read_text()
    wanted = rendered(current)
    if current == wanted:
        print("up to date: README.md")
        return 0
    if args.check:
        print("DRIFT: README.md settings tables differ from the plugins' --about (run `make lock`)")
        sys.stdout.writelines(
            difflib.unified_diff(current.splitlines(True), wanted.splitlines(True), "README.md", "generated")
        )
        return 1
    path.write_text(wanted)
    print("wrote: README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
