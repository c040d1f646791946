"""Secret redaction, the one used by every output: events, error messages, log lines, `dativo` commands.

Secrets reach messages in two ways: inside text that names them (a URI's `user:password@`, a
`?password=` query or JDBC `;password=` property, a `'token': '...'` entry of a printed mapping) and
as bare values a library echoes. So there are two rules (docs/catalogs.md, "Secrets"):

1. Structural, any length: the password of a URI's user-info, the value of any `name=value` pair and
   of any quoted `'name': 'value'` / `"name": "value"` entry whose name looks secret (`is_secret_name`),
   and the token after `Bearer`.
2. Known values: each configured secret (`Settings.secret_values`) of at least `MIN_TOKEN_LENGTH`
   characters wherever it appears as a whole token, i.e. not inside a longer run of letters, digits and
   `_`. Whole tokens, because a password `postgres` must not turn `postgresql://` into `***ql://`; a
   minimum length, because a one-letter password would star that letter everywhere. Shorter secrets are
   hidden by rule 1 only.

Everything is replaced by `***`. `activate` makes a redactor the process's own: log records (their
message and traceback) are redacted when created, and `RedactingStream` redacts what is written to it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from typing import Any, TextIO
from urllib.parse import unquote

MASK = "***"
MIN_TOKEN_LENGTH = 4

_SECRET_WORD = (
    r"pass(?:word|wd|phrase)?(?![a-z])|pwd|secret|token|credential|signature|authorization"
    r"|(?:access|api|account|private|signing|encryption)[-_.]?key"
)
_SECRET_NAME = re.compile(_SECRET_WORD, re.IGNORECASE)
# A parameter or entry name that looks secret (the regex form of `is_secret_name`).
_NAME = rf"(?i:[\w.-]*?(?:{_SECRET_WORD})[\w.-]*|(?:key|sig)(?![\w.-]))"
# `scheme://user:password@`: the password runs to the last `@` before the path, query or whitespace.
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@'\"]*:)(?P<secret>[^\s/?#'\"]+)(?P<tail>@)"
)


def _param(value: str) -> re.Pattern[str]:
    """`name=value` with a secret-looking name: URI query parameters, JDBC `;name=value` properties,
    libpq `name=value` DSNs; `value` is the unquoted value's pattern."""
    return re.compile(
        rf"(?P<head>(?<![\w.-]){_NAME}[ \t]?=[ \t]?)(?P<secret>'[^']*'|\"[^\"]*\"|{value})(?P<tail>)"
    )


# In a message a value stops before trailing punctuation (`...?password=x: refused`); in a
# configured URI it runs to the end.
_PARAM = _param(r"[^\s&;#'\"]*[^\s&;#'\":,.)\]]")
_URI_PARAM = _param(r"[^\s&;#'\"]+")
# `'name': 'value'` / `"name": "value"`: printed mappings and JSON.
_ENTRY = re.compile(
    rf"(?P<head>(?P<q>['\"]){_NAME}(?P=q)\s*:\s*(?P<vq>['\"]))"
    r"(?P<secret>(?:\\.|(?!(?P=vq))[^\\])+)(?P<tail>(?P=vq))"
)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)(?P<secret>[A-Za-z0-9\-._~+/]+=*)(?P<tail>)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a setting, property or parameter with this name holds a secret (password, secret,
    token, credential, signature, access/API/account/private key; `key` and `sig` alone)."""
    lowered = name.strip().lower()
    return lowered in ("key", "sig") or bool(_SECRET_NAME.search(lowered))


def _mask(match: re.Match[str]) -> str:
    return f"{match['head']}{MASK}{match['tail']}"


def uri_secrets(uri: str) -> list[str]:
    """The secrets written into a URI: its user-info password and its secret-named parameters."""
    found = [m["secret"] for m in _USERINFO.finditer(uri)]
    found += [m["secret"] for m in _URI_PARAM.finditer(uri)]
    return [s.strip("'\"") for s in found if s.strip("'\"")]


def mapping_secrets(values: Mapping[str, Any]) -> list[str]:
    """Secret values of a (nested) settings mapping: entries with secret-looking names, and the
    secrets inside any URI-valued entry."""
    out: list[str] = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            out += mapping_secrets(value)
        elif isinstance(value, str) and value:
            out += [value] if is_secret_name(str(key)) else uri_secrets(value)
        elif value not in (None, "", False) and is_secret_name(str(key)):
            out.append(str(value))
    return out


def _variants(secret: str) -> set[str]:
    """The secret as configured, percent-decoded (URIs) and JSON-escaped (printed JSON)."""
    return {secret, unquote(secret), json.dumps(secret)[1:-1]}


def _token_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any of `secrets` as a whole token, longest first."""
    parts = []
    for secret in sorted(secrets, key=len, reverse=True):
        part = re.escape(secret)
        if re.match(r"\w", secret[0], re.ASCII):
            part = r"(?<!\w)" + part
        if re.match(r"\w", secret[-1], re.ASCII):
            part += r"(?!\w)"
        parts.append(part)
    return re.compile("|".join(parts), re.ASCII) if parts else None


class Redactor:
    """Applies both rules (module docstring) with a fixed set of known secret values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {v for s in secrets if s for v in _variants(str(s))}
        self.secrets = frozenset(values)
        self._known = _token_pattern(v for v in values if len(v) >= MIN_TOKEN_LENGTH)

    def text(self, text: str, structural: bool = True) -> str:
        """`text` with every secret replaced by `***` (`structural=False`: rule 2 only)."""
        if not text:
            return text
        if structural:
            text = _USERINFO.sub(_mask, text)
            if "=" in text:
                text = _PARAM.sub(_mask, text)
            if ":" in text:
                text = _ENTRY.sub(_mask, text)
            text = _BEARER.sub(_mask, text)
        if self._known is not None:
            text = self._known.sub(MASK, text)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-able copy of `value` with every string redacted (other objects become strings)."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, Mapping):
            return {str(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.value(v) for v in value]
        return self.text(str(value))


# --------------------------------------------------------------------------- process-wide use

_active = Redactor()
_base_factory = logging.getLogRecordFactory()


def active() -> Redactor:
    """The redactor `activate` installed (structural rules only before that)."""
    return _active


def _redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Log record factory: message, traceback and stack redacted before any handler formats them
    (a traceback is kept as redacted text; handlers that format `exc_info` themselves get none)."""
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: logging reports it as usual
        return record
    clean = _active.text(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = _active.text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = _active.text(record.stack_info)
    return record


def activate(redactor: Redactor | None = None) -> Redactor:
    """Make `redactor` (default: structural rules only) the process's: every log record is redacted
    from now on, and `RedactingStream`s use it."""
    global _active, _base_factory
    _active = redactor or Redactor()
    current = logging.getLogRecordFactory()
    if current is not _redacted_record:
        _base_factory = current  # wrap whatever factory is in place
        logging.setLogRecordFactory(_redacted_record)
    return _active


class RedactingStream:
    """A text stream that redacts everything written to it with the active redactor (`dativo` wraps
    stdout and stderr in it, so no command can print a secret)."""

    def __init__(self, stream: TextIO) -> None:
        self.raw = stream

    def write(self, text: str) -> int:
        """Write `text` redacted."""
        return self.raw.write(_active.text(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def write_data(text: str, stream: TextIO | RedactingStream | None = None) -> None:
    """Write data (a Singer state to restore) with only the configured secret values redacted:
    the structural rules would also hide a tap's own `next_page_token` and break the state."""
    out = stream or sys.stdout
    if isinstance(out, RedactingStream):
        out = out.raw
    out.write(_active.text(text, structural=False))
