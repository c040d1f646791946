"""Exactly-once across crashes: recognise records a tap replays that an earlier run already committed.

Every commit stores, next to the Singer state it covers (`dativo.singer-state`), a replay marker
`dativo.replay = {"after": n, "digest": d}`: this stream's n records that arrived *after* that state
and are committed, and a digest of them. Digests are kept per STATE segment (records between two
STATE messages), so they do not depend on where batches were cut.

After a crash, Meltano restarts the tap from the last STATE the target printed. When that is the
state a table's last commit covered and the tap replays deterministically (same records, same order,
same STATE messages), the first n records of the stream in the new run are exactly the committed
ones: the target holds them back, compares their digest with the marker, and drops them when it
matches. Any mismatch (a non-deterministic tap, another starting state) processes them normally:
at-least-once, never a loss.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from target_dativo_iceberg.schema import json_default

REPLAY_KEY = "dativo.replay"
#: Record keys that legitimately differ between a run and its replay.
_VOLATILE = (
    "_sdc_received_at",
    "_sdc_batched_at",
    "_sdc_extracted_at",
    "_sdc_sequence",
    "_sdc_sync_started_at",
)


def record_bytes(record: dict[str, Any]) -> bytes:
    """Canonical bytes of a record (sorted keys, volatile SDK metadata removed)."""
    clean = {k: v for k, v in record.items() if k not in _VOLATILE}
    return json.dumps(clean, sort_keys=True, default=json_default, separators=(",", ":")).encode()


@dataclass
class SegmentLog:
    """Digests of one stream's records per STATE segment (segment k: after STATE k, before k+1)."""

    counts: dict[int, int] = field(default_factory=dict)
    hashers: dict[int, Any] = field(default_factory=dict)

    def add(self, seq: int, record: dict[str, Any]) -> None:
        """Log a record that arrived after STATE number `seq`."""
        if seq not in self.hashers:
            self.hashers[seq] = hashlib.sha256()
            self.counts[seq] = 0
        self.hashers[seq].update(record_bytes(record))
        self.counts[seq] += 1

    def marker(self, from_seq: int) -> dict[str, Any]:
        """Count and combined digest of the records logged after STATE `from_seq`."""
        seqs = [s for s in sorted(self.counts) if s >= from_seq and self.counts[s]]
        combined = hashlib.sha256(b"".join(self.hashers[s].digest() for s in seqs)).hexdigest()
        return {"after": sum(self.counts[s] for s in seqs), "digest": combined}

    def prune(self, below: int) -> None:
        """Forget segments before STATE `below` (covered by a printed STATE: never replayed)."""
        for seq in [s for s in self.counts if s < below]:
            del self.counts[seq]
            del self.hashers[seq]


def state_hash(state: Any) -> str:
    """Short digest of a STATE value (markers store these, never the values)."""
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=json_default).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Candidate:
    """One way the last commit can be replayed: `after` records with `digest`, and, when a STATE
    followed the window's start before the commit, the hash of that first STATE (`first_state`)."""

    after: int
    digest: str
    first_state: str | None = None


@dataclass
class ReplayGuard:
    """Holds back a run's first records until it is known whether they are a replay.

    Candidates come from the last commit's marker: one measured from the last STATE printed before
    that commit (a crash before its STATE was printed), one from the STATE the commit covers (a crash
    after). A candidate matches when the first `after` records have its digest and, if it names a
    `first_state`, the first STATE of this run has that hash too. A deterministic tap replaying from
    that STATE produces exactly this; a new run that re-reads the same leading records (a modified
    file read again in full) sends a different STATE, or more records before it, and is processed.
    """

    candidates: list[Candidate]
    held: list[dict[str, Any]] = field(default_factory=list)
    log: SegmentLog = field(default_factory=SegmentLog)
    decided: bool = False
    first_state: str | None = None
    waiting: Candidate | None = None  # digest matched, its first STATE not seen yet

    def offer(self, seq: int, record: dict[str, Any]) -> str:
        """Take a record: "held" (undecided), "replay" (the held records are committed ones: drop
        them), or "fresh" (not a replay: process the held records normally)."""
        self.waiting = None  # a record arrived before the awaited STATE: that candidate fails
        self.held.append(record)
        self.log.add(seq, record)
        count = len(self.held)
        for candidate in self.candidates:
            if candidate.after != count or self.log.marker(0)["digest"] != candidate.digest:
                continue
            if candidate.first_state is None or candidate.first_state == self.first_state:
                return self._decide("replay")
            if self.first_state is None:
                self.waiting = candidate
                return "held"
        if count >= max(c.after for c in self.candidates):
            return self._decide("fresh")
        return "held"

    def on_state(self, value_hash: str) -> str:
        """A STATE arrived: "replay" when it completes a waiting candidate, else "held"/"fresh"."""
        if self.decided:
            return "decided"
        if self.first_state is None:
            self.first_state = value_hash
        if self.waiting is not None:
            matched = self.waiting.first_state == self.first_state
            self.waiting = None
            if matched:
                return self._decide("replay")
            if len(self.held) >= max(c.after for c in self.candidates):
                return self._decide("fresh")
        return "held"

    def _decide(self, verdict: str) -> str:
        self.decided = True
        return verdict


def parse_marker(text: str | None) -> list[Candidate]:
    """Candidates with `after` > 0 from a snapshot summary value."""
    if not text:
        return []
    try:
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
        found = {Candidate(int(d["after"]), str(d["digest"]), d.get("first_state")) for d in items}
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    return sorted((c for c in found if c.after > 0), key=lambda c: c.after)
