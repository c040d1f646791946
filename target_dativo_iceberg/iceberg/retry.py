"""Retries of transient network, storage and catalog errors (`retry_config`, design §3).

Object stores and catalogs fail briefly (a restarting server, a dropped connection, HTTP 503 or 429);
a run should ride that out instead of failing. Only errors known to be transient are retried: a
wrong secret, a missing table or a schema conflict fails at once, so a misconfiguration is reported in
seconds rather than after the whole backoff. Commit conflicts with concurrent writers are not
transient errors: `conflicts.py` redoes those commits, bounded by `max_conflict_retries` of this
policy. Callers that retry a commit pass `before_retry` to look for their commit id first (idempotency).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from target_dativo_iceberg.errors import DativoError, RetryExhaustedError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.redact import active

T = TypeVar("T")

DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_DELAY_SECONDS = 5.0
#: Concurrent writers can make a commit lose several rounds in a row (one winner per round): a
#: conflict costs no outage to wait out, so it is retried more often and sooner than an error.
DEFAULT_MAX_CONFLICT_RETRIES = 10

# Exception class names (anywhere in the class hierarchy) that mean "try again": connection-level
# failures of requests/urllib3/botocore/builtins and pyiceberg's REST 5xx/429/unknown-commit-state.
TRANSIENT_TYPES = frozenset(
    {
        "ConnectionError",  # builtins (refused/reset/aborted/broken pipe) and requests
        "TimeoutError",
        "timeout",  # socket.timeout
        "Timeout",  # requests
        "ProtocolError",  # urllib3: connection dropped mid-response
        "NewConnectionError",
        "EndpointConnectionError",  # botocore
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ServiceUnavailableError",  # pyiceberg REST 503
        "ServerError",  # pyiceberg REST 5xx
        "TooManyRequestsError",  # pyiceberg REST 429
        "CommitStateUnknownException",  # the commit may have landed: callers check their commit id
    }
)

# Errors that retrying cannot fix, even when wrapped in a transient-looking class.
PERMANENT_TYPES = frozenset(
    {
        "SSLError",
        "ForbiddenError",
        "UnauthorizedError",
        "BadRequestError",
        "OAuthError",
        "PermissionError",
        "FileNotFoundError",
        "FileExistsError",
        "IsADirectoryError",
        "NotADirectoryError",
    }
)
PERMANENT_MARKERS = (
    "access_denied",
    "accessdenied",
    "access denied",
    "signature_does_not_match",
    "signaturedoesnotmatch",
    "invalidaccesskeyid",
    "invalid_access_key_id",
    "no_such_bucket",
    "nosuchbucket",
    "http status 401",
    "http status 403",
    "http status 404",
    "authentication failed",
    "certificate verify failed",
    "name or service not known",
    "nodename nor servname",
)
TRANSIENT_MARKERS = (
    "connection refused",
    "connection reset",
    "connection aborted",
    "connection was closed",
    "connection to server",  # psycopg2: connection to server at "h", port p failed
    "could not connect",
    "server closed the connection",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "database is locked",
    "remote end closed",
    "remotedisconnected",
    "broken pipe",
    "timed out",
    "timeout",
    "temporarily unavailable",
    "temporary failure in name resolution",
    "service unavailable",
    "internal server error",
    "internalerror",
    "internal_failure",  # pyarrow S3: AWS Error INTERNAL_FAILURE (a 500)
    "bad gateway",
    "gateway timeout",
    "too many requests",
    "slowdown",
    "slow_down",
    "slow down",
    "throttl",
    "network_connection",  # pyarrow S3: AWS Error NETWORK_CONNECTION
    "couldn't connect",
)
_HTTP_STATUS = re.compile(
    r"(?:\bhttp(?: status)?|\bstatus(?: code)?|\bcode)\W{0,3}(?:429|5\d\d)\b|\b(?:429|5\d\d) (?:server error|client error)",
    re.IGNORECASE,
)


def describe(exc: BaseException, scrub: Callable[[str], str] | None = None) -> str:
    """`ExceptionType: message`, on one line, redacted and bounded (reasons go into JSON events and errors).

    A socket-level root cause (connection refused, timed out) is named instead of the long wrapper
    message of requests/urllib3. The message is redacted with `scrub` (default: the process's
    redactor) before it is cut, so a cut never leaves the start of a secret behind.
    """
    scrub = scrub or active().text
    root = list(_chain(exc))[-1]
    if root is not exc and isinstance(root, OSError) and type(root).__module__ in ("builtins", "socket"):
        return f"{_one_line(root, scrub)} (raised as {type(exc).__module__}.{type(exc).__name__})"
    return _one_line(exc, scrub)


def _one_line(exc: BaseException, scrub: Callable[[str], str]) -> str:
    text = scrub(" ".join(str(exc).split()) or repr(exc))
    if len(text) > 600:
        text = text[:600] + "..."
    return f"{type(exc).__name__}: {text}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes/contexts (pyiceberg and SQLAlchemy wrap the socket error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _type_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient errors: exponential backoff with jitter.

    The delay before retry n (1-based) is `retry_delay_seconds * 2**(n-1)`, capped at
    `max_delay_seconds`, then drawn uniformly from `[delay * (1 - jitter), delay]` so that concurrent
    writers hitting the same outage do not retry in lockstep.

    Commit conflicts (`conflicts.retry_conflicts`) are retried `max_conflict_retries` times; the
    delay before conflict retry n is drawn from `[c/4, c * 2**(n-1)]` (c = `conflict_delay_seconds`),
    capped at `max_conflict_delay_seconds`.

    The target builds it from its `retry_config` setting (`settings.RetrySettings.policy`).
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    retry_delay_seconds: float = DEFAULT_RETRY_DELAY_SECONDS
    retryable_errors: tuple[str, ...] = ()
    max_delay_seconds: float = 60.0
    jitter: float = 0.5
    max_conflict_retries: int = DEFAULT_MAX_CONFLICT_RETRIES
    conflict_delay_seconds: float = 0.2
    max_conflict_delay_seconds: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    @property
    def attempts(self) -> int:
        """Calls made at most: the first one plus the retries."""
        return self.max_retries + 1

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        base = min(self.max_delay_seconds, self.retry_delay_seconds * 2 ** max(0, retry - 1))
        return base * (1 - self.jitter * self.random())

    def is_transient(self, exc: BaseException) -> bool:
        """True when trying again may succeed.

        `retryable_errors` (substrings of the message or exception class names) always count as
        transient. Our own DativoErrors are diagnosed failures and are never retried otherwise; an
        error whose chain shows bad credentials, a missing object or a TLS failure is permanent.
        """
        chain = list(_chain(exc))
        if self.retryable_errors:
            for err in chain:
                text = str(err)
                if any(m in text or m in _type_names(err) for m in self.retryable_errors):
                    return True
        if isinstance(exc, DativoError):
            return False
        for err in chain:
            names = _type_names(err)
            if names & PERMANENT_TYPES or any(m in str(err).lower() for m in PERMANENT_MARKERS):
                return False
        for err in chain:
            names = _type_names(err)
            text = str(err).lower()
            if names & TRANSIENT_TYPES or any(m in text for m in TRANSIENT_MARKERS):
                return True
            if _HTTP_STATUS.search(text):
                return True
            if isinstance(err, OSError) and type(err) is OSError:  # FileIO (pyarrow) I/O failures
                return True
        return False


NO_RETRY = RetryPolicy(max_retries=0)


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    events: EventLog | None,
    what: str,
    *,
    endpoint: str | None = None,
    stream: str | None = None,
    before_retry: Callable[[], T | None] | None = None,
) -> T:
    """Call `fn`, retrying transient errors per `policy`; each retry emits a `retry` event.

    A non-transient error propagates at once, unchanged. After the last attempt a
    `RetryExhaustedError` names `what`, the endpoint (redacted) and the cause. `before_retry` runs
    before each retry (inside the retried block: a transient error there counts as that attempt's);
    when it returns something other than None, that is the result and `fn` is not called again (a
    commit whose response was lost but which did land).
    """
    scrub = events.redact if events is not None else active().text
    attempt = 0
    while True:
        attempt += 1
        try:
            if attempt > 1 and before_retry is not None:
                done = before_retry()
                if done is not None:
                    return done
            return fn()
        except Exception as exc:
            if not policy.is_transient(exc):
                raise
            if attempt >= policy.attempts:
                where = f" at {endpoint}" if endpoint else ""
                tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                message = scrub(f"{what}{where} failed after {tries}: {describe(exc, scrub)}")
                raise RetryExhaustedError(message, what, endpoint, exc, attempt) from exc
            wait = policy.delay(attempt)
            if events is not None:
                events.emit(
                    "retry",
                    stream=stream,
                    what=what,
                    endpoint=endpoint,
                    attempt=attempt,
                    max_attempts=policy.attempts,
                    delay_seconds=round(wait, 3),
                    reason=describe(exc, scrub),
                )
            policy.sleep(wait)
