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


@dataclass
class ReplayGuard:
    """Holds back a run's first records until it is known whether they are a replay.

    `candidates` are (count, digest) pairs from the last commit's marker: one measured from the
    last STATE printed before that commit (a crash before its STATE was printed), one from the
    STATE the commit covers (a crash after). Checked in ascending count.
    """

    candidates: list[tuple[int, str]]
    held: list[dict[str, Any]] = field(default_factory=list)
    log: SegmentLog = field(default_factory=SegmentLog)
    decided: bool = False

    def offer(self, seq: int, record: dict[str, Any]) -> str:
        """Take a record: "held" (still undecided), "replay" (the held records are committed ones:
        drop them), or "fresh" (not a replay: process the held records normally)."""
        self.held.append(record)
        self.log.add(seq, record)
        count = len(self.held)
        for expected, digest in self.candidates:
            if expected == count and self.log.marker(0)["digest"] == digest:
                self.decided = True
                return "replay"
        if count >= max(n for n, _ in self.candidates):
            self.decided = True
            return "fresh"
        return "held"

    def give_up(self) -> list[dict[str, Any]]:
        """End of input before a decision: the held records cannot be a replay."""
        self.decided = True
        held, self.held = self.held, []
        return held


def parse_marker(text: str | None) -> list[tuple[int, str]]:
    """(`after`, `digest`) candidates with `after` > 0 from a snapshot summary value."""
    if not text:
        return []
    try:
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
        found = {(int(d["after"]), str(d["digest"])) for d in items}
    except (ValueError, KeyError, TypeError):
        return []
    return sorted(c for c in found if c[0] > 0)
