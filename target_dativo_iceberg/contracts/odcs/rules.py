"""Validation rules of one property, and ODCS `quality` checks, parsed once at contract load.

Property rules come from `logicalTypeOptions` (ODCS v3) or straight from the property (some v3.0
documents, the flat Dativo flavour); `logicalTypeOptions` wins when both are given. Bounds and
valid values are converted to the column's type here, so a bad one fails the contract load, not a
batch. Library quality metrics whose threshold allows zero bad rows (`mustBe: 0`, the v3.0
`rule: validValues`) are row rules: each offending record is rejected. Other thresholds
(`mustBeLessThan: 5`, `unit: percent`) are run-level checks counted over the run and evaluated by
`Validator.finish`.
"""

from __future__ import annotations

import datetime
import decimal
import re
from dataclasses import dataclass
from typing import Any

from target_dativo_iceberg.contracts.odcs import join_location
from target_dativo_iceberg.contracts.odcs.convert import convert_value, strptime_format
from target_dativo_iceberg.contracts.odcs.types import ResolvedType
from target_dativo_iceberg.errors import ContractProblem

CHECKED_FORMATS = ("email", "uuid", "date", "date-time", "uri", "hostname", "ipv4", "ipv6")
RULE_KEYS = ("minLength", "maxLength", "pattern", "format", "minimum", "maximum")
BOUND_KEYS = ("exclusiveMinimum", "exclusiveMaximum", "multipleOf")
OPERATORS = (
    "mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo", "mustBeLessThan",
    "mustBeLessOrEqualTo", "mustBeBetween", "mustNotBeBetween",
)  # fmt: skip
PROPERTY_METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues")
_ALIASES = {
    "validValues": "invalidValues",
    "duplicateCount": "duplicateValues",
    "nullCount": "nullValues",
    "rowCount": "rowCount",
}
_NUMERIC = ("int", "long", "float", "double", "decimal")
_TEMPORAL = ("date", "time", "timestamp", "timestamptz")
_TEXT = ("string", "json")


@dataclass(frozen=True)
class FieldRules:
    """Value rules of one property; None means not set."""

    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    format: str | None = None
    minimum: Any = None
    maximum: Any = None
    exclusive_minimum: Any = None
    exclusive_maximum: Any = None
    multiple_of: float | decimal.Decimal | None = None
    temporal_format: str | None = None  # strptime form of a date `format` such as dd/MM/yyyy


@dataclass(frozen=True)
class QualityCheck:
    """One ODCS library metric with its threshold (`mustBe: 0` → row rule)."""

    metric: str  # nullValues missingValues invalidValues duplicateValues rowCount
    field: str | None  # property name; None at object level
    operator: str
    threshold: Any
    unit: str = "rows"
    valid_values: tuple[Any, ...] | None = None
    pattern: str | None = None
    missing_values: tuple[Any, ...] | None = None
    properties: tuple[str, ...] | None = None  # object-level duplicateValues
    location: str = ""
    row_level: bool = False

    def passes(self, observed: float) -> bool:
        """Whether the measured metric satisfies the operator."""
        t = self.threshold
        return {
            "mustBe": lambda: observed == t,
            "mustNotBe": lambda: observed != t,
            "mustBeGreaterThan": lambda: observed > t,
            "mustBeGreaterOrEqualTo": lambda: observed >= t,
            "mustBeLessThan": lambda: observed < t,
            "mustBeLessOrEqualTo": lambda: observed <= t,
            "mustBeBetween": lambda: t[0] <= observed <= t[1],
            "mustNotBeBetween": lambda: not t[0] <= observed <= t[1],
        }[self.operator]()

    def expectation(self) -> str:
        """`must be greater than 0` for messages."""
        words = re.sub(r"([A-Z])", r" \1", self.operator).lower()
        unit = " %" if self.unit == "percent" else ""
        return f"{words} {self.threshold}{unit}"


def _option(prop: dict, key: str, location: str) -> tuple[Any, str] | None:
    options = prop.get("logicalTypeOptions")
    if isinstance(options, dict) and key in options:
        return options[key], join_location(join_location(location, "logicalTypeOptions"), key)
    if key in prop:
        return prop[key], join_location(location, key)
    return None


