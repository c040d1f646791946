"""Vectorized value rules: each returns (rule, violation mask, detail) over a typed Arrow column.

Masks are True where a row breaks the rule. Nulls never break a value rule (null is the business
of `required`/`nullValues`), so every mask is `fill_null(False)`-ed. Regular expressions run in
Arrow (RE2) when RE2 accepts them; patterns using ECMA/Python-only syntax (look-arounds,
back-references) fall back to Python's `re` one value at a time.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from target_dativo_iceberg.contracts.odcs.rules import QualityCheck, describe_bound

if TYPE_CHECKING:
    from target_dativo_iceberg.contracts.contract import ContractField

Mask = tuple[str, pa.Array, str]

_FORMATS = {
    "email": r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    "uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "uri": r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*$",
    "hostname": r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$",
    "ipv4": r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$",
    "date": r"^\d{4}-\d{2}-\d{2}$",
    "date-time": r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
}


@functools.lru_cache(maxsize=256)
def _re2_ok(pattern: str) -> bool:
    try:
        pc.match_substring_regex(pa.array([""], type=pa.string()), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _python_mask(typed: pa.Array, test: Callable[[str], bool]) -> pa.Array:
    return pa.array([value is not None and not test(value) for value in typed.to_pylist()], type=pa.bool_())


def regex_violations(typed: pa.Array, pattern: str) -> pa.Array:
    """True where a non-null string does not contain a match of `pattern` (JSON Schema semantics)."""
    if _re2_ok(pattern):
        return pc.invert(pc.match_substring_regex(typed, pattern)).fill_null(False)
    compiled = re.compile(pattern)
    return _python_mask(typed, lambda v: compiled.search(v) is not None)


def _valid_temporal(value: str, fmt: str) -> bool:
    try:
        if fmt == "date":
            datetime.date.fromisoformat(value)
        else:
            datetime.datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def format_violations(typed: pa.Array, fmt: str) -> pa.Array:
    """True where a non-null string is not of the given format."""
    if fmt == "ipv6":

        def is_ipv6(value: str) -> bool:
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                return False
            return True

        return _python_mask(typed, is_ipv6)
    bad = regex_violations(typed, _FORMATS[fmt])
    if fmt == "hostname":
        bad = pc.or_(bad, pc.greater(pc.utf8_length(typed), 253).fill_null(False))
    if fmt in ("date", "date-time"):  # the shape is right; is the calendar date real?
        shaped = pc.if_else(bad, pa.scalar(None, type=typed.type), typed)
        target = pa.date32() if fmt == "date" else pa.timestamp("us", "UTC")
        try:
            pc.cast(pc.utf8_upper(shaped), target)
        except pa.ArrowInvalid:
            return pc.or_(bad, _python_mask(shaped, lambda v: _valid_temporal(v, fmt)))
    return bad


def _scalar(value: Any, typed: pa.Array) -> Any:
    if isinstance(value, (datetime.date, datetime.time)):
        return pa.scalar(value, type=typed.type)
    return value


def _not_multiple(typed: pa.Array, step: Any) -> pa.Array:
    if pa.types.is_integer(typed.type) and isinstance(step, int):
        remainder = pc.subtract(typed, pc.multiply(pc.divide(typed, step), step))
        return pc.not_equal(remainder, 0).fill_null(False)
    quotient = pc.divide(pc.cast(typed, pa.float64()), float(step))
    error = pc.abs(pc.subtract(quotient, pc.round(quotient)))
    tolerance = pc.multiply(pc.max_element_wise(pc.abs(quotient), 1.0), 1e-9)
    return pc.greater(error, tolerance).fill_null(False)


def field_masks(field: ContractField, typed: pa.Array) -> list[Mask]:
    """Masks of the property's own rules (lengths, pattern, format, bounds, multipleOf)."""
    rules = field.rules
    masks: list[Mask] = []
    if rules.min_length is not None or rules.max_length is not None:
        lengths = pc.utf8_length(typed)
        if rules.min_length is not None:
            bad = pc.less(lengths, rules.min_length).fill_null(False)
            masks.append(("minLength", bad, f"shorter than minLength {rules.min_length}"))
        if rules.max_length is not None:
            bad = pc.greater(lengths, rules.max_length).fill_null(False)
            masks.append(("maxLength", bad, f"longer than maxLength {rules.max_length}"))
    if rules.pattern is not None:
        masks.append(
            ("pattern", regex_violations(typed, rules.pattern), f"does not match pattern {rules.pattern}")
        )
    if rules.format is not None:
        masks.append(("format", format_violations(typed, rules.format), f"is not a valid {rules.format}"))
    for rule, bound, compare, words in (
        ("minimum", rules.minimum, pc.less, "less than minimum"),
        ("maximum", rules.maximum, pc.greater, "greater than maximum"),
        ("exclusiveMinimum", rules.exclusive_minimum, pc.less_equal, "not greater than exclusiveMinimum"),
        ("exclusiveMaximum", rules.exclusive_maximum, pc.greater_equal, "not less than exclusiveMaximum"),
    ):
        if bound is not None:
            bad = compare(typed, _scalar(bound, typed)).fill_null(False)
            masks.append((rule, bad, f"{words} {describe_bound(bound)}"))
    if rules.multiple_of is not None:
        masks.append(
            ("multipleOf", _not_multiple(typed, rules.multiple_of), f"not a multiple of {rules.multiple_of}")
        )
    return masks


def check_masks(check: QualityCheck, typed: pa.Array, type_bad: pa.Array | None) -> list[Mask]:
    """Masks of a property-level quality metric (duplicateValues is handled by the caller)."""
    if check.metric == "nullValues":
        null = typed.is_null()
        bad = null if type_bad is None else pc.and_(null, pc.invert(type_bad))
        return [("nullValues", bad, f"null; nullValues {check.expectation()}")]
    if check.metric == "missingValues":
        present = [v for v in check.missing_values or () if v is not None]
        bad = pc.is_in(typed, value_set=pa.array(present, type=typed.type)) if present else None
        if None in (check.missing_values or ()):
            null = typed.is_null() if type_bad is None else pc.and_(typed.is_null(), pc.invert(type_bad))
            bad = null if bad is None else pc.or_(bad.fill_null(False), null)
        if bad is None:
            return []
        return [
            ("missingValues", bad.fill_null(False), f"a missing value; missingValues {check.expectation()}")
        ]
    masks: list[Mask] = []
    if check.metric == "invalidValues":
        if check.valid_values is not None:
            allowed = pa.array([v for v in check.valid_values if v is not None], type=typed.type)
            bad = pc.and_(pc.invert(pc.is_in(typed, value_set=allowed)), typed.is_valid())
            shown = ", ".join(describe_bound(v) for v in check.valid_values)
            masks.append(("validValues", bad, f"not one of the valid values [{shown}]"))
        if check.pattern is not None:
            text = typed if pa.types.is_large_string(typed.type) else pc.cast(typed, pa.large_string())
            bad = regex_violations(text, check.pattern)
            masks.append(("invalidValues", bad, f"does not match pattern {check.pattern}"))
    return masks
