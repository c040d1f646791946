"""Uniqueness across a run: the keys accepted so far for each primary key, `unique` and duplicateValues check.

An append-only stream also checks its primary key against the rows already on the branch
(`seed_existing`): a re-sent row would otherwise land twice.

Only accepted rows claim a key, so a row rejected for another reason does not make a later row with
its key a duplicate. A rejecting check (primary key, `unique`, row-level duplicateValues) rejects a
row whose key was accepted earlier in the run; a counting check (an object-level duplicateValues
threshold) only counts repeats, for `Validator.finish` to judge.

Memory: every distinct accepted key of the run, per check: integer keys in `keysets.IntKeys` (sorted
numpy arrays: 16 bytes per run of consecutive keys, at most 8 bytes per key), ~85 bytes + the length
per string key, ~160 bytes per two-column key (Python sets). `keys_held` tells how many there are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from target_dativo_iceberg.contracts.contract import Contract
from target_dativo_iceberg.contracts.keysets import IntKeys, sorted_keys
from target_dativo_iceberg.contracts.odcs.results import RowError, short_repr
from target_dativo_iceberg.contracts.odcs.rules import QualityCheck
from target_dativo_iceberg.contracts.odcs.types import ResolvedType


@dataclass
class KeyGroup:
    """A uniqueness check kept across the run: one column or a composite key."""

    rule: str
    label: str
    columns: tuple[int, ...]
    reject: bool = True
    check: QualityCheck | None = None
    seen: set[Any] | IntKeys = field(default_factory=set)
    duplicates: int = 0
    #: Keys already on the branch before the run (`Uniqueness.seed_existing`), and which branch.
    existing: set[Any] | IntKeys | None = None
    branch: str = ""

    def new_keys(self, distinct: set[Any]) -> bool:
        """None of `distinct` was accepted in the run or is on the branch."""
        return self.seen.isdisjoint(distinct) and (
            self.existing is None or self.existing.isdisjoint(distinct)
        )

    def holds(self, key: Any) -> str | None:
        """Where `key` is already (None: nowhere)."""
        if key in self.seen:
            return "already accepted in this run"
        if self.existing is not None and key in self.existing:
            return f"already on branch {self.branch!r}"
        return None


def key_groups(contract: Contract, resolved: list[ResolvedType], primary_key_unique: bool) -> list[KeyGroup]:
    """The contract's uniqueness checks; `primary_key_unique=False` (upsert) leaves out the primary key
    and `unique` on key columns."""
    fields = contract.fields
    index = {f.name: i for i, f in enumerate(fields)}
    keys = sorted((f for f in fields if f.primary_key_position), key=lambda f: f.primary_key_position or 0)
    groups: list[KeyGroup] = []
    if keys and primary_key_unique:
        groups.append(
            KeyGroup("primary_key", ",".join(f.name for f in keys), tuple(index[f.name] for f in keys))
        )
    sole_key = keys[0].name if len(keys) == 1 and primary_key_unique else None
    for i, f in enumerate(fields):
        upserted = f.primary_key_position is not None and not primary_key_unique
        if f.unique and f.name != sole_key and not upserted:
            groups.append(KeyGroup("unique", f.name, (i,)))
        for q in f.quality:
            if q.metric == "duplicateValues" and not (q.row_level and (f.unique or f.name == sole_key)):
                groups.append(KeyGroup("duplicateValues", f.name, (i,), q.row_level, q))
    for q in contract.quality:
        if q.metric == "duplicateValues" and q.properties:
            cols = tuple(index[p] for p in q.properties)
            groups.append(KeyGroup("duplicateValues", ",".join(q.properties), cols, q.row_level, q))
    for group in groups:  # integer keys: 8 bytes each instead of ~70 in a Python set
        if len(group.columns) == 1 and resolved[group.columns[0]].kind in ("int", "long"):
            group.seen = IntKeys()
    return groups


def _key_reader(typed: list[pa.Array]) -> Callable[[KeyGroup], list[Any]]:
    """A group's key per row (a tuple for composite keys; None where any part is null), each column
    converted to Python values once."""
    cache: dict[int, list[Any]] = {}

    def values(group: KeyGroup) -> list[Any]:
        lists = [cache.setdefault(c, typed[c].to_pylist()) for c in group.columns]
        if len(lists) == 1:
            return lists[0]
        return [None if None in key else key for key in zip(*lists, strict=True)]

    return values


class Uniqueness:
    """The uniqueness checks of one stream's contract and the keys they hold for the run."""

    def __init__(self, contract: Contract, resolved: list[ResolvedType], primary_key_unique: bool) -> None:
        self.groups = key_groups(contract, resolved, primary_key_unique)

    @property
    def keys_held(self) -> int:
        """Distinct keys held (the memory cost)."""
        return sum(len(g.seen) + len(g.existing or ()) for g in self.groups)

    def seed_existing(self, columns: list[pa.Array], branch: str) -> bool:
        """The primary key's values already on `branch` (its key columns, in key order), so a
        re-sent row is a duplicate too; False when no check takes them (no primary key check)."""
        group = next((g for g in self.groups if g.rule == "primary_key"), None)
        if group is None:
            return False
        if isinstance(group.seen, IntKeys):  # one integer column: sorted arrays, no Python int per key
            ints = IntKeys()
            values = columns[0].drop_null().to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
            ints.add_sorted(np.unique(values))
            group.existing, group.branch = ints, branch
            return True
        lists = [c.to_pylist() for c in columns]
        keys = lists[0] if len(lists) == 1 else [None if None in k else k for k in zip(*lists, strict=True)]
        group.existing, group.branch = {k for k in keys if k is not None}, branch
        return True

    def duplicate_counts(self) -> list[tuple[QualityCheck, str, int]]:
        """(check, label, repeats counted) of each counting duplicateValues check."""
        return [(g.check, g.label, g.duplicates) for g in self.groups if not g.reject and g.check is not None]

    def reject_duplicates(
        self,
        typed: list[pa.Array],
        raws: list[list[Any]],
        flags: list[bool],
        first: int,
        errors: list[RowError],
    ) -> list[bool]:
        """Reject rows whose key was accepted earlier in the run; only accepted rows claim a key."""
        values = _key_reader(typed)
        rejecting = [(g, values(g)) for g in self.groups if g.reject]
        counting = [(g, values(g)) for g in self.groups if not g.reject]
        if not any(flags) and self._all_new(rejecting):
            rejecting = []
        for index in range(len(flags) if rejecting else 0):
            duplicate = False
            for group, keys in rejecting:
                key = keys[index]
                where = group.holds(key) if key is not None else None
                if where is not None:
                    duplicate = True
                    raw = [raws[c][index] for c in group.columns]
                    value = raw[0] if len(raw) == 1 else raw
                    message = f"duplicate {group.label} {short_repr(value)}: {where}"
                    errors.append(RowError(first + index, group.label, group.rule, message, value))
            if duplicate:
                flags[index] = True
            elif not flags[index]:
                for group, keys in rejecting:
                    if keys[index] is not None:
                        group.seen.add(keys[index])
        for group, keys in counting:
            self._count_duplicates(group, keys, flags)
        return flags

    def claim_all(self, typed: list[pa.Array], rows: int) -> bool:
        """Hot path, for a batch with no other violation: claim every key and count the counting
        checks' repeats; False, with nothing claimed or counted, when a key repeats (the record path
        then names it)."""
        values = _key_reader(typed)
        if not self._all_new_arrays([g for g in self.groups if g.reject], typed, values):
            return False
        flags = [False] * rows
        for group in self.groups:
            if not group.reject:
                self._count_duplicates(group, values(group), flags)
        return True

    def _all_new_arrays(
        self, groups: list[KeyGroup], typed: list[pa.Array], values: Callable[[KeyGroup], list[Any]]
    ) -> bool:
        """`_all_new` for the hot path: integer keys are checked and claimed as numpy arrays (no
        Python object per key); other keys as Python values."""
        arrays: list[tuple[KeyGroup, Any]] = []
        others: list[tuple[KeyGroup, list[Any]]] = []
        for group in groups:
            if isinstance(group.seen, IntKeys):
                keys = sorted_keys(typed[group.columns[0]])
                if keys is None or not group.seen.isdisjoint_sorted(keys):
                    return False
                if isinstance(group.existing, IntKeys) and not group.existing.isdisjoint_sorted(keys):
                    return False
                arrays.append((group, keys))
            else:
                others.append((group, values(group)))
        if others and not self._all_new(others):
            return False
        for group, keys in arrays:
            group.seen.add_sorted(keys)  # type: ignore[union-attr]
        return True

    @staticmethod
    def _count_duplicates(group: KeyGroup, keys: list[Any], flags: list[bool]) -> None:
        """A non-rejecting duplicateValues check: count repeats among accepted rows."""
        for index, key in enumerate(keys):
            if not flags[index] and key is not None:
                if key in group.seen:
                    group.duplicates += 1
                else:
                    group.seen.add(key)

    @staticmethod
    def _all_new(rejecting: list[tuple[KeyGroup, list[Any]]]) -> bool:
        """Fast path: every key of a fully valid batch is distinct and unseen → claim them all."""
        batches = []
        for group, keys in rejecting:
            present = [k for k in keys if k is not None] if None in keys else keys
            distinct = set(present)
            if len(distinct) != len(present) or not group.new_keys(distinct):
                return False
            batches.append(distinct)
        for (group, _), distinct in zip(rejecting, batches, strict=True):
            group.seen |= distinct
        return True
