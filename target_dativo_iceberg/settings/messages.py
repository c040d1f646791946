"""Messages for settings the SDK's JSON Schema check rejects: each setting and what it takes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema.validators import validator_for

_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
}


def describe_config_errors(schema: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """Every way `config` breaks the settings' JSON schema, each naming the setting and what it
    takes (the SDK's own message is just "Config validation failed"). Secret values are not shown."""
    validator = validator_for(schema)(schema)
    problems = []
    for error in sorted(validator.iter_errors(dict(config)), key=lambda e: [str(p) for p in e.absolute_path]):
        setting = ".".join(str(part) for part in error.absolute_path)
        secret = isinstance(error.schema, Mapping) and (
            error.schema.get("secret") or error.schema.get("writeOnly")
        )
        got = "" if secret else f", got {error.instance!r}"
        if error.validator == "enum":
            expected = "one of " + ", ".join(str(getattr(v, "value", v)) for v in error.validator_value)
        elif error.validator == "type":
            kinds = (
                [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
            )
            expected = " or ".join(_TYPE_WORDS.get(k, k) for k in kinds if k != "null")
        elif error.validator == "required":
            missing = [k for k in error.validator_value if k not in (error.instance or {})]
            setting, expected, got = ".".join([setting, *missing]).strip("."), "a value (it is required)", ""
        else:
            expected, got = f"{error.validator} {error.validator_value!r}", "" if secret else got
        problems.append(f"{setting or '(config)'}: expected {expected}{got}")
    return "invalid settings: " + "; ".join(problems) if problems else "invalid settings"
