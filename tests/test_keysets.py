"""IntKeys behaves like a Python set of integer keys (what the validator's uniqueness checks need)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from target_dativo_iceberg.contracts.keysets import IntKeys

KEYS = st.one_of(st.integers(-50, 50), st.integers(-(2**63), 2**63 - 1), st.sampled_from([2**64, "k"]))


#: Runs of consecutive keys (stored as intervals), near the int64 limits too.
RUNS = st.tuples(st.sampled_from([-(2**63), -30, 0, 2**63 - 40]), st.integers(0, 40)).map(
    lambda p: list(range(p[0], p[0] + p[1]))
)


@given(
    batches=st.lists(st.one_of(st.lists(KEYS, max_size=20), RUNS), max_size=12),
    probes=st.lists(KEYS, max_size=20),
    sorted_adds=st.booleans(),
)
def test_intkeys_matches_a_python_set(batches: list[list], probes: list, sorted_adds: bool) -> None:
    keys, reference = IntKeys(), set()
    for batch in batches:
        fresh = sorted({k for k in batch if type(k) is int and -(2**63) <= k < 2**63} - reference)
        if sorted_adds and fresh and keys.isdisjoint_sorted(np.array(fresh, dtype=np.int64)):
            keys.add_sorted(np.array(fresh, dtype=np.int64))  # the hot path's way in
            reference |= set(fresh)
            assert len(keys) == len(reference)
            continue
        assert keys.isdisjoint(batch) == reference.isdisjoint(batch)
        keys |= batch
        reference |= set(batch)
        assert len(keys) == len(reference)
    for probe in probes:
        assert (probe in keys) == (probe in reference)
    keys.add(7)
    reference.add(7)
    assert 7 in keys and keys.isdisjoint(probes) == reference.isdisjoint(probes)


def test_sequential_keys_take_constant_memory() -> None:
    keys = IntKeys()
    for start in range(1, 1_000_001, 10_000):
        keys.add_sorted(np.arange(start, start + 10_000, dtype=np.int64))
    assert len(keys) == 1_000_000 and len(keys.levels) == 1
    assert keys.nbytes == 16  # one interval [1, 1_000_000]
    assert 1 in keys and 1_000_000 in keys and 0 not in keys and 1_000_001 not in keys
    assert not keys.isdisjoint_sorted(np.array([500_000], dtype=np.int64))


def test_scattered_keys_stay_in_few_sorted_levels_at_8_bytes_a_key() -> None:
    keys = IntKeys()
    for start in range(0, 1_000_000, 10_000):
        keys |= range(2 * start, 2 * (start + 10_000), 2)  # even numbers: no two adjacent
    assert len(keys) == 1_000_000 and len(keys.levels) <= 8
    assert keys.nbytes == 8_000_000
    assert 1_999_998 in keys and 1_999_999 not in keys and 2_000_000 not in keys


def test_gappy_runs_are_stored_as_intervals() -> None:
    keys = IntKeys()
    keys |= [*range(0, 100), *range(200, 300), 1000]
    assert keys.nbytes == 3 * 16 and len(keys) == 201
    keys |= range(100, 200)  # fills the gap (a level of its own until the levels merge)
    assert len(keys) == 301 and keys.nbytes <= 4 * 16  # not 301 keys x 8 bytes
    assert all(k in keys for k in (0, 150, 299, 1000)) and 300 not in keys and 999 not in keys
