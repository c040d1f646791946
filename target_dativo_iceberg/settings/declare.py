"""How a setting is declared: one dataclass field gives its JSON schema, type, default and checks.

A settings class is a dataclass whose fields are made with `setting()` (a value), `group()` (a nested
object such as `retry_config`) or `builtin()` (a setting the Singer SDK declares). From that single
declaration
- `json_schema()` builds the `config_jsonschema` the SDK validates and prints in `--about` (Meltano's
  lock files are generated from it), so a name, description, secret flag or default cannot drift
  from what the code uses;
- `parse()` turns a config mapping into an instance: an absent value takes the default, a value is
  converted to the field's declared type, and allowed values and checks are enforced with a message
  naming the setting (dotted for nested ones: `retry_config.max_retries`).

`builtin()` settings (`load_method`, `add_record_metadata`, ...) are left out of our schema: the SDK
adds its own declaration (`Target.append_builtin_config`), and their default and allowed values are
read from it, so they too are written once.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import (
    ADD_RECORD_METADATA_CONFIG,
    FLATTENING_CONFIG,
    TARGET_LOAD_METHOD_CONFIG,
)

from target_dativo_iceberg.errors import ConfigError

T = TypeVar("T")

#: The SDK's declarations of the built-in settings the target reads (see `builtin`).
SDK_SETTINGS: dict[str, dict[str, Any]] = {
    **ADD_RECORD_METADATA_CONFIG["properties"],
    **TARGET_LOAD_METHOD_CONFIG["properties"],
    **FLATTENING_CONFIG["properties"],
}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class Declared:
    """What a field's declaration says beyond its name, type and default."""

    description: str
    secret: bool = False
    allowed: tuple[str, ...] = ()
    #: The default depends on other settings (said in the description): none in the schema.
    derive: Callable[[dict[str, Any]], Any] | None = None
    #: Declared by the Singer SDK: typed and parsed here, absent from our schema.
    builtin: bool = False
    #: Checks (and normalises) a given value: `(value, dotted name) -> value`; raises ConfigError.
    check: Callable[[Any, str], Any] | None = None
    #: Reads a text value of a setting that is not text (Meltano passes some lists as "a, b").
    from_text: Callable[[str, str], Any] | None = None


def setting(
    default: Any,
    description: str,
    *,
    secret: bool = False,
    allowed: tuple[str, ...] = (),
    derive: Callable[[dict[str, Any]], Any] | None = None,
    check: Callable[[Any, str], Any] | None = None,
    from_text: Callable[[str, str], Any] | None = None,
) -> Any:
    """Declare a setting. `default` is the value when absent (and the schema's default unless it is
    None or empty); with `derive`, the value when absent is `derive(earlier settings)` instead."""
    declared = Declared(description, secret, allowed, derive, False, check, from_text)
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"setting": declared})
    return field(default=default, metadata={"setting": declared})


def group(cls: type, description: str) -> Any:
    """Declare a nested object of settings (its own dataclass of declared fields)."""
    return field(default_factory=cls, metadata={"setting": Declared(description)})


def builtin(name: str) -> Any:
    """A setting the Singer SDK declares: its default and allowed values are the SDK's (an absent
    boolean is false)."""
    sdk = SDK_SETTINGS[name]
    default = _plain(sdk.get("default"))
    if default is None and "boolean" in _types(sdk):
        default = False
    allowed = tuple(_plain(v) for v in sdk.get("enum") or ())
    declared = Declared(str(sdk.get("description") or ""), allowed=allowed, builtin=True)
    return field(default=default, metadata={"setting": declared})


def declared(f: Field[Any]) -> Declared:
    """The declaration of a settings field."""
    return f.metadata["setting"]


def default_of(f: Field[Any]) -> Any:
    """A field's default value (a fresh one for mutable defaults)."""
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def schema_default(f: Field[Any]) -> Any:
    """The default the JSON schema states for a field (None: it states none)."""
    decl = declared(f)
    if decl.derive is not None or decl.builtin or f.default is MISSING:
        return None
    value = f.default
    if value == () or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)  # `5`, not `5.0`, in --about and the lock files
    return value


def json_schema(cls: type) -> dict[str, Any]:
    """The JSON schema of a settings class, built-in settings left to the SDK."""
    return th.PropertiesList(*_properties(cls)).to_dict()


