"""ODCS documents for contract.py and validator.py: vendored JSON Schemas, type mapping, rules, coercion.

Helpers here raise `ContractProblem` (location + problem, no file); `contract.py` turns it into a
`ContractError` naming the file, so the public error type stays in one place.
"""

from __future__ import annotations


class ContractProblem(Exception):
    """One problem in a contract document at a JSON-pointer-like location (e.g. `schema[0].name`)."""

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(f"{location}: {problem}" if location else problem)
        self.location = location
        self.problem = problem


def join_location(base: str, key: str | int) -> str:
    """`schema[0]` + `properties` → `schema[0].properties`; + 2 → `schema[0].properties[2]`."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key
