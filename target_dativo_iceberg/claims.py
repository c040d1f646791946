"""Which stream writes which table in this run: two streams never share one table.

Table names are sanitized (lower-cased, non-alphanumerics → `_`), so different streams can land
on one name (`Users` and `users`, or `日本` and `中国`, which both become `__`); their rows would
silently merge into one table with the union of their columns. The second stream to claim a
table fails the run instead, before any of its records is read. A stream that sends its SCHEMA
again claims its own table again, which is fine.
"""

from __future__ import annotations

from target_dativo_iceberg.contracts.enforcement import REJECTED_SUFFIX
from target_dativo_iceberg.errors import SchemaError


class TableClaims:
    """Table identifier → the stream writing it (and, in warn mode, its `__rejected` table)."""

    def __init__(self, rejected_tables: bool) -> None:
        self.rejected_tables = rejected_tables
        self._owners: dict[tuple[str, str], tuple[str, str]] = {}  # identifier → (stream, role)

    def claim(self, stream: str, identifier: tuple[str, str]) -> None:
        """Record that `stream` writes `identifier`; SchemaError if another stream already does."""
        namespace, table = identifier
        wanted = [(identifier, "table")]
        if self.rejected_tables:
            wanted.append(((namespace, table + REJECTED_SUFFIX), "rejected-records table"))
        for ident, role in wanted:
            owner = self._owners.get(ident)
            if owner is not None and owner[0] != stream:
                other, other_role = owner
                roles = (
                    ""
                    if role == other_role
                    else f" (the {other_role} of {other!r}, the {role} of {stream!r})"
                )
                raise SchemaError(
                    f"streams {other!r} and {stream!r} both map to Iceberg table {'.'.join(ident)!r}{roles}; "
                    "their rows would merge. Rename one (e.g. stream_maps with __alias__) or give it a "
                    "contract with its own physicalName"
                )
        for ident, role in wanted:
            self._owners[ident] = (stream, role)