def _bound(value: Any, resolved: ResolvedType, where: str, fmt: str | None) -> Any:
    kind = resolved.kind
    if kind in _NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ContractProblem(where, f"{value!r} is not a number")
        return decimal.Decimal(str(value)) if kind == "decimal" else value
    if kind in _TEMPORAL:
        try:
            return convert_value(value, resolved, fmt)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ContractProblem(where, f"{value!r} is not a valid {kind} ({exc})") from exc
    raise ContractProblem(where, f"bounds apply to numbers, dates and timestamps, not to {kind} columns")


def parse_field_rules(prop: dict, resolved: ResolvedType, location: str, notes: list[str]) -> FieldRules:
    """Rules of one property; problems (wrong kind, bad regex, bad bound) raise ContractProblem."""
    kind = resolved.kind
    found = {key: _option(prop, key, location) for key in RULE_KEYS + BOUND_KEYS}
    values: dict[str, Any] = {}
    fmt_entry = found.pop("format")
    temporal_format = None
    if fmt_entry is not None:
        fmt, where = str(fmt_entry[0]), fmt_entry[1]
        if kind in _TEMPORAL:
            temporal_format = strptime_format(fmt)
            if temporal_format is None:
                notes.append(f"{where}: date format {fmt!r} not understood; ISO-8601 only")
        elif kind in _TEXT and fmt.lower() in CHECKED_FORMATS:
            values["format"] = fmt.lower()
        elif kind in _TEXT:
            notes.append(f"{where}: format {fmt!r} is not checked")
    for key, attr in (("minLength", "min_length"), ("maxLength", "max_length")):
        if found[key] is not None:
            if kind not in _TEXT:
                raise ContractProblem(found[key][1], f"{key} applies to strings, not to {kind} columns")
            values[attr] = int(found[key][0])
    if found["pattern"] is not None:
        pattern, where = found["pattern"]
        if kind not in _TEXT:
            raise ContractProblem(where, f"pattern applies to strings, not to {kind} columns")
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise ContractProblem(where, f"invalid regular expression {pattern!r}: {exc}") from exc
        values["pattern"] = str(pattern)
    for key, attr in (("minimum", "minimum"), ("maximum", "maximum")):
        if found[key] is not None:
            values[attr] = _bound(found[key][0], resolved, found[key][1], temporal_format)
    for key, plain, attr in (
        ("exclusiveMinimum", "minimum", "exclusive_minimum"),
        ("exclusiveMaximum", "maximum", "exclusive_maximum"),
    ):
        entry = found[key]
        if entry is None:
            continue
        if isinstance(entry[0], bool):  # ODCS v3.0: a flag that makes minimum/maximum exclusive
            if entry[0] and values.get(plain) is not None:
                values[attr] = values.pop(plain)
            continue
        values[attr] = _bound(entry[0], resolved, entry[1], temporal_format)
    if found["multipleOf"] is not None:
        value, where = found["multipleOf"]
        if (
            kind not in _NUMERIC
            or isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value <= 0
        ):
            raise ContractProblem(where, "multipleOf must be a positive number on a numeric column")
        values["multiple_of"] = decimal.Decimal(str(value)) if kind == "decimal" else value
    return FieldRules(temporal_format=temporal_format, **values)


def _convert_values(raw: Any, resolved: ResolvedType, where: str, keep_unconvertible: bool = False):
    if not isinstance(raw, list) or not raw:
        raise ContractProblem(where, "expected a non-empty list of values")
    out = []
    for index, value in enumerate(raw):
        if isinstance(value, dict) and "value" in value:  # ODCS v3.2 `enum: [{value: ...}]`
            value = value["value"]
        try:
            out.append(convert_value(value, resolved))
        except (ValueError, TypeError, ArithmeticError) as exc:
            if not keep_unconvertible:
                raise ContractProblem(
                    join_location(where, index), f"{value!r} is not a valid {resolved.kind} value ({exc})"
                ) from exc
    return tuple(out)