def _properties(cls: type) -> list[th.Property]:
    hints = get_type_hints(cls)
    props = []
    for f in fields(cls):
        decl = declared(f)
        if decl.builtin:
            continue
        props.append(
            th.Property(
                f.name,
                _json_type(hints[f.name]),
                default=schema_default(f),
                description=decl.description,
                secret=decl.secret,
                allowed_values=list(decl.allowed) or None,
            )
        )
    return props


def _json_type(hint: Any) -> Any:
    hint = value_type(hint)
    if is_dataclass(hint):
        return th.ObjectType(*_properties(hint))  # type: ignore[arg-type]
    origin = get_origin(hint) or hint
    if origin in (list, tuple):
        return th.ArrayType(th.StringType)  # lists of text are the only lists declared
    if origin is dict:
        return th.ObjectType(additional_properties=True)
    return {str: th.StringType, int: th.IntegerType, float: th.NumberType, bool: th.BooleanType}[hint]


def value_type(hint: Any) -> Any:
    """The declared type without its `| None`."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def parse(cls: type[T], raw: Mapping[str, Any], prefix: str = "") -> T:
    """An instance of settings class `cls` from a config mapping (keys it does not declare are
    ignored: they are the SDK's). Absent, null and empty-text values take the default. A message
    about a secret setting does not quote its value."""
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        decl = declared(f)
        name = prefix + f.name
        value = raw.get(f.name)
        if value is None or value == "":
            values[f.name] = decl.derive(values) if decl.derive else default_of(f)
            continue
        hint = value_type(hints[f.name])
        shown = "a value that is not shown (secret)" if decl.secret else repr(value)
        if isinstance(value, str) and decl.from_text is not None and hint is not str:
            value = decl.from_text(value, name)
        if is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name} must be an object, got {shown}")
            values[f.name] = parse(hint, value, f"{name}.")  # type: ignore[arg-type]
            continue
        value = _convert(hint, value, name, shown)
        if decl.allowed and value not in decl.allowed:
            raise ConfigError(f"{name} must be one of {', '.join(decl.allowed)}, got {shown}")
        values[f.name] = decl.check(value, name) if decl.check else value
    return cls(**values)


def _convert(hint: Any, value: Any, name: str, shown: str) -> Any:
    """`value` as the declared type; numbers and booleans may be given as text."""
    origin = get_origin(hint) or hint
    text = value.strip().lower() if isinstance(value, str) else None
    if hint is bool:
        if isinstance(value, bool):
            return value
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{name} must be true or false, got {shown}")
    if hint in (int, float) and not isinstance(value, bool):
        if isinstance(value, int):
            return hint(value)
        try:
            number = float(text) if text is not None else float(value)
        except (TypeError, ValueError):
            number = math.nan
        if hint is int and number.is_integer():
            return int(number)
        if hint is float and math.isfinite(number):
            return number
        kind = "a whole number" if hint is int else "a number"
        raise ConfigError(f"{name} must be {kind}, got {shown}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be a string, got {shown}")
    if origin in (list, tuple):
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return origin(value)
        raise ConfigError(f"{name} must be a list of strings, got {shown}")
    if origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise ConfigError(f"{name} must be an object, got {shown}")
    raise ConfigError(f"{name}: cannot read a value of type {hint!r}")


def text_list(value: str, name: str) -> list[str]:
    """A list given as text: a JSON list, or comma-separated (as Meltano passes list settings)."""
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{name} must be a list of strings, got {value!r}") from exc
        if not isinstance(items, list):
            raise ConfigError(f"{name} must be a list of strings, got {value!r}")
        return [str(v) for v in items]
    return [part.strip() for part in text.split(",") if part.strip()]


def positive(value: float, name: str) -> float:
    """Check: a number above 0."""
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return value


def not_negative(value: float, name: str) -> float:
    """Check: a number of 0 or more."""
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    return value


def masked_repr(obj: Any) -> str:
    """A settings object's repr with its secret fields shown as `***` (reprs reach tracebacks)."""
    shown = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        shown.append(f"{f.name}={'***' if declared(f).secret and value else repr(value)}")
    return f"{type(obj).__name__}({', '.join(shown)})"


def _plain(value: Any) -> Any:
    """An SDK enum member as its plain value (`TargetLoadMethods.UPSERT` → "upsert")."""
    return value.value if isinstance(value, Enum) else value


def _types(prop: Mapping[str, Any]) -> list[str]:
    kind = prop.get("type") or []
    return [kind] if isinstance(kind, str) else list(kind)
