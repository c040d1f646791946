"""Whole columns of raw Singer values → typed Arrow arrays and the mask of `type` violations.

Each column goes through `coerce_column`: Arrow infers the list's type once, then a fast path per
target kind casts whole arrays (strings are screened with a regex first, so "123" → 123 but "12a"
is a `type` violation). Whatever the fast path cannot settle (mixed Python types, ISO strings Arrow
does not parse, out-of-range values) falls back to `convert.convert_value`, one value at a time;
both paths accept the same inputs (the rules are described in `convert.py`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from target_dativo_iceberg.contracts.odcs.convert import (
    CONVERT_ERRORS,
    FLOAT32_MAX,
    INT_RE,
    NUMBER_RE,
    RANGES,
    convert_value,
)
from target_dativo_iceberg.contracts.odcs.types import ResolvedType

_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
_TS_RE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
_OFFSET_RE = r"(Z|[+-]\d{2}(:?\d{2})?)$"


def _slow(values: list[Any], resolved: ResolvedType, arrow_type: pa.DataType, fmt: str | None):
    out: list[Any] = []
    bad: list[bool] = []
    append, flag = out.append, bad.append
    for value in values:
        try:
            append(convert_value(value, resolved, fmt))
            flag(False)
        except CONVERT_ERRORS:
            append(None)
            flag(True)
    mask = pa.array(bad, type=pa.bool_())
    return pa.array(out, type=arrow_type), (mask if mask.true_count else None)


# ---------------------------------------------------------------- whole arrays


def _null_where(array: pa.Array, bad: pa.Array) -> pa.Array:
    return pc.if_else(bad, pa.scalar(None, type=array.type), array)


def _all_bad(array: pa.Array, arrow_type: pa.DataType):
    return pa.nulls(len(array), type=arrow_type), array.is_valid()


def _screen(array: pa.Array, regex: str) -> tuple[pa.Array, pa.Array]:
    """Strings matching `regex` (trimmed, leading `+` dropped) and the mask of those that do not."""
    ok = pc.match_substring_regex(array, regex)
    bad = pc.invert(ok).fill_null(False)
    kept = _null_where(array, bad) if bad.true_count else array
    kept = pc.replace_substring_regex(pc.utf8_trim_whitespace(kept), r"^\+", "")
    return kept, bad


def _try_cast(array: pa.Array, target: pa.DataType) -> pa.Array | None:
    """Whole-array cast of clean strings (the common case); None if any value needs screening."""
    try:
        return pc.cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _fast(inferred: pa.Array, values: list[Any], resolved: ResolvedType, arrow_type: pa.DataType):
    t, kind = inferred.type, resolved.kind
    is_string = pa.types.is_string(t) or pa.types.is_large_string(t)
    if is_string and kind not in ("string", "json"):
        blank = pc.match_substring_regex(inferred, r"^\s*$").fill_null(False)
        if blank.true_count:  # an empty CSV cell in a typed column is a null, not a type error
            inferred = _null_where(inferred, blank)
            if inferred.null_count == len(inferred):
                return pa.nulls(len(inferred), type=arrow_type), None
    if kind in ("int", "long"):
        if pa.types.is_boolean(t):
            return _all_bad(inferred, arrow_type)
        bad = None
        if is_string:
            direct = _try_cast(inferred, pa.int64())
            if direct is not None and pc.any(pc.match_substring(inferred, "x", ignore_case=True)).as_py():
                direct = None  # Arrow reads 0x1F as hex; we do not
            if direct is not None:
                inferred = direct
            else:
                inferred, bad = _screen(inferred, INT_RE)
                inferred = pc.cast(pc.replace_substring_regex(inferred, r"\.0*$", ""), pa.int64())
        elif pa.types.is_floating(t) or pa.types.is_decimal(t):
            whole = pc.equal(inferred, pc.floor(inferred))  # NaN and ±inf are not whole
            if pa.types.is_floating(t):
                whole = pc.and_(whole, pc.is_finite(inferred))
            bad = pc.invert(whole.fill_null(True))
            inferred = _null_where(inferred, bad)
            if pa.types.is_floating(t):
                big = pc.greater_equal(pc.abs(inferred), 2.0**63).fill_null(False)
                bad, inferred = pc.or_(bad, big), _null_where(inferred, big)
            inferred = pc.cast(inferred, pa.int64())
        elif not pa.types.is_integer(t):
            return _all_bad(inferred, arrow_type)
        low, high = RANGES[kind]
        if kind == "int":
            out = pc.or_(pc.less(inferred, low), pc.greater(inferred, high)).fill_null(False)
            if out.true_count:
                bad = out if bad is None else pc.or_(bad, out)
                inferred = _null_where(inferred, out)
        return pc.cast(inferred, arrow_type), bad
    if kind in ("float", "double"):
        bad = None
        if is_string:
            direct = _try_cast(inferred, pa.float64())
            if direct is not None and pc.all(pc.is_finite(direct)).as_py() is not False:
                inferred = direct
            else:
                inferred, bad = _screen(inferred, NUMBER_RE)
        elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
            return _all_bad(inferred, arrow_type)
        if pa.types.is_decimal(inferred.type):  # via text: Arrow's decimal → double cast can be 1 ulp off
            inferred = pc.cast(pc.cast(inferred, pa.string()), pa.float64())
        as_double = pc.cast(inferred, pa.float64())
        out = pc.invert(pc.is_finite(as_double))  # NaN, ±inf
        if kind == "float":
            out = pc.or_(out, pc.greater(pc.abs(as_double), FLOAT32_MAX))
        out = out.fill_null(False)
        if out.true_count:
            bad = out if bad is None else pc.or_(bad, out)
            as_double = _null_where(as_double, out)
        return pc.cast(as_double, arrow_type, safe=False), bad
    if kind == "decimal":
        if pa.types.is_floating(t):  # via the shortest round-trip text, as `_to_decimal` uses repr()
            text = pc.cast(inferred, pa.string())
            if pc.any(pc.match_substring_regex(text, "[eEnN]")).as_py():
                return None  # exponents, nan, inf: one at a time
            inferred, t, is_string = text, text.type, True
        if is_string:
            if pc.any(pc.match_substring(inferred, "e", ignore_case=True)).as_py():
                return None  # Arrow's string → decimal cast overflows silently on large exponents
            direct = _try_cast(inferred, arrow_type)
            if direct is not None:
                return direct, None
            inferred, bad = _screen(inferred, NUMBER_RE)
            return pc.cast(inferred, arrow_type), bad
        if pa.types.is_integer(t) or pa.types.is_decimal(t):
            return pc.cast(inferred, arrow_type), None
        return None if pa.types.is_floating(t) else _all_bad(inferred, arrow_type)
    if kind in ("string", "json"):
        if is_string:
            return pc.cast(inferred, arrow_type), None
        if kind == "string" and (pa.types.is_integer(t) or pa.types.is_boolean(t)):
            return pc.cast(inferred, arrow_type), None
        return None
    if kind == "boolean":
        if pa.types.is_boolean(t):
            return inferred, None
        if is_string:
            lowered = pc.utf8_lower(pc.utf8_trim_whitespace(inferred))
            ok = pc.is_in(lowered, value_set=pa.array(["true", "false"]))
            bad = pc.and_(pc.invert(ok), inferred.is_valid())
            return pc.equal(_null_where(lowered, bad), "true"), bad
        return _all_bad(inferred, arrow_type)
    if kind == "date":
        if pa.types.is_date32(t):
            return inferred, None
        direct = _try_cast(inferred, arrow_type) if is_string else None
        return (direct, None) if direct is not None else None
    if kind in ("timestamptz", "timestamp"):
        if pa.types.is_timestamp(t):  # inference keeps instants; tz-less values are UTC wall times
            return pc.cast(inferred, arrow_type), None
        if pa.types.is_date32(t):
            return pc.cast(inferred, arrow_type), None
        direct = _try_cast(inferred, pa.timestamp("us", "UTC")) if is_string else None
        if direct is not None:
            return pc.cast(direct, arrow_type), None
        if is_string and pc.all(pc.match_substring_regex(inferred, _TS_RE)).as_py() is not False:
            date_only = pc.match_substring_regex(inferred, _DATE_RE)
            has_offset = pc.match_substring_regex(inferred, _OFFSET_RE)
            texts = pc.if_else(date_only, pc.binary_join_element_wise(inferred, "T00:00:00", ""), inferred)
            texts = pc.if_else(has_offset, texts, pc.binary_join_element_wise(texts, "Z", ""))
            return pc.cast(pc.cast(texts, pa.timestamp("us", "UTC")), arrow_type), None
        return None
    return None


def coerce_column(
    values: list[Any], resolved: ResolvedType, arrow_type: pa.DataType, fmt: str | None = None
) -> tuple[pa.Array, pa.Array | None]:
    """Typed array (unconvertible values null) and the mask of `type` violations (None: none)."""
    try:
        inferred = pa.array(values, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
        return _slow(values, resolved, arrow_type, fmt)
    if pa.types.is_null(inferred.type):
        return pa.nulls(len(values), type=arrow_type), None
    try:
        result = _fast(inferred, values, resolved, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        result = None
    if result is None:
        return _slow(values, resolved, arrow_type, fmt)
    array, bad = result
    if bad is not None and not bad.true_count:
        bad = None
    return array, bad


def coerce_arrow(
    array: pa.Array, resolved: ResolvedType, arrow_type: pa.DataType
) -> tuple[pa.Array, pa.Array | None] | None:
    """Hot path: coerce a column Arrow parsed from JSON, whole-array only.

    None when a value needs the one-at-a-time rules (the caller then takes the record path, so
    both paths judge every value the same way).
    """
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), type=arrow_type), None
    try:
        result = _fast(array, [], resolved, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return None
    if result is None:
        return None
    typed, bad = result
    return typed, (bad if bad is not None and bad.true_count else None)
