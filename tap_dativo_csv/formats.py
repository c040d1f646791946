"""File formats by name and extension: which reader a file goes to, and which files a directory holds.

`format` (top level or per file entry) names the format; unset, the file's extension decides, a
compression suffix (`.gz`, `.bz2`, `.zst`, `.lz4`) looked through. The readers themselves are
dispatched in `chunks.READERS` (format name → reader function).
"""

from __future__ import annotations

FORMATS = ("csv", "json", "ndjson", "markdown_kv")
#: Extension (lower case, after a compression suffix is removed) → format.
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".md": "markdown_kv",
}
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")
#: Suffixes (case-insensitive) a directory-like path picks up: every format, plain or gzipped.
SUFFIXES = tuple(ext + gz for ext in EXTENSIONS if ext != ".md" for gz in ("", ".gz"))
#: Formats whose files can be read from where the last run stopped (line-oriented, no closing token).
RESUMABLE = ("csv", "ndjson")


def is_compressed(path: str) -> bool:
    """A file pyarrow decompresses on the fly (so byte offsets of its content are not file offsets)."""
    return path.lower().endswith(COMPRESSION_SUFFIXES)


def detect_format(path: str, configured: str | None = None) -> str:
    """The format of one file: `configured` when set, else from its extension (csv when unknown,
    so a glob such as `exports/*.txt` keeps reading delimited text as before)."""
    if configured:
        return configured
    name = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    dot = name.rfind(".")
    return EXTENSIONS.get(name[dot:], "csv") if dot >= 0 else "csv"
