"""Markdown-KV: the tap's reader (three storage patterns), `dativo markdown-kv` (rows rendered as
documents) and their round trip — from a file and from an Iceberg table the target wrote — and the
reader's rows landed by the target."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import PERSON, PERSON_PROPS, open_catalog, person, run_target, schema_msg, state, target_config

from tap_dativo_csv.markdown_kv import parse, pattern_name, read_markdown_kv, rows
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

DATIVO = str(Path(sys.executable).parent / "dativo")

DOC = """---
title: Runbook
tags: [ops, llm]
---
Some prose that is not a pair.

## Model
model: gpt-4
temperature:: 0.2
- owner: data-team@example.com
**status**: live
notes: first line
  second line

```
url: https://example.com/a:b
```
"""


@dataclass
class Options:
    encoding: str = "utf-8"
    chunk_size: int = 10_000
    markdown_kv_pattern: str | None = None


@dataclass
class Read:
    """What the tap's dispatch hands a reader: the file's label, an opener and the options."""

    label: str
    data: bytes
    options: Options

    def open_stream(self) -> io.BytesIO:
        return io.BytesIO(self.data)


def _batches(text: str, pattern: str, chunk: int = 10_000, label: str = "docs/runbook.md") -> list:
    read = Read(label, text.encode(), Options(chunk_size=chunk, markdown_kv_pattern=pattern))
    return list(read_markdown_kv(read))


def test_pairs_sections_front_matter_and_continuations() -> None:
    (doc,) = parse(DOC, "runbook")
    assert doc.doc_id == "runbook"
    assert doc.pairs == [
        ("_front_matter", "title", "Runbook"),
        ("_front_matter", "tags", '["ops","llm"]'),
        ("Model", "model", "gpt-4"),
        ("Model", "temperature", "0.2"),
        ("Model", "owner", "data-team@example.com"),
        ("Model", "status", "live"),
        ("Model", "notes", "first line\nsecond line"),
        ("Model", "url", "https://example.com/a:b"),
    ]


def test_three_patterns() -> None:
    text = "# A-1\nname: Ada\n## Address\ncity: Oslo\n\n# A-2\nname: Bo\n"
    docs = parse(text, "file")
    assert rows(docs, "document") == [
        {"doc_id": "A-1", "content": "# A-1\nname: Ada\n## Address\ncity: Oslo"},
        {"doc_id": "A-2", "content": "# A-2\nname: Bo"},
    ]
    assert rows(docs, "row_per_kv") == [
        {"doc_id": "A-1", "section": "", "key": "name", "value": "Ada", "ord": 0},
        {"doc_id": "A-1", "section": "Address", "key": "city", "value": "Oslo", "ord": 1},
        {"doc_id": "A-2", "section": "", "key": "name", "value": "Bo", "ord": 0},
    ]
    assert rows(docs, "row_per_document") == [
        {"doc_id": "A-1", "name": "Ada", "city": "Oslo"},
        {"doc_id": "A-2", "name": "Bo"},
    ]
    assert pattern_name("string") == "document" and pattern_name("document_level") == "row_per_document"
    with pytest.raises(ValueError, match="markdown_kv_pattern 'tables'"):
        pattern_name("tables")


def test_reader_gives_string_batches_numbered_in_chunks() -> None:
    batches = _batches(DOC, "row_per_kv", chunk=3)
    assert [b.num_rows for b, _ in batches] == [3, 3, 2]
    assert [list(n) for _, n in batches] == [[1, 2, 3], [4, 5, 6], [7, 8]]
    first = batches[0][0]
    assert first.schema == pa.schema([(c, pa.string()) for c in ("doc_id", "section", "key", "value", "ord")])
    assert first.column("doc_id").to_pylist() == ["runbook"] * 3
    ((whole, _),) = _batches("# X\na: 1\n\n# Y\nb: 2\n", "row_per_document")
    assert whole.to_pylist() == [{"doc_id": "X", "a": "1", "b": None}, {"doc_id": "Y", "a": None, "b": "2"}]
    ((doc, _),) = _batches(DOC, "document")
    assert doc.column("content").to_pylist() == [DOC.split("---\n", 2)[2].strip("\n")]


def test_render_and_read_back_a_file(tmp_path: Path) -> None:
    data = [
        {"id": 1, "name": "Ada", "note": "two\nlines", "tags": ["a", "b"], "ok": True, "gone": None},
        {"id": 2, "name": "Bo: the second", "note": None, "tags": [], "ok": False, "gone": None},
    ]
    source = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(data), source)
    out = tmp_path / "rows.md"
    run = subprocess.run(
        [DATIVO, "markdown-kv", "--file", str(source), "--output", str(out)], capture_output=True
    )
    assert run.returncode == 0, run.stderr
    ((batch, _),) = list(
        read_markdown_kv(Read("rows.md", out.read_bytes(), Options(markdown_kv_pattern="row_per_document")))
    )
    assert batch.to_pylist() == [
        {"doc_id": "1", "id": "1", "name": "Ada", "note": "two\nlines", "tags": '["a","b"]', "ok": "true"},
        {"doc_id": "2", "id": "2", "name": "Bo: the second", "note": None, "tags": "[]", "ok": "false"},
    ]


def test_render_rows_of_an_iceberg_table_round_trip(tmp_path: Path) -> None:
    messages = [
        schema_msg("person", PERSON_PROPS, ["id"]),
        *[person(i) for i in range(1, 6)],
        state({"s": 1}),
    ]
    assert run_target(tmp_path, messages, assets={"person": str(PERSON)}).returncode == 0
    config = tmp_path / "cli.json"
    config.write_text(json.dumps(target_config(tmp_path)))
    run = subprocess.run(
        [DATIVO, "markdown-kv", "--config", str(config), "--table", "acme__crm.person"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    back = rows(parse(run.stdout, "person"), "row_per_document")
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    expected = sorted(pyiceberg_rows(table, "acme"), key=lambda r: r["id"])
    assert [r["doc_id"] for r in sorted(back, key=lambda r: int(r["id"]))] == [str(r["id"]) for r in expected]
    for got, want in zip(sorted(back, key=lambda r: int(r["id"])), expected, strict=True):
        assert {k: v for k, v in got.items() if k != "doc_id"} == {
            k: (v.isoformat() if hasattr(v, "isoformat") else str(v))
            for k, v in want.items()
            if v is not None
        }


def test_reader_rows_land_through_the_target(tmp_path: Path) -> None:
    """The reader's rows as a tap would send them (every column a string) land in Iceberg."""
    docs = tmp_path / "notes.md"
    docs.write_text("# n-1\ntitle: First\n## Body\ntext: hello\n\n# n-2\ntitle: Second\n")
    ((batch, numbers),) = list(read_markdown_kv(Read(str(docs), docs.read_bytes(), Options())))
    props: dict[str, Any] = {name: {"type": ["string", "null"]} for name in batch.schema.names}
    messages = [schema_msg("notes", props, ["doc_id", "ord"])]
    messages += [{"type": "RECORD", "stream": "notes", "record": r} for r in batch.to_pylist()]
    messages.append(state({"bookmarks": {"notes": {"rows": len(numbers)}}}))
    run = run_target(tmp_path, messages)
    assert run.returncode == 0, run.stderr
    table = open_catalog(tmp_path).load_table("acme.notes")
    assert duckdb_rows(table, "acme", "SELECT doc_id, section, key, value FROM t ORDER BY doc_id, ord") == [
        ("n-1", "", "title", "First"),
        ("n-1", "Body", "text", "hello"),
        ("n-2", "", "title", "Second"),
    ]


