"""retry_config: which errors are transient, backoff with jitter, `retry` events, and a real outage.

The fake-callable tests are deterministic (injected sleep and random). The real test stops SeaweedFS
(tests/servers.py) and brings it back ~2 s later while a retried REST catalog call is in flight.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from target_dativo_iceberg.errors import ConfigError, DativoError, RetryExhaustedError, SchemaChangeError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.retry import (
    NO_RETRY,
    RetryPolicy,
    call_with_retries,
    describe,
)
from target_dativo_iceberg.settings import Settings

if TYPE_CHECKING:
    from servers import SeaweedFS

pytest_plugins = ["servers"]

SECRET = "hunter2-s3cr3t-value"


class Events:
    """An EventLog writing into memory, with SECRET registered for redaction."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.log = EventLog("acme", "run-1", [SECRET], stream=self.buffer)

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in map(json.loads, self.buffer.getvalue().splitlines()) if e["event"] == name]


def policy(max_retries: int = 3, delay: float = 1.0, **kwargs: Any) -> tuple[RetryPolicy, list[float]]:
    """A policy that records its sleeps instead of sleeping; jitter fixed at its upper bound."""
    slept: list[float] = []
    made = RetryPolicy(
        max_retries=max_retries,
        retry_delay_seconds=delay,
        sleep=slept.append,
        random=lambda: 0.0,
        **kwargs,
    )
    return made, slept


def failing(*errors: BaseException, result: Any = "done") -> tuple[Any, list[int]]:
    """A callable raising `errors` in turn, then returning `result`; counts its calls."""
    calls: list[int] = []

    def fn() -> Any:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return fn, calls


# --------------------------------------------------------------------------- classification


def _requests_errors() -> list[BaseException]:
    import requests

    return [
        requests.exceptions.ConnectionError("HTTPConnectionPool(host='x', port=1): Max retries exceeded"),
        requests.exceptions.ReadTimeout("read timed out"),
    ]


def _transient() -> list[BaseException]:
    import botocore.exceptions
    import sqlalchemy.exc
    import urllib3.exceptions
    from pyiceberg.exceptions import (
        CommitStateUnknownException,
        ServerError,
        ServiceUnavailableError,
        TooManyRequestsError,
    )

    wrapped = ValueError("Did not receive a response")
    wrapped.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    return [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        TimeoutError("timed out"),
        TimeoutError("timed out"),
        *_requests_errors(),
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionError("Remote end closed")),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        botocore.exceptions.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ServiceUnavailableError("ServiceUnavailableError: RestError: Service Unavailable"),
        ServerError("InternalServerError: boom"),
        TooManyRequestsError("slow down"),
        CommitStateUnknownException("commit state unknown: 502"),
        OSError("When uploading part: AWS Error NETWORK_CONNECTION during UploadPart operation: curlCode: 7"),
        OSError("AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate"),
        OSError("AWS Error UNKNOWN (HTTP status 503) during PutObject operation"),
        OSError("unexpected end of stream"),  # plain OSError from a FileIO
        sqlalchemy.exc.OperationalError(
            "SELECT 1",
            {},
            Exception('connection to server at "127.0.0.1", port 1 failed: Connection refused'),
        ),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("could not connect to server")),
        RuntimeError("Nessie at http://n/api/v2: GET /trees/x answered HTTP 503"),
        wrapped,
    ]


def _permanent() -> list[BaseException]:
    import requests
    import sqlalchemy.exc
    from pyiceberg.exceptions import CommitFailedException, ForbiddenError, NoSuchTableError

    return [
        ValueError("bad value"),
        KeyError("x"),
        NoSuchTableError("Table does not exist: acme.users"),
        ForbiddenError("SignatureDoesNotMatch"),
        CommitFailedException("Requirement failed: branch acme has changed"),  # the committer's job
        FileNotFoundError(2, "No such file"),
        PermissionError(13, "Permission denied"),
        OSError("AWS Error ACCESS_DENIED during CreateMultipartUpload operation: Access Denied."),
        OSError("AWS Error SIGNATURE_DOES_NOT_MATCH during PutObject operation: timeout unrelated"),
        OSError("AWS Error NO_SUCH_BUCKET during PutObject operation"),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("no such table: iceberg_tables")),
        sqlalchemy.exc.OperationalError(
            "SELECT 1", {}, Exception('FATAL: password authentication failed for user "u"')
        ),
        requests.exceptions.SSLError("certificate verify failed"),
        ConfigError("timeout is not a valid setting"),  # our own errors are diagnosed, never retried
        SchemaChangeError("column x: connection refused is not a type"),
    ]


