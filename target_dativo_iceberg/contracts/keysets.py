"""Compact sets of integer keys for run-long uniqueness checks (primary keys, `unique` columns).

A Python set spends ~70 bytes per integer key (the set slot plus the int object): 5 million keys
cost ~350 MB. `IntKeys` keeps them in a few sorted numpy levels that merge as they grow, LSM-style,
so adding a batch costs O(batch · log) amortized and a lookup one binary search per level. A level
whose keys form runs of consecutive integers (sequential ids, the usual primary key) is stored as
intervals, so memory stays flat however many keys arrive; scattered keys cost 8 bytes each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class _Level:
    """Distinct keys as sorted, disjoint, non-adjacent intervals [starts[i], ends[i]]; `ends` is
    `starts` itself when every interval is a single key (no memory spent on intervals)."""

    starts: np.ndarray
    ends: np.ndarray
    size: int  # keys

    @classmethod
    def of_sorted(cls, keys: np.ndarray) -> _Level:
        """A level of sorted distinct keys: intervals when that at least halves the memory."""
        if keys.size < 4:
            return cls(keys, keys, keys.size)
        breaks = np.flatnonzero(np.diff(keys) != 1) + 1  # wraps only for gaps > 1: still != 1
        if 2 * (breaks.size + 1) > keys.size:
            return cls(keys, keys, keys.size)
        starts = keys[np.concatenate(([0], breaks))]
        ends = keys[np.concatenate((breaks - 1, [keys.size - 1]))]
        return cls(starts, ends, keys.size)

    @property
    def plain(self) -> bool:
        return self.ends is self.starts

    @property
    def nbytes(self) -> int:
        return self.starts.nbytes + (0 if self.plain else self.ends.nbytes)

    def contains(self, array: np.ndarray) -> np.ndarray:
        """Mask of the keys of `array` in this level."""
        index = np.searchsorted(self.starts, array, side="right") - 1
        inside = index >= 0
        return inside & (self.ends[index.clip(min=0)] >= array)

    def keys(self) -> np.ndarray:
        """Every key, sorted."""
        if self.plain:
            return self.starts
        lengths = self.ends - self.starts + 1
        firsts = np.cumsum(lengths) - lengths
        return np.repeat(self.starts - firsts, lengths) + np.arange(self.size, dtype=np.int64)

    def merge(self, other: _Level) -> _Level:
        """The union of two disjoint levels."""
        if self.plain and other.plain:
            return _Level.of_sorted(np.sort(np.concatenate((self.starts, other.starts))))
        starts = np.concatenate((self.starts, other.starts))
        ends = np.concatenate((self.ends, other.ends))
        order = np.argsort(starts, kind="stable")
        starts, ends = starts[order], ends[order]
        opens = np.concatenate(([True], starts[1:] != ends[:-1] + 1))  # not adjacent to the previous
        closes = np.concatenate((opens[1:], [True]))
        merged = _Level(starts[opens], ends[closes], self.size + other.size)
        if 2 * merged.starts.size > merged.size:  # intervals no longer pay: plain keys
            return _Level.of_sorted(merged.keys())
        return merged


class IntKeys:
    """A set of int64 keys with the `set` operations the validator uses."""

    def __init__(self) -> None:
        self.levels: list[_Level] = []
        self.extra: set[Any] = set()  # keys added one at a time (the record path), or not int64

    def __len__(self) -> int:
        return sum(level.size for level in self.levels) + len(self.extra)

    @property
    def nbytes(self) -> int:
        """Bytes held by the levels (the key set's memory, but for `extra`)."""
        return sum(level.nbytes for level in self.levels)

    def __contains__(self, key: Any) -> bool:
        if key in self.extra:
            return True
        if not isinstance(key, int) or isinstance(key, bool) or not _INT64[0] <= key <= _INT64[1]:
            return False
        probe = np.array([key], dtype=np.int64)
        return any(bool(level.contains(probe)[0]) for level in self.levels)

    def add(self, key: Any) -> None:
        if key not in self:
            self.extra.add(key)

    def _present(self, array: np.ndarray) -> np.ndarray:
        """Mask of the keys of `array` already in the set."""
        found = np.zeros(array.size, dtype=bool)
        for level in self.levels:
            if array.size and level.size:
                found |= level.contains(array)
        if self.extra:
            found |= np.fromiter((k in self.extra for k in array.tolist()), dtype=bool, count=array.size)
        return found

    def isdisjoint_sorted(self, keys: np.ndarray) -> bool:
        """No key of the distinct int64 array `keys` is in the set."""
        return not self._present(keys).any()

    def add_sorted(self, keys: np.ndarray) -> None:
        """Add sorted distinct int64 keys known to be absent (checked with `isdisjoint_sorted`)."""
        if keys.size:
            self.levels.append(_Level.of_sorted(keys))
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
            self.levels.append(_Level.of_sorted(_sorted_unique(array)))
            self._compact()
        return self

    def _compact(self) -> None:
        """Merge the newest levels while they are of similar length (few levels to search)."""
        while len(self.levels) > 1 and self.levels[-2].starts.size <= 2 * self.levels[-1].starts.size:
            newest = self.levels.pop()
            self.levels[-1] = self.levels[-1].merge(newest)


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
