"""IntKeys behaves like a Python set of integer keys (what the validator's uniqueness checks need)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from target_dativo_iceberg.keysets import IntKeys

KEYS = st.one_of(st.integers(-50, 50), st.integers(-(2**63), 2**63 - 1), st.sampled_from([2**64, "k"]))


@given(batches=st.lists(st.lists(KEYS, max_size=20), max_size=12), probes=st.lists(KEYS, max_size=20))
def test_intkeys_matches_a_python_set(batches: list[list], probes: list) -> None:
    keys, reference = IntKeys(), set()
    for batch in batches:
        assert keys.isdisjoint(batch) == reference.isdisjoint(batch)
        keys |= batch
        reference |= set(batch)
        assert len(keys) == len(reference)
    for probe in probes:
        assert (probe in keys) == (probe in reference)
    keys.add(7)
    reference.add(7)
    assert 7 in keys and keys.isdisjoint(probes) == reference.isdisjoint(probes)


def test_intkeys_stay_in_few_sorted_levels() -> None:
    keys = IntKeys()
    for start in range(0, 1_000_000, 10_000):
        keys |= range(start, start + 10_000)
    assert len(keys) == 1_000_000 and len(keys.levels) <= 8
    assert sum(level.nbytes for level in keys.levels) == 8_000_000
    assert 999_999 in keys and 1_000_000 not in keys
