"""One raw Singer value → the Python value Arrow takes for a column: the rules every coercion follows.

`convert_value` is the reference: the whole-array fast paths in `coerce.py` accept exactly what it
accepts, and fall back to it for whatever they cannot settle. Empty or blank strings are null in
non-string columns (CSV convention). Coercions: "123"/"1.0"→int, "1.5"→number, "true"/"false"→bool,
ISO-8601 dates and timestamps (`Z`, offsets; naive taken as UTC), numbers/booleans → string. Never
lossy: 1.5 into an integer column or 1.234 into decimal(10,2) is a violation, not a rounding.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import re
from typing import Any

from target_dativo_iceberg.contracts.odcs.types import ResolvedType
from target_dativo_iceberg.unicode import lone_surrogate, surrogate_message

#: Integer text (a whole number, `1.0` allowed) and number text, as regexes Arrow and `re` both run.
INT_RE = r"^\s*[+-]?\d+(\.0*)?\s*$"
NUMBER_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
#: Value range of each integer kind.
RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
#: Largest finite float32.
FLOAT32_MAX = 3.4028234663852886e38
#: What `convert_value` raises for a value it cannot convert (a `type` violation).
CONVERT_ERRORS = (ValueError, TypeError, ArithmeticError, OverflowError)
_INT_RE_PY = re.compile(INT_RE, re.ASCII)
_NUMBER_RE_PY = re.compile(NUMBER_RE, re.ASCII)
_JAVA_TOKENS = [
    ("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"),
    ("ss", "%S"), ("SSSSSS", "%f"), ("SSS", "%f"), ("XXX", "%z"), ("XX", "%z"), ("X", "%z"),
    ("Z", "%z"), ("'T'", "T"),
]  # fmt: skip


def strptime_format(java_format: str | None) -> str | None:
    """ODCS date `format` (Java DateTimeFormatter, e.g. `dd/MM/yyyy`) → strptime, if we can map it."""
    if not java_format:
        return None
    out, rest = "", java_format
    while rest:
        for token, replacement in _JAVA_TOKENS:
            if rest.startswith(token):
                out, rest = out + replacement, rest[len(token) :]
                break
        else:
            if rest[0].isalpha():
                return None
            out, rest = out + rest[0].replace("%", "%%"), rest[1:]
    return out


def _to_int(value: Any, kind: str) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, int):
        result = value
    elif isinstance(value, (float, decimal.Decimal)):
        if value != value or value in (float("inf"), float("-inf")) or value != int(value):
            raise ValueError("not a whole number")
        result = int(value)
    elif isinstance(value, str) and _INT_RE_PY.match(value):
        result = int(value.strip().split(".")[0])
    else:
        raise ValueError("not an integer")
    low, high = RANGES[kind]
    if not low <= result <= high:
        raise OverflowError(f"out of range for {kind}")
    return result


def _to_float(value: Any, kind: str) -> float:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, str):
        if not _NUMBER_RE_PY.match(value):
            raise ValueError("not a number")
        value = value.strip()
    if not isinstance(value, (int, float, decimal.Decimal, str)):
        raise TypeError("not a number")
    result = float(value)
    if not math.isfinite(result) or (kind == "float" and abs(result) > FLOAT32_MAX):
        raise OverflowError(f"out of range for {kind}")
    return result


def _to_decimal(value: Any, resolved: ResolvedType) -> decimal.Decimal:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, str):
        if not _NUMBER_RE_PY.match(value):
            raise ValueError("not a decimal number")
        number = decimal.Decimal(value.strip())
    elif isinstance(value, (int, decimal.Decimal)):
        number = decimal.Decimal(value)
    elif isinstance(value, float):
        number = decimal.Decimal(repr(value))
    else:
        raise TypeError("not a number")
    precision, scale = resolved.iceberg.precision, resolved.iceberg.scale  # type: ignore[attr-defined]
    quantized = number.quantize(decimal.Decimal(1).scaleb(-scale), context=decimal.Context(prec=80))
    if quantized != number:
        raise ValueError(f"more than {scale} decimal places")
    if len(quantized.as_tuple().digits) > precision and quantized != 0:
        raise ValueError(f"more than {precision} digits")
    return quantized


def _text(text: str) -> str:
    """`text` if it is valid Unicode (a JSON `\\ud800` escape decodes to text no column can store)."""
    found = lone_surrogate(text)
    if found is not None:
        raise ValueError(surrogate_message(found[1]))
    return text


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, decimal.Decimal)):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} is not a string")


def _to_json(value: Any) -> str:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (dict, list)):
        return _text(json.dumps(value, default=str, ensure_ascii=False))
    raise TypeError(f"a {type(value).__name__} is not an object or array")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("not a boolean")


def _parse_datetime(value: str, fmt: str | None) -> datetime.datetime:
    text = value.strip()
    try:
        return datetime.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        if fmt is None:
            raise
        return datetime.datetime.strptime(text, fmt)


def _to_timestamp(value: Any, naive: bool, fmt: str | None) -> datetime.datetime:
    if isinstance(value, str):
        value = _parse_datetime(value, fmt)
    elif isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        value = datetime.datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"a {type(value).__name__} is not a timestamp")
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    value = value.astimezone(datetime.timezone.utc)
    return value.replace(tzinfo=None) if naive else value


def _to_date(value: Any, fmt: str | None) -> datetime.date:
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            value = _parse_datetime(text, fmt)
    if isinstance(value, datetime.datetime):
        if value.time() != datetime.time(0) or value.utcoffset():
            raise ValueError("a timestamp with a time of day is not a date")
        return value.date()
    if isinstance(value, datetime.date):
        return value
    raise TypeError(f"a {type(value).__name__} is not a date")


def _to_time(value: Any, fmt: str | None) -> datetime.time:
    if isinstance(value, datetime.time):
        return value
    if isinstance(value, str):
        try:
            return datetime.time.fromisoformat(value.strip())
        except ValueError:
            if fmt is None:
                raise
            return datetime.datetime.strptime(value.strip(), fmt).time()
    raise TypeError(f"a {type(value).__name__} is not a time")


def convert_value(value: Any, resolved: ResolvedType, fmt: str | None = None) -> Any:
    """One raw value → the Python value Arrow takes for the column; raises on anything lossy."""
    kind = resolved.kind
    if value is None or (isinstance(value, str) and kind not in ("string", "json") and not value.strip()):
        return None
    if kind in ("int", "long"):
        return _to_int(value, kind)
    if kind in ("float", "double"):
        return _to_float(value, kind)
    if kind == "decimal":
        return _to_decimal(value, resolved)
    if kind == "string":
        return _to_string(value)
    if kind == "json":
        return _to_json(value)
    if kind == "boolean":
        return _to_bool(value)
    if kind in ("timestamptz", "timestamp"):
        return _to_timestamp(value, kind == "timestamp", fmt)
    if kind == "date":
        return _to_date(value, fmt)
    if kind == "time":
        return _to_time(value, fmt)
    raise ValueError(f"unknown column kind {kind}")
