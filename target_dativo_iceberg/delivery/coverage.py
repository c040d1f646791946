"""What a commit says about the input: the Singer STATE it covers and its replay marker.

Every commit's snapshot summary carries `dativo.singer-state` (the newest STATE all of whose records
are committed once it lands: `dativo state show` reads it) and `dativo.replay` (one candidate per
STATE a resumed run may start from: see replay.py). The `tail` is how many of the commit's records
came after the newest STATE received so far: while it is not zero, a STATE arriving next must not be
printed without a commit of its own (`Target._release_state`), because the only marker candidate for
that tail names no STATE after it and a resumed run's first records could be mistaken for it.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass
from typing import Any

from target_dativo_iceberg.delivery.replay import REPLAY_KEY
from target_dativo_iceberg.iceberg.committer import json_state

if t.TYPE_CHECKING:
    from target_dativo_iceberg.delivery.ledger import StateLedger
    from target_dativo_iceberg.intake.buffer import StreamBuffer


@dataclass(frozen=True)
class Coverage:
    """A commit's STATE number, its summary keys about the input, and its tail."""

    seq: int
    summary: dict[str, str]
    tail: int


def coverage(ledger: StateLedger, buffer: StreamBuffer) -> Coverage:
    """The STATE and replay marker of a commit of `buffer`'s records (everything it logged so far)."""
    seq, state = ledger.covered(buffer)
    if seq == 0 and buffer.base_state is not None:  # a matched replay: the state it started from
        state = buffer.base_state
    candidates = [_candidate(ledger, buffer, point) for point in ledger.resume_points(buffer)]
    summary = {"dativo.singer-state": json_state(state), REPLAY_KEY: json.dumps(candidates)}
    return Coverage(seq, summary, buffer.segments.counts.get(ledger.seq, 0))


def _candidate(ledger: StateLedger, buffer: StreamBuffer, from_seq: int) -> dict[str, Any]:
    """Replay marker from STATE `from_seq`: records after it, and the first STATE that followed."""
    return {**buffer.segments.marker(from_seq), "first_state": ledger.hashes.get(from_seq + 1)}
