"""Commit conflicts with concurrent writers: which errors are conflicts, and redoing a commit after one.

Writers committing to one branch at once start from the same head; the catalog accepts the first
commit and rejects the others (pyiceberg `CommitFailedException`: the branch moved). pyiceberg then
re-applies a rejected commit on the new head by itself, but only when nothing the winner added can
hold rows that commit deletes. An upsert whose keys the winner also wrote fails that check
(`ValidationException`: "Added data files were found matching the filter"): which rows its keys
replace now depends on what the winner wrote, so the whole transaction — reading the new head,
deleting the keys' rows, appending the batch — is computed again. That is done here, a bounded
number of times (`retry_config.max_conflict_retries`), with exponential backoff and full random
jitter so the losers of one round spread out instead of colliding again in lockstep.

Before each new attempt the branch is searched for the commit's `dativo.commit-id`, so a commit
reported as failed that did land is never applied twice (design §4). The data files a lost attempt
wrote are deleted (the next attempt writes its own), so contention does not fill the warehouse with
orphans.
"""

from __future__ import annotations

from collections.abc import Callable

from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Table, Transaction
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from target_dativo_iceberg.errors import CommitError, DativoError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.markers import find_commit
from target_dativo_iceberg.iceberg.pyiceberg_compat import added_data_files
from target_dativo_iceberg.iceberg.retry import RetryPolicy, describe


def is_commit_conflict(exc: BaseException) -> bool:
    """Another writer changed the branch between our read of its head and our commit.

    pyiceberg raises CommitFailedException for a failed requirement (the REST catalog's HTTP 409
    included) and ValidationException when its own retry finds the other writer's changes touch
    this commit's rows; a stale sequence number shows up as a ValueError (SQL catalog) or an HTTP
    400 (REST catalog) naming the sequence number.
    """
    if isinstance(exc, DativoError):
        return False
    if isinstance(exc, (CommitFailedException, ValidationException)):
        return True
    text = str(exc).lower()
    return "sequence number" in text and "last sequence number" in text


def retry_conflicts(
    attempt: Callable[[], None],
    landed: Callable[[], bool],
    policy: RetryPolicy,
    events: EventLog,
    *,
    stream: str | None,
    what: str,
) -> None:
    """Run `attempt` (one whole commit on a freshly read head) until it lands without a conflict.

    Before every attempt but the first, `landed()` says whether an earlier attempt is on the branch
    after all; then nothing is redone. Other errors propagate unchanged (transient ones are retried
    by the caller's `call_with_retries`). When the conflicts outlast `policy.max_conflict_retries`,
    a CommitError names the commit, the attempts and the last conflict.
    """
    attempts = policy.max_conflict_retries + 1

    def report(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        events.emit(
            "commit_retry",
            stream=stream,
            what=what,
            attempt=state.attempt_number,
            max_attempts=attempts,
            delay_seconds=round(state.upcoming_sleep, 3),
            reason=events.redact(describe(exc)) if exc else None,
        )

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(
            multiplier=policy.conflict_delay_seconds,
            min=policy.conflict_delay_seconds / 4,
            max=policy.max_conflict_delay_seconds,
        ),
        retry=retry_if_exception(is_commit_conflict),
        before_sleep=report,
        sleep=policy.sleep,
        reraise=True,
    )
    try:
        for trial in retrying:
            with trial:
                if trial.retry_state.attempt_number > 1 and landed():
                    return
                attempt()
    except Exception as exc:
        if not is_commit_conflict(exc):
            raise
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        raise CommitError(
            events.redact(
                f"{what}: still conflicting with concurrent writers after {tries} "
                f"(retry_config.max_conflict_retries={policy.max_conflict_retries}): {describe(exc)}"
            )
        ) from exc


def discard_lost_attempt(table: Table, branch: str, commit_id: str, tx: Transaction | None) -> None:
    """Delete the data files of a transaction that lost a conflict — the batch's and those an
    upsert's delete rewrote — unless the commit is on the branch after all. Best effort: a file
    left over is only an orphan (`dativo maintain` removes those)."""
    files = added_data_files(tx)
    if not files:
        return
    try:
        table.refresh()
        if find_commit(table, branch, commit_id) is not None:
            return
        for data_file in files:
            table.io.delete(data_file.file_path)
    except Exception:  # the conflict is what the caller reports
        pass
