"""Markdown-KV files as string batches, in the three storage patterns of the Dativo platform.

Markdown-KV is Markdown whose content is `key: value` lines grouped under headings — a shape LLM
pipelines read and write well. A file holds one document, or several: each level-1 heading
(`# Order 1042`) starts a document whose id is the heading text; without one the document's id is
the file name without extension. Inside a document:

- YAML front matter at the top of the file (`---` ... `---`): its keys are pairs of section
  `_front_matter` (objects and lists as compact JSON);
- `## Section` to `###### Section` headings name the section of the pairs below them;
- a pair is a line `key: value` (also `key:: value`, `- key: value`, `**key**: value`); lines
  indented by two spaces or a tab right after it continue its value (joined with newlines);
- code fence lines (```` ``` ````) are skipped, other lines (prose) ignored. Values are stripped.

Patterns (`markdown_kv_pattern`):
- `document` (the platform's `string`): one row per document, `doc_id` and `content` (its Markdown);
- `row_per_kv`: one row per pair, `doc_id`, `section`, `key`, `value`, `ord` (position in the document);
- `row_per_document` (the platform's `document_level`): one row per document, `doc_id` and one
  column per key (a key repeated in a document: the last value).

`read_markdown_kv` is a reader of the tap's format dispatch (format name → reader: string batches
with each row's number). `dativo markdown-kv` writes what `row_per_document` reads back.
"""

from __future__ import annotations

import io
import json
import re
import typing as t
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import pyarrow as pa
import yaml
from singer_sdk import typing as th

if t.TYPE_CHECKING:
    from tap_dativo_csv.fileread import FileRead

PATTERNS = ("document", "row_per_kv", "row_per_document")
ALIASES = {"string": "document", "document_level": "row_per_document", "row_per_kv": "row_per_kv"}
DEFAULT_PATTERN = "row_per_kv"
FRONT_MATTER = "_front_matter"
#: Columns of the fixed-shape patterns.
COLUMNS = {"document": ("doc_id", "content"), "row_per_kv": ("doc_id", "section", "key", "value", "ord")}

#: The tap setting choosing the pattern (declared here; `settings.CONFIG_SCHEMA` lists it and
#: `CSVOptions.markdown_kv_pattern` carries it to `read_markdown_kv`).
PATTERN_SETTING = th.Property(
    "markdown_kv_pattern",
    th.StringType,
    default=DEFAULT_PATTERN,
    allowed_values=[*PATTERNS, "string", "document_level"],
    description=(
        "Markdown-KV storage pattern: `document` (one row per document: doc_id, content), `row_per_kv` "
        "(doc_id, section, key, value, ord) or `row_per_document` (doc_id and one column per key)."
    ),
)

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_PAIR = re.compile(r"^(?:[-*+]\s+)?(?:\*\*([^*:][^*]*?):?\*\*:?|([^\s:#>|`*-][^:]{0,127}?)::?)(?:\s+(.*)|$)")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass
class Document:
    """One Markdown-KV document: its id, Markdown text and pairs (section, key, value) in order."""

    doc_id: str
    lines: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def content(self) -> str:
        return "\n".join(self.lines).strip("\n")


def pattern_name(value: str | None) -> str:
    """The pattern a setting names (platform aliases accepted); ValueError for an unknown one."""
    name = ALIASES.get(value or DEFAULT_PATTERN, value or DEFAULT_PATTERN)
    if name not in PATTERNS:
        raise ValueError(f"markdown_kv_pattern {value!r}: expected one of {', '.join(PATTERNS)}")
    return name


def _front_matter(text: str) -> tuple[list[tuple[str, str]], str, int]:
    """(pairs, the rest of the text, lines the front matter took)."""
    if not text.startswith("---"):
        return [], text, 0
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return [], text, 0
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            try:
                data = yaml.safe_load("\n".join(lines[1:end])) or {}
            except yaml.YAMLError:
                return [], text, 0
            if not isinstance(data, dict):
                return [], text, 0
            pairs = [(str(k), _text(v)) for k, v in data.items() if v is not None]
            return pairs, "\n".join(lines[end + 1 :]), end + 1
    return [], text, 0


