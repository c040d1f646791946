"""ODCS documents for contract.py and validator.py: vendored JSON Schemas, type mapping, rules, coercion.

Helpers here raise `errors.ContractProblem` (location + problem, no file); `contract.py` turns it
into a `ContractError` naming the file.
"""

from __future__ import annotations


def join_location(base: str, key: str | int) -> str:
    """`schema[0]` + `properties` → `schema[0].properties`; + 2 → `schema[0].properties[2]`."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key