@pytest.mark.parametrize(
    ("pattern", "table", "columns", "expected"),
    [
        ("row_per_kv", "runbook_kv", ("key", "value"), {("model", "gpt-4"), ("status", "live")}),
        ("row_per_document", "runbook_docs", ("model", "status"), {("gpt-4", "live")}),
    ],
)
def test_tap_reads_markdown_kv_files_into_the_target(
    tmp_path: Path, pattern: str, table: str, columns: tuple[str, ...], expected: set
) -> None:
    """`tap-dativo-csv` with a `.md` file (format from the extension) and `markdown_kv_pattern`,
    piped into the target: the pairs land, read back by pyiceberg and DuckDB; a re-run lands nothing
    new."""
    from tap_pipe import Pipeline

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "runbook.md").write_text(DOC)
    pipe = Pipeline(tmp_path / "run")
    tap = {"files": [{"path": str(docs / "runbook.md"), "object": table}], "markdown_kv_pattern": pattern}
    first = pipe.run(tap)
    assert first.records, first.tap_stderr[-3000:]
    landed = pipe.landed(table, columns)
    assert expected <= set(landed), landed
    assert sum(landed.values()) == len(first.records)
    second = pipe.run(tap)
    assert second.records == []
    assert sum(pipe.landed(table, columns).values()) == len(first.records)