def _text(value: t.Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(value)


def parse(text: str, default_id: str) -> list[Document]:
    """The documents of one Markdown-KV text (`default_id`: the id of a document without `# `)."""
    front, body, _ = _front_matter(text.replace("\r\n", "\n"))
    docs = [Document(default_id)]
    docs[0].pairs.extend((FRONT_MATTER, k, v) for k, v in front)
    section = ""
    open_pair: list[str] | None = None  # the value lines of the pair being read
    for line in body.split("\n"):
        heading = _HEADING.match(line)
        if heading and len(heading.group(1)) == 1:
            if docs[-1].pairs or docs[-1].content.strip() or len(docs) > 1:
                docs.append(Document(heading.group(2)))
            else:
                docs[-1].doc_id = heading.group(2)
            docs[-1].lines.append(line)
            section, open_pair = "", None
            continue
        docs[-1].lines.append(line)
        if heading:
            section, open_pair = heading.group(2), None
            continue
        if _FENCE.match(line):
            open_pair = None
            continue
        if open_pair is not None and line[:1] in (" ", "\t") and line.strip():
            open_pair.append(line.strip())
            _close(docs[-1], open_pair)
            continue
        pair = _PAIR.match(line)
        if pair:
            key = (pair.group(1) or pair.group(2) or "").strip()
            open_pair = [(pair.group(3) or "").strip()]
            docs[-1].pairs.append((section, key, open_pair[0]))
        else:
            open_pair = None
    return [d for d in docs if d.pairs or d.content.strip()]


def _close(doc: Document, value_lines: list[str]) -> None:
    section, key, _ = doc.pairs[-1]
    doc.pairs[-1] = (section, key, "\n".join(value_lines).strip())


def rows(docs: Sequence[Document], pattern: str) -> list[dict[str, t.Any]]:
    """The documents as rows of `pattern` (values are text; `ord` an integer)."""
    out: list[dict[str, t.Any]] = []
    for doc in docs:
        if pattern == "document":
            out.append({"doc_id": doc.doc_id, "content": doc.content})
        elif pattern == "row_per_kv":
            for i, (section, key, value) in enumerate(doc.pairs):
                out.append({"doc_id": doc.doc_id, "section": section, "key": key, "value": value, "ord": i})
        else:
            row: dict[str, t.Any] = {"doc_id": doc.doc_id}
            row.update({key: value for _, key, value in doc.pairs})
            out.append(row)
    return out


def read_markdown_kv(read: FileRead) -> Iterator[tuple[pa.RecordBatch, Sequence[int]]]:
    """Reader for the tap's format dispatch: the file's rows (pattern from
    `options.markdown_kv_pattern`) as string batches of at most `chunk_size` rows, numbered 1.."""
    pattern = pattern_name(getattr(read.options, "markdown_kv_pattern", None))
    with read.open_stream() as stream:
        text = io.TextIOWrapper(stream, encoding=read.options.encoding or "utf-8").read()
    name = PurePosixPath(read.label.split("?", 1)[0]).name
    found = rows(parse(text, name.rsplit(".", 1)[0] if "." in name else name), pattern)
    names = list(COLUMNS.get(pattern, ()))
    for row in found:
        names.extend(k for k in row if k not in names)
    chunk = max(1, read.options.chunk_size)
    for start in range(0, len(found), chunk):
        part = found[start : start + chunk]
        columns = [pa.array([_cell(r.get(n)) for r in part], pa.string()) for n in names]
        yield pa.RecordBatch.from_arrays(columns, names=names), range(start + 1, start + len(part) + 1)


def _cell(value: t.Any) -> str | None:
    return None if value is None else str(value)
