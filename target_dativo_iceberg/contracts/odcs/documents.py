"""Reading contract documents: YAML without surprises, JSON Schema validation, locations → line numbers.

The official ODCS JSON Schemas are vendored next to this module (see NOTICE.md there): one per
minor version, because a v3.0.x document is not valid under the v3.1 schema and vice versa (the
quality block changed shape). Validation runs on the raw YAML, never on pydantic models, so keys
such as `validValues` are seen as written.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from importlib import resources
from typing import Any

import yaml
from jsonschema import Draft201909Validator
from jsonschema.exceptions import ValidationError, best_match

from target_dativo_iceberg.contracts.odcs import join_location
from target_dativo_iceberg.errors import ContractProblem

# apiVersion minor → vendored official schema file.
OFFICIAL_SCHEMAS = {
    "3.0": "odcs-json-schema-v3.0.2.json",
    "3.1": "odcs-json-schema-v3.1.0.json",
    "3.2": "odcs-json-schema-v3.2.0.json",
}
FLAT_SCHEMA = "dativo-flat-contract.schema.json"
MAX_REPORTED = 5
_OPTION_KEYS = (
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf",
)  # fmt: skip

_API_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates and timestamps as strings, as JSON Schema and ODCS expect."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(text: str) -> Any:
    """Parse YAML (or JSON); a syntax error becomes a ContractProblem with line and column."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContractProblem(where, f"not valid YAML: {problem}") from exc


def api_minor(api_version: Any) -> str | None:
    """`v3.1.0` → `3.1`; None when the value is not a version string."""
    match = _API_VERSION.match(str(api_version).strip()) if api_version is not None else None
    if not match:
        return None
    return f"{match.group(1)}.{match.group(2)}"


@functools.cache
def _validator(filename: str) -> Draft201909Validator:
    text = (
        resources.files("target_dativo_iceberg.contracts.odcs").joinpath(filename).read_text(encoding="utf-8")
    )
    return Draft201909Validator(json.loads(text))


def location_of(path: Iterable[Any]) -> str:
    """A jsonschema path (deque of keys/indices) as `schema[0].properties[2].logicalType`."""
    location = ""
    for key in path:
        location = join_location(location, key)
    return location or "(document root)"


def _describe(error: ValidationError) -> str:
    if error.validator in ("oneOf", "anyOf") and error.context:
        inner = best_match(error.context)
        if inner is not None and inner.message:
            return f"{error.message.split(' is not valid under')[0]} does not match: {inner.message}"
    misplaced = [k for k in _OPTION_KEYS if f"'{k}'" in error.message]
    if error.validator == "unevaluatedProperties" and misplaced:
        return f"{error.message}; ODCS puts {', '.join(misplaced)} under `logicalTypeOptions`"
    if error.validator == "unevaluatedProperties" and "'rule'" in error.message:
        return (
            f"{error.message}; ODCS v3.1+ quality entries use `metric` instead of `rule` (`metric: rowCount`, "
            "`metric: invalidValues` with `arguments: {validValues: [...]}`)"
        )
    return error.message


def schema_problems(document: Any, filename: str) -> list[ContractProblem]:
    """Problems of a document under one vendored schema: the most relevant first, at most 5."""
    errors = list(_validator(filename).iter_errors(document))
    if not errors:
        return []
    first = best_match(errors)
    ordered = [first] + sorted(
        (e for e in errors if e is not first), key=lambda e: [str(p) for p in e.absolute_path]
    )
    problems = []
    for error in ordered[:MAX_REPORTED]:
        problems.append(ContractProblem(location_of(error.absolute_path), _describe(error)))
    return problems


def line_of(text: str, location: str) -> int | None:
    """1-based line of the node at `location` in the YAML text (the deepest existing parent)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = node.start_mark.line + 1
    for key in re.findall(r"[^.\[\]]+|\[\d+\]", location):
        if isinstance(node, yaml.SequenceNode) and key.startswith("["):
            index = int(key[1:-1])
            if index >= len(node.value):
                break
            node = node.value[index]
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == key:
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                break
            continue
        else:
            break
        line = node.start_mark.line + 1
    return line
