"""The STATE ledger and the commit queue on their own: which STATE a commit covers, that each is
printed once and never while an overwrite is staged, which resume points a replay marker needs,
and that a commit's STATE is printed only after the commit thread finished it."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass

import pytest

from target_dativo_iceberg.delivery.commits import CommitQueue
from target_dativo_iceberg.delivery.ledger import StateLedger
from target_dativo_iceberg.events import EventLog


@dataclass(eq=False)
class Sink:
    first_pending_seq: int | None = None


def make(*sinks: Sink, held: bool = False) -> tuple[StateLedger, io.StringIO, io.StringIO]:
    out, log = io.StringIO(), io.StringIO()
    events = EventLog("acme", "run-1", stream=log)
    return StateLedger(events, lambda: list(sinks), held=lambda: held, out=out), out, log


def printed(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_commit_covers_the_newest_state_no_other_buffer_precedes() -> None:
    a, b = Sink(), Sink()
    ledger, out, _ = make(a, b)
    a.first_pending_seq = 0  # a record of `a` before any STATE
    ledger.receive({"pos": 1})
    b.first_pending_seq = 1  # `b`'s oldest buffered record follows STATE 1
    ledger.receive({"pos": 2})
    ledger.receive({"pos": 3})
    assert ledger.covered(a) == (1, {"pos": 1})  # b still holds records after STATE 1
    assert ledger.covered(b) == (0, None)  # a holds records from before any STATE
    a.first_pending_seq = None
    assert ledger.covered(b) == (3, {"pos": 3})
    ledger.emit(1)
    assert printed(out) == [{"pos": 1}]


def test_each_state_is_printed_once_in_order_and_repeats_are_not_numbered() -> None:
    ledger, out, log = make()
    assert ledger.receive({"pos": 1}) is not None
    assert ledger.receive({"pos": 1}) is None  # the same value again: not a new STATE
    ledger.receive({"pos": 2})
    ledger.emit(2)
    ledger.emit(2)
    ledger.emit(1)  # older than what was printed: never goes out
    assert printed(out) == [{"pos": 2}]
    assert ledger.emitted_seq == 2 and not ledger.behind
    assert [json.loads(x)["event"] for x in log.getvalue().splitlines()] == ["state_emitted"]


def test_nothing_is_printed_while_an_overwrite_is_staged() -> None:
    ledger, out, _ = make(held=True)
    ledger.receive({"pos": 1})
    ledger.emit()
    assert printed(out) == [] and ledger.behind


def test_floats_parsed_as_decimal_are_printed_as_numbers() -> None:
    import decimal

    ledger, out, _ = make()
    ledger.receive({"v": decimal.Decimal("2.75"), "n": decimal.Decimal("3")})
    ledger.emit()
    assert out.getvalue() == '{"v": 2.75, "n": 3}\n'


def test_only_states_a_commit_can_still_report_are_kept() -> None:
    sink = Sink()
    ledger, _, _ = make(sink)
    for pos in range(1, 1001):
        ledger.receive({"pos": pos})
    assert len(ledger._states) <= 2  # a private member: the bound is the point of this test
    sink.first_pending_seq = ledger.seq  # a record arrives after STATE 1000
    for pos in range(1001, 1101):
        ledger.receive({"pos": pos})
    assert ledger.covered(Sink()) == (1000, {"pos": 1000})  # what that buffer's commit may report


def test_resume_points_include_every_state_another_buffer_follows() -> None:
    a, b, c = Sink(), Sink(), Sink()
    ledger, _, _ = make(a, b, c)
    ledger.receive({"pos": 1})
    ledger.receive({"pos": 2})
    ledger.pin(2)  # a commit in flight covers STATE 2
    for pos in range(3, 6):
        ledger.receive({"pos": pos})
    ledger.emit(2)
    b.first_pending_seq, c.first_pending_seq = 3, 1
    # printed (2), newest (5), b's (3); c's (1) is older than what was printed: never resumed from.
    assert ledger.resume_points(a) == [2, 3, 5]


def test_a_commits_state_is_printed_only_after_the_commit_thread_finished() -> None:
    ledger, out, _ = make()
    queue = CommitQueue(ledger)
    ledger.receive({"pos": 1})
    release = threading.Event()
    queue.submit(1, lambda: release.wait(30) and "landed", lambda result: ledger.emit(1))
    queue.poll()  # not finished: nothing reported, nothing printed
    assert queue.busy and printed(out) == []
    ledger.receive({"pos": 2})  # STATE 1 stays reportable while pinned by the commit in flight
    release.set()
    queue.join()
    assert not queue.busy and printed(out) == [{"pos": 1}]


def test_a_failed_commit_raises_on_join_and_prints_nothing() -> None:
    ledger, out, _ = make()
    queue = CommitQueue(ledger)
    ledger.receive({"pos": 1})

    def work() -> None:
        raise OSError("disk full")

    queue.submit(1, work, lambda result: ledger.emit(1))
    with pytest.raises(OSError, match="disk full"):
        queue.join()
    assert printed(out) == []