@pytest.mark.parametrize("exc", _transient(), ids=lambda e: type(e).__name__)
def test_transient_errors_are_retried(exc: BaseException) -> None:
    assert RetryPolicy().is_transient(exc), describe(exc)


@pytest.mark.parametrize("exc", _permanent(), ids=lambda e: type(e).__name__)
def test_permanent_errors_are_not_retried(exc: BaseException) -> None:
    assert not RetryPolicy().is_transient(exc), describe(exc)


def test_retryable_errors_add_substrings_and_class_names() -> None:
    class LakeHiccup(Exception):
        pass

    made = RetryPolicy(retryable_errors=("ConcurrentModification", "LakeHiccup"))
    assert made.is_transient(ValueError("ConcurrentModificationException on table"))
    assert made.is_transient(LakeHiccup("anything"))
    assert not made.is_transient(ValueError("other"))
    assert not RetryPolicy().is_transient(LakeHiccup("anything"))


# --------------------------------------------------------------------------- policy


def _policy(retry_config: dict[str, Any] | None) -> RetryPolicy:
    """The policy a target builds from its `retry_config` setting."""
    config = {} if retry_config is None else {"retry_config": retry_config}
    return Settings.from_config(config).retry_config.policy()


def test_policy_from_config_defaults_and_values(monkeypatch: pytest.MonkeyPatch) -> None:
    default = _policy(None)
    assert (default.max_retries, default.retry_delay_seconds, default.retryable_errors) == (3, 5.0, ())
    assert default.max_conflict_retries == 10  # conflicts: more, and sooner, than transient errors
    assert default == RetryPolicy()  # the declared defaults are the policy's own
    assert _policy({"max_conflict_retries": "25"}).max_conflict_retries == 25
    assert _policy({}) == default
    monkeypatch.setenv("DATIVO_RETRIES", "7")
    made = _policy(
        {"max_retries": "${DATIVO_RETRIES}", "retry_delay_seconds": "0.5", "retryable_errors": ["Throttled"]}
    )
    assert (made.max_retries, made.retry_delay_seconds, made.retryable_errors) == (7, 0.5, ("Throttled",))
    assert _policy({"retryable_errors": "A, B"}).retryable_errors == ("A", "B")
    assert _policy({"retryable_errors": '["A"]'}).retryable_errors == ("A",)
    with pytest.raises(ConfigError, match="retry_config.max_retries must not be negative, got -1"):
        _policy({"max_retries": -1})
    with pytest.raises(ConfigError, match="retry_config.max_conflict_retries must not be negative"):
        _policy({"max_conflict_retries": -1})
    with pytest.raises(ConfigError, match="retry_config.retry_delay_seconds must be a number, got 'soon'"):
        _policy({"retry_delay_seconds": "soon"})
    with pytest.raises(ConfigError, match="retry_config.retryable_errors must be a list of strings"):
        _policy({"retryable_errors": [1]})


