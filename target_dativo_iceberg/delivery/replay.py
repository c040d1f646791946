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
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from target_dativo_iceberg.iceberg.schema import json_default
from target_dativo_iceberg.intake.blocks import concat_values, joined_lines

REPLAY_KEY = "dativo.replay"
#: The envelope key that legitimately differs between a run and its replay (SDK taps stamp "now").
_EXTRACTED = b'"time_extracted"'
_EXTRACTED_RE = re.compile(rb'"time_extracted"\s*:\s*"[^"]*"')


def line_bytes(line: bytes) -> bytes:
    """What a RECORD line contributes to a digest: the line up to its `time_extracted` (SDK taps
    write it last), or the line without it when the record comes after it; plus a newline."""
    line = line.rstrip(b"\n")
    head, found, tail = line.partition(_EXTRACTED)
    if found and b'"record"' in tail:
        head = _EXTRACTED_RE.sub(b"", line)
    return head + b"\n"


def record_bytes(record: dict[str, Any]) -> bytes:
    """Digest bytes of a record that did not come from an input line: canonical JSON."""
    return json.dumps(record, sort_keys=True, default=json_default, separators=(",", ":")).encode() + b"\n"


def lines_bytes(lines: pa.Array) -> bytes | pa.Buffer:
    """`line_bytes` of every line of an Arrow array of RECORD lines, joined, with array operations
    (an Arrow buffer: hashlib reads it in place, no copy into a Python bytes object)."""
    same = _same_tail(lines)
    if same is not None:
        return same
    parts = pc.split_pattern(lines, _EXTRACTED.decode(), max_splits=1)
    tails = pc.list_flatten(pc.list_slice(parts, 1, 2))
    if len(tails) and pc.any(pc.match_substring(tails, '"record"')).as_py():
        return b"".join(line_bytes(line) for line in lines.to_pylist())
    heads = pc.list_element(parts, 0).cast(pa.large_binary())
    return joined_lines(heads)


def _same_tail(lines: pa.Array) -> pa.Buffer | None:
    """`lines_bytes` when every line ends with a `time_extracted` of one width, its only one, as SDK
    taps write them: the tails replaced by newlines in one kernel (~3× cheaper than splitting the
    lines at it); None otherwise."""
    first = lines[0].as_py() if len(lines) else b""
    at = first.find(_EXTRACTED)
    width = len(first) - at
    if at < 0 or b'"record"' in first[at:] or pc.min(pc.binary_length(lines)).as_py() < width:
        return None
    starts = pc.binary_slice(lines, -width, -width + len(_EXTRACTED))
    if not pc.all(pc.equal(starts, pa.scalar(_EXTRACTED, starts.type))).as_py():
        return None
    if _record_in_tails(pc.binary_slice(lines, -width)):
        return None
    if concat_values(lines).to_pybytes().count(_EXTRACTED) != len(lines):
        return None  # an earlier "time_extracted" in a line: its digest stops there (bytes.count
        # is ~2× faster than an Arrow substring match over every line)
    return concat_values(pc.binary_replace_slice(lines, -width, 1 << 40, "\n"))


def _record_in_tails(tails: pa.Array) -> bool:
    """Whether a tail (each starts with `"time_extracted"`) holds `"record"`. SDK tails are
    `"time_extracted":"<text>"}`: with no quote in the text, only a text of `record` can; checked in
    one pass over the bytes (~5× cheaper than a substring search over every tail)."""
    opening, closing = _EXTRACTED + b':"', b'"}'
    width = len(tails[0].as_py()) if len(tails) else 0
    if width > len(opening) + len(closing) and (
        pc.all(pc.starts_with(tails, opening.decode())).as_py()
        and pc.all(pc.ends_with(tails, closing.decode())).as_py()
    ):
        text = pc.binary_slice(tails, len(opening), width - len(closing))
        if not (np.frombuffer(concat_values(text), np.uint8) == ord('"')).any():
            return bool(pc.any(pc.equal(text, pa.scalar(b"record", text.type))).as_py())
    return bool(pc.any(pc.match_substring(tails, '"record"')).as_py())


@dataclass
class SegmentLog:
    """Digests of one stream's records per STATE segment (segment k: after STATE k, before k+1).

    Hot runs are digested on a background thread (`add_lines`: Arrow kernels and SHA-256 release the
    GIL, so this overlaps with parsing); `marker` waits for them. One worker keeps the order.
    """

    counts: dict[int, int] = field(default_factory=dict)
    hashers: dict[int, Any] = field(default_factory=dict)
    pending: list[Future] = field(default_factory=list)

    def _hasher(self, seq: int) -> Any:
        if seq not in self.hashers:
            self.hashers[seq] = hashlib.sha256()
            self.counts[seq] = 0
        return self.hashers[seq]

    def add(self, seq: int, data: bytes, count: int = 1) -> None:
        """Log `count` records (their digest bytes, `data`) that arrived after STATE number `seq`."""
        self._settle()
        self._hasher(seq).update(data)
        self.counts[seq] += count

    def add_lines(self, seq: int, lines: pa.Array) -> None:
        """Log a run of RECORD lines (digested in the background)."""
        hasher = self._hasher(seq)
        self.counts[seq] += len(lines)
        self.pending.append(_DIGESTER.submit(lambda: hasher.update(lines_bytes(lines))))

    def add_async(self, seq: int, data: bytes, count: int) -> None:
        """`add`, hashed in the background (a BATCH file's bytes)."""
        hasher = self._hasher(seq)
        self.counts[seq] += count
        self.pending.append(_DIGESTER.submit(hasher.update, data))

    def _settle(self) -> None:
        pending, self.pending = self.pending, []
        for future in pending:
            future.result()

    def marker(self, from_seq: int) -> dict[str, Any]:
        """Count and combined digest of the records logged after STATE `from_seq`."""
        self._settle()
        seqs = [s for s in sorted(self.counts) if s >= from_seq and self.counts[s]]
        combined = hashlib.sha256(b"".join(self.hashers[s].digest() for s in seqs)).hexdigest()
        return {"after": sum(self.counts[s] for s in seqs), "digest": combined}

    def prune(self, below: int) -> None:
        """Forget segments before STATE `below` (covered by a printed STATE: never replayed)."""
        self._settle()
        for seq in [s for s in self.counts if s < below]:
            del self.counts[seq]
            del self.hashers[seq]


_DIGESTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dativo-digest")


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
    held: list[Any] = field(default_factory=list)
    count: int = 0  # records held
    log: SegmentLog = field(default_factory=SegmentLog)
    decided: bool = False
    first_state: str | None = None
    waiting: Candidate | None = None  # digest matched, its first STATE not seen yet

    def offer(self, seq: int, item: Any, data: bytes, count: int = 1) -> str:
        """Take `count` records (`item`: one record, or a BATCH file's rows, with digest bytes
        `data`): "held" (undecided), "replay" (the held records are committed ones: drop them), or
        "fresh" (not a replay: process them)."""
        self.waiting = None  # a record arrived before the awaited STATE: that candidate fails
        self.held.append(item)
        self.log.add(seq, data, count)
        self.count += count
        count = self.count
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
            if self.count >= max(c.after for c in self.candidates):
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
