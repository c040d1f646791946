"""Lone UTF-16 surrogates: text JSON can carry (`"\\ud800"`) but no UTF-8 column can store.

Python decodes such an escape to a string that Arrow, Parquet and every UTF-8 encoder refuse; found
early, it is a type violation of its field (named, or rejected in warn mode), not a crash at commit.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def may_hold_surrogates(line: bytes | None) -> bool:
    """Whether a JSON line can decode to a lone surrogate (only a `\\ud800`-style escape can)."""
    return line is None or _SURROGATE_ESCAPE.search(line) is not None


def lone_surrogate(value: Any, path: str = "") -> tuple[str, str] | None:
    """(field path, character) of the first lone UTF-16 surrogate in a record's keys or strings.

    JSON allows `"\\ud800"`; Python decodes it to a string no UTF-8 encoder (Arrow, Parquet)
    accepts, so such a value is a type violation of its field, not a crash at commit time.
    """
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return path, value[exc.start]
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            found = lone_surrogate(key, sub) or lone_surrogate(item, sub)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = lone_surrogate(item, f"{path}[{index}]")
            if found:
                return found
    return None


def surrogate_message(char: str) -> str:
    """What is wrong with a string holding the lone surrogate `char`."""
    return f"contains the lone UTF-16 surrogate \\u{ord(char):04x}, which is not valid Unicode text"