def test_backoff_is_exponential_capped_and_jittered() -> None:
    upper = RetryPolicy(retry_delay_seconds=2, max_delay_seconds=10, random=lambda: 0.0)
    assert [upper.delay(n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]
    lower = RetryPolicy(retry_delay_seconds=2, max_delay_seconds=10, random=lambda: 1.0)
    assert [lower.delay(n) for n in (1, 2, 3)] == [1, 2, 4]  # jitter 0.5: [d/2, d]
    spread = {RetryPolicy(retry_delay_seconds=1).delay(1) for _ in range(50)}
    assert len(spread) > 1 and all(0.5 <= d <= 1 for d in spread)


# --------------------------------------------------------------------------- call_with_retries


def test_transient_failures_then_success_emit_retry_events() -> None:
    events = Events()
    made, slept = policy(max_retries=3, delay=0.5)
    fn, calls = failing(ConnectionRefusedError(111, "Connection refused"), TimeoutError("timed out"))
    assert call_with_retries(fn, made, events.log, "load table acme.users", endpoint="http://c") == "done"
    assert len(calls) == 3
    assert slept == [0.5, 1.0]
    retries = events.of("retry")
    assert [(e["attempt"], e["max_attempts"], e["delay_seconds"]) for e in retries] == [
        (1, 4, 0.5),
        (2, 4, 1.0),
    ]
    assert retries[0]["what"] == "load table acme.users" and retries[0]["endpoint"] == "http://c"
    assert retries[0]["reason"].startswith("ConnectionRefusedError")
    assert retries[1]["tenant_id"] == "acme" and retries[1]["run_id"] == "run-1"


def test_non_transient_error_is_raised_at_once_unchanged() -> None:
    events = Events()
    made, slept = policy()
    error = ValueError("bad value")
    fn, calls = failing(error)
    with pytest.raises(ValueError) as raised:
        call_with_retries(fn, made, events.log, "load table")
    assert raised.value is error and len(calls) == 1 and slept == [] and events.of("retry") == []


def test_exhausted_retries_raise_dativo_error_naming_what_endpoint_and_cause() -> None:
    events = Events()
    made, slept = policy(max_retries=2, delay=0)
    cause = OSError(f"AWS Error NETWORK_CONNECTION: curlCode: 7 (key {SECRET})")
    fn, calls = failing(cause, cause, cause)
    endpoint = f"postgresql+psycopg2://dativo:{SECRET}@127.0.0.1:5432/lake"
    with pytest.raises(RetryExhaustedError) as raised:
        call_with_retries(fn, made, events.log, "commit to acme.users", endpoint=endpoint)
    exc = raised.value
    assert isinstance(exc, DativoError) and exc.exit_code == 2
    assert len(calls) == 3 and exc.attempts == 3 and exc.cause is cause
    message = str(exc)
    assert "commit to acme.users" in message and "failed after 3 attempts" in message
    assert "postgresql+psycopg2://dativo:***@127.0.0.1:5432/lake" in message
    assert "NETWORK_CONNECTION" in message
    assert SECRET not in message and SECRET not in events.buffer.getvalue()
    assert len(events.of("retry")) == 2


def test_no_retry_policy_still_names_the_endpoint() -> None:
    fn, calls = failing(ConnectionRefusedError(111, "Connection refused"))
    with pytest.raises(
        RetryExhaustedError, match=r"reach rest catalog at http://127.0.0.1:1 failed after 1 attempt:"
    ):
        call_with_retries(fn, NO_RETRY, None, "reach rest catalog", endpoint="http://127.0.0.1:1")
    assert len(calls) == 1


def test_before_retry_finds_a_commit_that_landed() -> None:
    """A commit whose response was lost: the idempotency check returns its snapshot, no second commit."""
    made, _ = policy(delay=0)
    fn, calls = failing(ConnectionResetError(104, "Connection reset by peer"), result="committed twice")
    checks: list[int] = []

    def landed() -> int:
        checks.append(1)
        return 4242

    assert call_with_retries(fn, made, None, "commit", before_retry=landed) == 4242
    assert len(calls) == 1 and len(checks) == 1


def test_before_retry_failing_transiently_counts_as_an_attempt() -> None:
    made, _ = policy(max_retries=3, delay=0)
    fn, calls = failing(TimeoutError("timed out"))
    probes, _ = failing(ConnectionRefusedError(111, "refused"), result=None)
    assert call_with_retries(fn, made, None, "commit", before_retry=probes) == "done"
    assert len(calls) == 2


def test_redact_hides_url_passwords_and_known_secrets() -> None:
    events = Events()
    text = f"at postgresql://u:pw@h/db with key {SECRET} and https://h/p?x=1"
    assert events.log.redact(text) == "at postgresql://u:***@h/db with key *** and https://h/p?x=1"
    assert events.log.redact("s3://bucket/key") == "s3://bucket/key"


# --------------------------------------------------------------------------- a real outage


def test_rest_call_survives_seaweedfs_restart(seaweedfs: SeaweedFS, table_bucket: str) -> None:
    """SeaweedFS goes down and comes back ~2 s later while `load_table` retries: the call succeeds."""
    from pyiceberg.catalog import load_catalog
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    settings = Settings.from_config(seaweedfs.target_settings(table_bucket))
    catalog = load_catalog("dativo", **settings.catalog_load_properties())
    catalog.create_namespace("acme")
    created = catalog.create_table("acme.users", Schema(NestedField(1, "id", LongType(), required=False)))

    events = Events()
    made = RetryPolicy(max_retries=10, retry_delay_seconds=0.25, max_delay_seconds=2)
    restarted: list[BaseException | None] = []

    def restart() -> None:
        try:
            seaweedfs.start()
            restarted.append(None)
        except BaseException as exc:  # reported by the assertion below
            restarted.append(exc)

    seaweedfs.stop(kill=True)
    timer = threading.Timer(2.0, restart)
    started = time.monotonic()
    timer.start()
    try:
        table = call_with_retries(
            lambda: catalog.load_table("acme.users"),
            made,
            events.log,
            "load table acme.users",
            endpoint=seaweedfs.iceberg_uri,
        )
    finally:
        timer.join()
    elapsed = time.monotonic() - started
    assert restarted == [None]
    assert table.metadata.table_uuid == created.metadata.table_uuid
    assert elapsed >= 2.0
    retries = events.of("retry")
    assert retries and all(e["endpoint"] == seaweedfs.iceberg_uri for e in retries)
    assert "Connection refused" in retries[0]["reason"]
    assert seaweedfs.secret_key not in events.buffer.getvalue()


def test_storage_write_survives_seaweedfs_restart(
    seaweedfs: SeaweedFS, table_bucket: str, tmp_path: Path
) -> None:
    """The same for an S3 write through pyiceberg's FileIO (pyarrow raises a plain OSError)."""
    from pyiceberg.io import load_file_io

    settings = Settings.from_config(seaweedfs.target_settings(table_bucket))
    location = f"s3://{table_bucket}/acme/users/data/retry-probe"
    file_io = load_file_io(settings.catalog_load_properties(), location)

    def write() -> None:
        with file_io.new_output(location).create(overwrite=True) as out:
            out.write(b"survived")

    seaweedfs.stop(kill=True)
    timer = threading.Timer(2.0, seaweedfs.start)
    timer.start()
    try:
        made = RetryPolicy(max_retries=10, retry_delay_seconds=0.25, max_delay_seconds=2)
        call_with_retries(write, made, None, "write data file", endpoint=seaweedfs.s3_endpoint)
    finally:
        timer.join()
    assert seaweedfs.pid is not None
    with file_io.new_input(location).open() as stream:
        assert stream.read() == b"survived"
    file_io.delete(location)


def test_target_run_survives_seaweedfs_restart(
    tmp_path: Path, seaweedfs: SeaweedFS, table_bucket: str
) -> None:
    """Issue 5: stop SeaweedFS in the middle of a run, restart it ~2 s later.

    The run completes with every row once, or fails with exit 2 having committed nothing twice and
    emitted no STATE beyond what is committed. With `retry_config` wired into the commit path the
    first outcome is expected; the `retry` events then show the outage was ridden out.
    """

    from helpers import record, schema_msg, singer_lines, state, target_config
    from servers import CatalogBackend

    from target_dativo_iceberg.ops.readback import pyiceberg_rows

    settings = {
        **seaweedfs.target_settings(table_bucket),
        "batch_size_rows": 20,
        "retry_config": {"max_retries": 8, "retry_delay_seconds": 0.5},
    }
    cfg = tmp_path / "target.json"
    cfg.write_text(json.dumps(target_config(tmp_path, **settings)))
    from helpers import start_target

    proc = start_target(cfg, tmp_path)
    assert proc.stdin and proc.stdout and proc.stderr
    err_lines: list[str] = []
    out_lines: list[str] = []
    readers = [
        threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True),  # type: ignore[arg-type]
        threading.Thread(target=lambda: out_lines.extend(proc.stdout), daemon=True),  # type: ignore[arg-type]
    ]
    for reader in readers:
        reader.start()
    users = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}

    def batch(first: int, n: int) -> str:
        return singer_lines(
            [
                *(record("users", id=i, name=f"u{i}") for i in range(first, first + n)),
                state({"upto": first + n - 1}),
            ]
        )

    timer = threading.Timer(2.0, seaweedfs.start)
    try:
        proc.stdin.write(singer_lines([schema_msg("users", users, ["id"])]) + batch(1, 20))
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not any('"commit_success"' in line for line in err_lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(err_lines)
            time.sleep(0.05)
        seaweedfs.stop(kill=True)
        timer.start()
        proc.stdin.write(batch(21, 20) + batch(41, 20))
        proc.stdin.close()
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        if timer.ident is not None:  # started
            timer.join()
        for reader in readers:
            reader.join(timeout=10)
    seaweedfs.start()  # no-op when the timer restarted it
    stderr = "".join(err_lines)
    states = [json.loads(line) for line in out_lines if line.strip()]
    table = CatalogBackend("rest", settings).open_catalog(tmp_path).load_table("acme.users")
    reader = RetryPolicy(max_retries=10, retry_delay_seconds=0.25, max_delay_seconds=2)  # volumes warming up
    ids = [
        r["id"] for r in call_with_retries(lambda: pyiceberg_rows(table, "acme"), reader, None, "read back")
    ]
    print(f"target exit code {proc.returncode}; rows {len(ids)}; states {states}")
    assert len(ids) == len(set(ids)), "a batch was committed twice"
    assert all(s["upto"] <= max(ids, default=0) for s in states), (states, sorted(ids))
    assert proc.returncode in (0, 2), stderr
    retried_commit = any('"retry"' in line and '"commit to' in line for line in err_lines)
    if retried_commit:  # retry_config is wired into the commit path: the outage must be ridden out
        assert proc.returncode == 0, stderr
    if proc.returncode == 0:
        assert sorted(ids) == list(range(1, 61))
        assert states[-1] == {"upto": 60}
    else:
        assert seaweedfs.iceberg_uri in stderr or seaweedfs.s3_endpoint in stderr or "NETWORK" in stderr
    assert seaweedfs.secret_key not in stderr