def _row_level(operator: str, threshold: Any, unit: str) -> bool:
    if operator in ("mustBe", "mustBeLessOrEqualTo"):
        return threshold == 0
    if operator == "mustBeLessThan":
        return unit != "percent" and 0 < threshold <= 1
    if operator == "mustBeBetween":
        return unit != "percent" and threshold[0] <= 0 and threshold[1] < 1
    return False


def value_set_check(raw: Any, field: str, resolved: ResolvedType, where: str) -> QualityCheck:
    """`validValues`/`enum` on a property: a row rule."""
    values = _convert_values(raw, resolved, where)
    return QualityCheck(
        "invalidValues", field, "mustBe", 0, valid_values=values, location=where, row_level=True
    )


def parse_quality(
    entries: Any, location: str, field: str | None, resolved: ResolvedType | None, notes: list[str]
) -> list[QualityCheck]:
    """ODCS `quality` entries of a property (`field`) or of the object (`field` None)."""
    checks: list[QualityCheck] = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        where = join_location(location, index)
        if not isinstance(entry, dict):
            raise ContractProblem(where, "a quality entry must be a mapping")
        kind = entry.get("type", "library")
        raw_metric = entry.get("metric") or entry.get("rule")
        if kind != "library" or not raw_metric:
            notes.append(f"{where}: {kind} quality check not run by the target")
            continue
        metric = _ALIASES.get(raw_metric, raw_metric)
        arguments = entry.get("arguments") if isinstance(entry.get("arguments"), dict) else {}
        present = [op for op in OPERATORS if op in entry]
        operator, threshold = (present[0], entry[present[0]]) if present else ("mustBe", 0)
        if metric == "rowCount" and not present:
            notes.append(f"{where}: rowCount without an operator is not checked")
            continue
        numeric = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
        between = isinstance(threshold, list) and len(threshold) == 2
        if not (between if operator.endswith("Between") else numeric):
            raise ContractProblem(join_location(where, operator), f"{threshold!r} is not a valid threshold")
        unit = str(entry.get("unit", "rows")).lower()
        base = {"operator": operator, "threshold": threshold, "unit": unit, "location": where}
        if field is None:
            if metric == "rowCount":
                checks.append(QualityCheck("rowCount", None, **base))
            elif metric == "duplicateValues" and isinstance(arguments.get("properties"), list):
                props = tuple(str(p) for p in arguments["properties"])
                row = _row_level(operator, threshold, unit)
                checks.append(QualityCheck("duplicateValues", None, properties=props, row_level=row, **base))
            else:
                notes.append(f"{where}: object-level metric {raw_metric!r} is not checked")
            continue
        if metric not in PROPERTY_METRICS:
            notes.append(f"{where}: property-level metric {raw_metric!r} is not checked")
            continue
        assert resolved is not None
        extra: dict[str, Any] = {}
        if metric == "invalidValues":
            raw_values = entry.get("validValues", arguments.get("validValues"))
            if raw_values is not None:
                values_where = join_location(where, "validValues")
                if "validValues" not in entry:
                    values_where = join_location(join_location(where, "arguments"), "validValues")
                extra["valid_values"] = _convert_values(raw_values, resolved, values_where)
            pattern = arguments.get("pattern", entry.get("pattern"))
            if pattern is not None:
                try:
                    re.compile(str(pattern))
                except re.error as exc:
                    raise ContractProblem(where, f"invalid regular expression {pattern!r}: {exc}") from exc
                extra["pattern"] = str(pattern)
            if not extra:
                raise ContractProblem(where, "invalidValues needs arguments.validValues or arguments.pattern")
        if metric == "missingValues":
            raw_missing = arguments.get("missingValues", [None, ""])
            extra["missing_values"] = _convert_values(raw_missing, resolved, where, keep_unconvertible=True)
        row = _row_level(operator, threshold, unit)
        checks.append(QualityCheck(metric, field, row_level=row, **base, **extra))
    return checks


def describe_bound(value: Any) -> str:
    """Bounds as they read in the contract (`2024-01-01`, not `datetime.date(2024, 1, 1)`)."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)
