"""Compact sets of integer keys for run-long uniqueness checks (primary keys, `unique` columns).

A Python set spends ~70 bytes per integer key (the set slot plus the int object): 5 million keys
cost ~350 MB. `IntKeys` keeps them in sorted numpy arrays (8 bytes a key) in a few levels that
merge as they grow, LSM-style, so adding a batch costs O(batch · log) amortized and a lookup one
binary search per level.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

_INT64 = (-(2**63), 2**63 - 1)


class IntKeys:
    """A set of int64 keys with the `set` operations the validator uses."""

    def __init__(self) -> None:
        self.levels: list[np.ndarray] = []
        self.extra: set[Any] = set()  # keys added one at a time (the record path), or not int64

    def __len__(self) -> int:
        return sum(level.size for level in self.levels) + len(self.extra)

    def __contains__(self, key: Any) -> bool:
        if key in self.extra:
            return True
        if not isinstance(key, int) or isinstance(key, bool) or not _INT64[0] <= key <= _INT64[1]:
            return False
        for level in self.levels:
            index = int(np.searchsorted(level, key))
            if index < level.size and level[index] == key:
                return True
        return False

    def add(self, key: Any) -> None:
        if key not in self:
            self.extra.add(key)

    def _present(self, array: np.ndarray) -> np.ndarray:
        """Mask of the keys of `array` already in the set."""
        found = np.zeros(array.size, dtype=bool)
        for level in self.levels:
            if array.size and level.size:
                index = np.searchsorted(level, array).clip(max=level.size - 1)
                found |= level[index] == array
        if self.extra:
            found |= np.fromiter((k in self.extra for k in array.tolist()), dtype=bool, count=array.size)
        return found

    def isdisjoint_sorted(self, keys: np.ndarray) -> bool:
        """No key of the distinct int64 array `keys` is in the set."""
        return not self._present(keys).any()

    def add_sorted(self, keys: np.ndarray) -> None:
        """Add distinct int64 keys known to be absent (checked with `isdisjoint_sorted`)."""
        if keys.size:
            self.levels.append(keys)
            self._compact()

    def isdisjoint(self, keys: Iterable[Any]) -> bool:
        """No key of `keys` is in the set."""
        array, others = _split(keys)
        return not self._present(array).any() and not any(k in self.extra for k in others)

    def __ior__(self, keys: Iterable[Any]) -> IntKeys:
        array, others = _split(keys)
        self.extra.update(others)
        array = array[~self._present(array)] if self.levels or self.extra else array
        if array.size:
            self.levels.append(_sorted_unique(array))
            self._compact()
        return self

    def _compact(self) -> None:
        """Merge the newest levels while they are of similar size (few levels to search)."""
        while len(self.levels) > 1 and self.levels[-2].size <= 2 * self.levels[-1].size:
            newest = self.levels.pop()
            self.levels[-1] = _sorted_unique(np.concatenate((self.levels[-1], newest)))


def _split(keys: Iterable[Any]) -> tuple[np.ndarray, list[Any]]:
    """int64 keys as an array; anything else (huge ints, other types) as a list."""
    values = list(keys)
    try:
        return np.fromiter(values, dtype=np.int64, count=len(values)), []
    except (OverflowError, TypeError, ValueError):
        ints = [v for v in values if type(v) is int and _INT64[0] <= v <= _INT64[1]]
        others = [v for v in values if not (type(v) is int and _INT64[0] <= v <= _INT64[1])]
        return np.fromiter(ints, dtype=np.int64, count=len(ints)), others


def _sorted_unique(array: np.ndarray) -> np.ndarray:
    """Sorted distinct values (numpy 2's `unique` hashes, ~20x slower than a sort here)."""
    ordered = np.sort(array)
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def sorted_keys(column: Any) -> np.ndarray | None:
    """The non-null values of an integer Arrow column as a sorted int64 array, or None when a value
    repeats (a duplicate within the batch)."""
    values = column.drop_null().to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    ordered = np.sort(values)
    if ordered.size > 1 and bool((ordered[1:] == ordered[:-1]).any()):
        return None
    return ordered
