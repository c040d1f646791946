"""A Singer SCHEMA (JSON Schema) compiled into column rules the columnar path applies to Arrow arrays.

Streams without a contract are validated by singer-sdk 0.54.9 one record at a time with jsonschema's
`Draft202012Validator` and no format checks (`validate_field_string_format` is off), ~110 µs per
record. `compile_rules` turns the schema into a tree of `Node`s (the column kind the record path
converts to, nullability, and the keywords as whole-array rules); `contracts.jsonschema_arrow`
judges parsed columns with them. A schema that uses a keyword with no exact whole-array form
(`oneOf`, `$ref`, `uniqueItems`, a value without a fixed type ...) yields an `Unsupported` naming
the property and keyword: that stream stays on the per-record path.

`multipleOf` is exact as jsonschema decides it on what the SDK parses (`deserialize_json`: JSON
floats become `Decimal`, so the step is an int or a Decimal and the check is the exact remainder
`instance % step`). A `number` property with a step is parsed as an Arrow decimal with the step's
fractional digits (`Node.hint`): a value with more fractional digits is no multiple, its run fails
that parse and goes record by record; the check is then integer arithmetic on the decimals' scaled
values. Arrow's decimal reader also takes numeric *strings* ("1.5"), which jsonschema rejects, and
drops the sign of -0.0, so such streams get a line scan (`Node.scan`, run by
`jsonschema_arrow.judge`) that flags lines where a watched key holds a string (or an escaped key
does) or a negative zero appears: those rows are re-checked record by record.

Keywords jsonschema ignores (annotations such as `title`, `description`, `default`, and `format`,
which the SDK does not assert) are ignored here too; unknown keywords likewise.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa

from target_dativo_iceberg.errors import SchemaUnsupported
from target_dativo_iceberg.iceberg.schema import sanitize_name

#: Validation keywords of Draft 2020-12 that have no whole-array rule here.
UNSUPPORTED = (
    "oneOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "$ref",
    "$dynamicRef",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "prefixItems",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "dependencies",
)
_SCALAR = {"integer": "long", "number": "double", "boolean": "boolean", "string": "string"}
_DATES = {"date-time": "timestamptz", "date": "date", "time": "time"}
#: Escapes RE2 and Python's `re` read alike (`\d`, `\w`, `\s`, `\b` alike on ASCII text only).
_SAFE_ESCAPES = set(".-/\\+*?()[]{}^$|ntrfvA") | set("dwsbDWSB")
_UNICODE_CLASSES = re.compile(r"\\[dwsbDWSB]|\(\?[a-zA-Z]")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Arrow's decimal128 holds 38 digits: a step with more fractional digits has no exact column check.
MAX_STEP_SCALE = 37
#: Lines the Arrow decimal parse of a `multipleOf` number may misread (see the module docstring).
_ESCAPED_KEY = r'\\(?:[^"\\]|\\.)*"\s*:\s*[\["]'
_NEGATIVE_ZERO = r"-0(?:\.0*)?(?:[eE][-+]?[0-9]+)?[^0-9.eE]"
_RE2_SPECIAL = set("\\.+*?()|[]{}^$")


@dataclass(frozen=True)
class Unsupported:
    """Why a schema cannot be judged column by column (the stream stays on the per-record path)."""

    path: str
    keyword: str
    detail: str = ""

    def __str__(self) -> str:
        where = f"property {self.path!r}" if self.path else "the record schema"
        extra = f" ({self.detail})" if self.detail else ""
        return f"{where} uses {self.keyword}{extra}, which is checked record by record"


@dataclass
class Node:
    """One property: the column kind the record path converts to, and its whole-array rules."""

    kind: str  # long, double, boolean, string, timestamptz, date, time, struct, list
    nullable: bool = True  # `null` is among the allowed types
    bounds: list[tuple[str, Decimal]] = field(default_factory=list)  # (ge|gt|le|lt, bound)
    multiple_of: Decimal | int | None = None  # the step as the SDK parses it (never a float)
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: list[Any] | None = None
    children: dict[str, tuple[str, Node]] = field(default_factory=dict)  # source name → (column, node)
    required: frozenset[str] = frozenset()
    closed: bool = False  # additionalProperties: false
    element: Node | None = None
    min_items: int | None = None
    max_items: int | None = None
    scan: str | None = None  # top node: regex of lines to re-check record by record (module docstring)

    def hint(self) -> pa.DataType | None:
        """The Arrow type the JSON reader should parse this property as (None: let it infer);
        strings are pinned so ISO-looking text is not turned into timestamps."""
        if self.kind in ("string", "timestamptz", "date", "time"):
            return pa.string()
        if self.kind == "double" and self.multiple_of is not None:  # exact values for the check
            scale = step_parts(self.multiple_of)[1]
            return pa.decimal128(38 - scale, scale)  # a longer literal fails the parse: no overflow
        if self.kind == "struct":
            hints = [(src, child.hint()) for src, (_col, child) in self.children.items()]
            fields = [(name, kind) for name, kind in hints if kind is not None]
            return pa.struct(fields) if fields else None
        if self.kind == "list" and self.element is not None:
            element = self.element.hint()
            return pa.list_(element) if element is not None else None
        return None


def compile_rules(schema: dict[str, Any], validate: bool = True) -> Node | Unsupported:
    """The record schema as a struct `Node`, or why it cannot be judged column by column.
    `validate=False` (`validate_records: false`): only the types matter (for conversion)."""
    try:
        node = _object(schema, "", validate, top=True)
        node.scan = _line_scan(node) if validate else None
        return node
    except SchemaUnsupported as exc:
        return exc.reason


def step_parts(step: Decimal | int) -> tuple[int, int]:
    """A `multipleOf` step as (units, scale): step == units × 10^-scale, both integers."""
    exponent = Decimal(step).normalize().as_tuple().exponent
    scale = max(0, -exponent) if isinstance(exponent, int) else 0
    return int(Decimal(step).scaleb(scale)), scale


def _fail(path: str, keyword: str, detail: str = "") -> SchemaUnsupported:
    return SchemaUnsupported(Unsupported(path, keyword, detail))


def _types(prop: dict[str, Any], path: str) -> tuple[set[str], bool]:
    raw = prop.get("type")
    if raw is None:
        raise _fail(path, "no type", "any JSON value, kept as JSON text")
    listed = [raw] if isinstance(raw, str) else list(raw)
    return {t for t in listed if t != "null"}, "null" in listed


def _collapse_any_of(prop: dict[str, Any], path: str) -> tuple[dict[str, Any], bool]:
    """`anyOf` as taps write it (a type and `{"type": "null"}`) → (the typed option, null allowed)."""
    options = prop["anyOf"]
    others = set(prop) - {"anyOf", "title", "description", "default", "examples", "$comment"}
    if others or not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
        raise _fail(path, "anyOf", "combined with other keywords")
    nulls = [o for o in options if o.get("type") == "null" and len(o) == 1]
    typed = [o for o in options if not (o.get("type") == "null" and len(o) == 1)]
    if len(typed) != 1:
        raise _fail(path, "anyOf", f"{len(typed)} non-null options")
    return typed[0], bool(nulls)


def node_for(prop: Any, path: str, validate: bool) -> Node:
    """The `Node` of one property schema (raises SchemaUnsupported)."""
    if not isinstance(prop, dict):
        raise _fail(path, "a boolean schema")
    extra_null = False
    if "anyOf" in prop:
        prop, extra_null = _collapse_any_of(prop, path)
        if "anyOf" in prop:
            raise _fail(path, "nested anyOf")
    if validate:
        for keyword in UNSUPPORTED:
            if keyword in prop:
                raise _fail(path, keyword)
    types, nullable = _types(prop, path)
    nullable = nullable or extra_null
    if types == {"integer", "number"}:
        kind = "double"
    elif len(types) != 1:
        raise _fail(path, "type", f"{sorted(types) or ['null']}: no single type, kept as JSON text")
    else:
        json_type = next(iter(types))
        if json_type == "object":
            node = _object(prop, path, validate)
            node.nullable = nullable
            return node
        if json_type == "array":
            return _array(prop, path, validate, nullable)
        if json_type not in _SCALAR:
            raise _fail(path, "type", repr(json_type))
        kind = _SCALAR[json_type]
        if kind == "string":
            kind = _DATES.get(prop.get("format"), "string")
    node = Node(kind, nullable)
    if validate:
        _scalar_rules(node, prop, path, types)
    return node


def _object(prop: dict[str, Any], path: str, validate: bool, top: bool = False) -> Node:
    props = prop.get("properties")
    if not props or not isinstance(props, dict):
        raise _fail(path, "an object without properties", "kept as JSON text")
    if validate and not top:
        for keyword in UNSUPPORTED:
            if keyword in prop:
                raise _fail(path, keyword)
    children: dict[str, tuple[str, Node]] = {}
    for name, sub in props.items():
        child_path = f"{path}.{name}" if path else name
        children[name] = (sanitize_name(name), node_for(sub, child_path, validate))
    node = Node("struct", children=children)
    if validate:
        node.required = frozenset(prop.get("required") or [])
        if undeclared := sorted(set(node.required) - set(props)):  # no column to check it on
            raise _fail(path, "required", f"names {undeclared}, not among the properties")
        additional = prop.get("additionalProperties", True)
        if additional is False:
            node.closed = True
        elif additional not in (True, {}):
            raise _fail(path, "additionalProperties", "a schema for extra keys")
        _enum(node, prop, path)
    return node


def _array(prop: dict[str, Any], path: str, validate: bool, nullable: bool) -> Node:
    items = prop.get("items")
    if not isinstance(items, dict) or not items:
        raise _fail(path, "an array without items", "kept as JSON text")
    node = Node("list", nullable, element=node_for(items, f"{path}[]", validate))
    if validate:
        node.min_items = _count(prop, "minItems", path)
        node.max_items = _count(prop, "maxItems", path)
        _enum(node, prop, path)
    return node


def _count(prop: dict[str, Any], keyword: str, path: str) -> int | None:
    value = prop.get(keyword)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, float)) or value != int(value):
        raise _fail(path, keyword, repr(value))
    return int(value)


def _number(value: Any, path: str, keyword: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise _fail(path, keyword, repr(value))
    number = Decimal(value)
    if not number.is_finite():
        raise _fail(path, keyword, repr(value))
    return number


def _scalar_rules(node: Node, prop: dict[str, Any], path: str, types: set[str]) -> None:
    if node.kind in ("long", "double"):
        for keyword, op in (
            ("minimum", "ge"),
            ("exclusiveMinimum", "gt"),
            ("maximum", "le"),
            ("exclusiveMaximum", "lt"),
        ):
            if keyword in prop:
                node.bounds.append((op, _number(prop[keyword], path, keyword)))
        if "multipleOf" in prop:
            raw = prop["multipleOf"]
            if isinstance(raw, float):  # jsonschema divides in floating point then
                raise _fail(path, "multipleOf", f"{raw!r} as a binary float, not parsed as the SDK parses")
            step = _number(raw, path, "multipleOf")
            if step <= 0:
                raise _fail(path, "multipleOf", f"{raw} is not positive")
            if step_parts(step)[1] > MAX_STEP_SCALE:
                raise _fail(path, "multipleOf", f"{raw}: more than {MAX_STEP_SCALE} fractional digits")
            node.multiple_of = raw
    if node.kind in ("string", "timestamptz", "date", "time"):
        node.min_length = _count(prop, "minLength", path)
        node.max_length = _count(prop, "maxLength", path)
        if "pattern" in prop:
            node.pattern = _pattern(prop["pattern"], path)
    _enum(node, prop, path)


def _line_scan(top: Node) -> str | None:
    """The regex of record lines the columnar check of a `multipleOf` number may misjudge: a
    watched key holding a string (or a list holding one), any escaped key holding a string or a
    list, a negative zero. None: the schema has no such number."""
    plain: list[str] = []
    listed: list[str] = []

    def walk(node: Node, key: str | None, in_list: bool, path: str) -> None:
        if node.kind == "double" and node.multiple_of is not None:
            if key is None:
                raise _fail(re.sub(r"(\[\])+$", "", path), "multipleOf", "on numbers in arrays of arrays")
            (listed if in_list else plain).append(_literal(key))
        for src, (_col, child) in node.children.items():
            walk(child, src, False, f"{path}.{src}" if path else src)
        if node.element is not None:
            walk(node.element, None if in_list else key, True, f"{path}[]")

    walk(top, None, False, "")
    if not plain and not listed:
        return None
    parts = [_ESCAPED_KEY, _NEGATIVE_ZERO]
    if plain:
        parts.append(f'"(?:{"|".join(plain)})"\\s*:\\s*"')
    if listed:
        parts.append(f'"(?:{"|".join(listed)})"\\s*:\\s*\\[[^\\]"]*"')
    return "|".join(parts)


def _literal(key: str) -> str:
    """A key as it is written in JSON (unescaped), as an RE2 literal."""
    written = json.dumps(key, ensure_ascii=False)[1:-1]
    return "".join(f"\\{c}" if c in _RE2_SPECIAL else c for c in written)


def _enum(node: Node, prop: dict[str, Any], path: str) -> None:
    members: list[Any] | None = None
    if "enum" in prop:
        members = list(prop["enum"]) if isinstance(prop["enum"], list) else None
        if members is None:
            raise _fail(path, "enum", "not a list")
    if "const" in prop:
        members = [prop["const"]] if members is None else [m for m in members if _same(m, prop["const"])]
    if members is None:
        return
    if node.kind in ("string", "timestamptz", "date", "time"):
        node.enum = [m for m in members if isinstance(m, str) or m is None]
    elif node.kind == "long":
        node.enum = [
            int(m) if m is not None else None
            for m in members
            if m is None
            or (isinstance(m, (int, Decimal, float)) and not isinstance(m, bool) and _integral(m))
        ]
    elif node.kind == "boolean":
        node.enum = [m for m in members if isinstance(m, bool) or m is None]
    else:
        raise _fail(path, "enum" if "enum" in prop else "const", f"on a {node.kind} property")


def _integral(value: int | Decimal | float) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer()
    return isinstance(value, int) or (value.is_finite() and value == value.to_integral_value())


def _same(one: Any, two: Any) -> bool:
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    return bool(one == two)


def _pattern(pattern: Any, path: str) -> str:
    """A pattern RE2 (Arrow) reads as Python's `re.search` does, else SchemaUnsupported."""
    if not isinstance(pattern, str):
        raise _fail(path, "pattern", repr(pattern))
    index = 0
    while index < len(pattern):
        if pattern[index] == "\\":
            escaped = pattern[index + 1 : index + 2]
            if escaped not in _SAFE_ESCAPES:
                raise _fail(path, "pattern", f"the escape \\{escaped}")
            index += 2
            continue
        index += 1
    if "{," in pattern or "[:" in pattern or "(?" in pattern.replace("(?:", ""):
        raise _fail(path, "pattern", "a construct RE2 reads differently")
    try:
        re.compile(pattern)
        import pyarrow.compute as pc

        pc.match_substring_regex(pa.array([], pa.string()), pattern)
    except (re.error, pa.ArrowInvalid) as exc:
        raise _fail(path, "pattern", str(exc).splitlines()[0]) from None
    return pattern


def unicode_sensitive(pattern: str) -> bool:
    """Whether RE2 and Python may disagree on non-ASCII text (`\\d`, `\\w`, `\\s`, `\\b`)."""
    return _UNICODE_CLASSES.search(pattern) is not None


def clamp(value: int) -> int:
    """An integer threshold within int64 (comparisons outside it are decided by the sign)."""
    return max(INT64_MIN, min(INT64_MAX, value))
