"""Replay digests: the columnar digest of a run of RECORD lines equals the per-record one.

A crashed run may have taken the columnar path and its replay the per-record path (or the other
way round): both must digest a record to the same bytes, or a replay would not be recognised.
"""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from target_dativo_iceberg.delivery.replay import line_bytes, lines_bytes

STAMPS = [
    "2025-01-01T00:00:00.000000+00:00",
    "2025-01-01T00:00:00Z",
    "2025-01-01T00:00:00.5+02:00",
    # not timestamps, but stamps of one width can still hold `"record"` after the key
    "record",
    "recorx",
    'a"record"',
    'b"record"',
    "x\\record",
]


@st.composite
def record_line(draw: st.DrawFn) -> bytes:
    """A RECORD line as taps write it: `time_extracted` last (usual), first, missing, or also a
    record key; values that may hold the text "record" or "time_extracted"."""
    text = st.sampled_from(["a", "record", '"record"', "time_extracted", '"time_extracted"', ""])
    record = draw(
        st.dictionaries(st.sampled_from(["id", "name", "time_extracted", "record"]), text, max_size=3)
    )
    stamp = draw(st.sampled_from(STAMPS))
    layout = draw(st.sampled_from(["last", "last", "last", "first", "none"]))
    message: dict = {"type": "RECORD", "stream": "s"}
    if layout == "first":
        message["time_extracted"] = stamp
    message["record"] = record
    if layout == "last":
        message["time_extracted"] = stamp
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    return json.dumps(message, separators=separators).encode()


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(record_line(), min_size=1, max_size=8), uniform=st.booleans())
def test_columnar_digest_bytes_equal_per_record_bytes(lines: list[bytes], uniform: bool) -> None:
    if uniform:  # the common case: one tap, one stamp width, `time_extracted` last
        lines = [lines[0]] * len(lines)
    array = pa.array(lines, pa.large_binary())
    assert bytes(lines_bytes(array)) == b"".join(line_bytes(line) for line in lines)


def test_sdk_tap_lines_keep_their_record_and_drop_the_stamp() -> None:
    lines = [
        b'{"type":"RECORD","stream":"s","record":{"id":1},"time_extracted":"2025-01-01T00:00:00Z"}',
        b'{"type":"RECORD","stream":"s","record":{"id":2},"time_extracted":"2025-06-01T00:00:00Z"}',
    ]
    got = bytes(lines_bytes(pa.array(lines, pa.large_binary())))
    assert (
        got
        == b'{"type":"RECORD","stream":"s","record":{"id":1},\n{"type":"RECORD","stream":"s","record":{"id":2},\n'
    )
