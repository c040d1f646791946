"""The documentation holds together: relative links resolve, README's settings tables are the plugins'
own `--about --format=markdown`, and the docs speak to users, not about the project's history.

Links are checked in README.md and every Markdown file under docs/: a relative link must name an
existing file (or directory), and a `#anchor` must name a heading of the file it points to
(GitHub's anchor rules: lower case, punctuation dropped, spaces as `-`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
LINK = re.compile(
    r"(?<!\!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\""
)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    found: set[str] = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1)).strip().lower()
            slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
            base, n = slug, 1
            while slug in found:
                slug, n = f"{base}-{n}", n + 1
            found.add(slug)
    return found


def _links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    return [next(g for g in m.groups() if g) for m in LINK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I):  # http:, https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(
                f"{link}: no file {target.relative_to(REPO) if target.is_relative_to(REPO) else target}"
            )
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}:\n" + "\n".join(broken)


def test_the_link_checker_sees_links(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "# A title\n[x](other.md#a-title) ![i](img.png)\n```\n[not](a-link.md)\n```\n`[no](no.md)`\n"
    )
    assert _links(page) == ["other.md#a-title", "img.png"]
    assert _anchors(page) == {"a-title"}


HISTORY = re.compile(r"\bissues? #?\d+|\(#\d+\)|\bwork period|\bwave \d|\bsessions? \d", re.I)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_speak_to_users_not_about_history(page: Path) -> None:
    """No issue numbers or the project's work history in user-facing pages."""
    found = [
        f"{n}: {line.strip()}"
        for n, line in enumerate(page.read_text().splitlines(), 1)
        if HISTORY.search(line)
    ]
    assert not found, f"{page.relative_to(REPO)}:\n" + "\n".join(found)


def test_readme_settings_tables_are_the_plugins_about() -> None:
    """README's settings tables are `--about --format=markdown` (scripts/readme_settings.py writes them)."""
    proc = subprocess.run(
        [sys.executable, "scripts/readme_settings.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]


def _meltano_config_examples() -> list[str]:
    """`meltano ... config ...` command lines in the docs' shell blocks."""
    found = []
    for page in PAGES:
        for block in re.findall(r"^```(?:sh|console)\n(.*?)^```", page.read_text(), re.M | re.S):
            found += [
                ln.strip()
                for ln in block.splitlines()
                if re.match(r"^meltano (--environment \S+ )?config ", ln)
            ]
    return found


def test_meltano_config_examples_run_on_meltano_4(
    tmp_path: Path, bin_dir: Path, tool_env: dict[str, str]
) -> None:
    """Every `meltano config` example in the docs runs as written in a copy of this project."""
    examples = _meltano_config_examples()
    assert len(examples) >= 5, examples
    for name in ("meltano.yml", "plugins", "examples"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tmp_path / name)
    env = {
        **tool_env,
        "PATH": f"{bin_dir}:{tool_env['PATH']}",
        "DATIVO_S3_SECRET_ACCESS_KEY": "s3cr3t-example",
    }
    for line in examples:
        proc = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    printed = subprocess.run(
        ["bash", "-c", "meltano config --unsafe print target-dativo-iceberg --format json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    config = json.loads(printed.stdout)
    assert config["connection"]["s3"] == {
        "endpoint": "http://127.0.0.1:8333",
        "secret_access_key": "s3cr3t-example",
    }
    assert config["assets"] == {"person": "examples/contracts/person.odcs.yaml"}
    assert "s3cr3t-example" in (tmp_path / ".env").read_text()
