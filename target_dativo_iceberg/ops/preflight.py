"""Preflight: prove the branch, the catalog and the storage work before the target reads any input.

A wrong endpoint, secret or branch name should fail a run in seconds with a message naming the
endpoint, not after a tap has extracted for an hour and the first commit fails. `run_preflight` is
what the target calls before listening; `dativo doctor` runs the same checks and prints each one.

Checks, in order:
- `branch`: the name is valid (Iceberg; for Nessie also Nessie's reference-name rules); for Nessie the
  reference resolves, or is created from `main` (the catalog URL `<base>/iceberg/<branch>` needs it).
- `catalog`: `load_catalog` + `list_namespaces` answer.
- `storage`: a small probe object is written, read back and deleted under the warehouse through the
  catalog's FileIO (a temporary file for a local warehouse). Skipped when the catalog manages storage
  itself: a warehouse that is a name rather than a URI (Polaris, S3 Tables ARN) or vended credentials.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

from target_dativo_iceberg.errors import DativoError, PreflightError, ProbeMismatchError, RetryExhaustedError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.catalogs import (
    catalog_endpoint,
    ensure_nessie_branch,
    load_catalog_racing,
    nessie_api_v2_uri,
    nessie_reference,
)
from target_dativo_iceberg.iceberg.retry import (
    NO_RETRY,
    RetryPolicy,
    call_with_retries,
    describe,
)
from target_dativo_iceberg.settings import Settings

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
PROBE_DIR = "_dativo_preflight/probe/data"  # <ns>/<table>/data/: the only shape S3 table buckets accept
STORAGE_SCHEMES = ("s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "wasb", "wasbs", "oss", "hdfs", "viewfs")
_NESSIE_REF = re.compile(r"^[A-Za-z](?:[A-Za-z0-9._/-]*[A-Za-z0-9._-])?$")


@dataclass
class CheckResult:
    """Outcome of one check."""

    name: str
    ok: bool
    detail: str
    duration_ms: float = 0.0
    skipped: bool = False


def branch_name_problem(branch: str, nessie: bool = False) -> str | None:
    """Why `branch` cannot be used as a branch name, or None when it can."""
    if not branch or not branch.strip():
        return "the branch name is empty"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in branch):
        return f"branch {branch!r} contains whitespace or control characters"
    if len(branch) > 255:
        return f"branch name is {len(branch)} characters long (at most 255)"
    if nessie and (not _NESSIE_REF.match(branch) or ".." in branch or "//" in branch):
        return (
            f"branch {branch!r} is not a valid Nessie reference name (a letter, then letters, digits, "
            "'.', '_', '-', '/'; no '..'; not ending in '/')"
        )
    return None


def with_timeout(fn: Callable[[], T], seconds: float | None, what: str) -> Callable[[], T]:
    """`fn` bounded by `seconds` (a daemon thread, so a hung socket never blocks exit): TimeoutError after."""
    if not seconds:
        return fn

    def bounded() -> T:
        result: list[Any] = []
        error: list[BaseException] = []

        def run() -> None:
            try:
                result.append(fn())
            except BaseException as exc:  # handed to the caller's thread
                error.append(exc)

        thread = threading.Thread(target=run, name=f"preflight {what}", daemon=True)
        thread.start()
        thread.join(seconds)
        if thread.is_alive():
            raise TimeoutError(f"{what}: no answer within {seconds:g} s")
        if error:
            raise error[0]
        return result[0]

    return bounded


def _cause(exc: BaseException, events: EventLog) -> str:
    """The underlying error, redacted; retries are mentioned when they were made."""
    if isinstance(exc, RetryExhaustedError):
        return f"{describe(exc.cause, events.redact)} (after {exc.attempts} attempt(s))"
    return describe(exc, events.redact)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


# --------------------------------------------------------------------------- checks


def check_branch(
    settings: Settings, events: EventLog, policy: RetryPolicy, create: bool, timeout: float | None
) -> CheckResult:
    """Valid name; for Nessie the reference resolves (or is created from main when `create`)."""
    started = time.monotonic()
    nessie = settings.catalog_type == "nessie"
    problem = branch_name_problem(settings.branch, nessie)
    if problem:
        return CheckResult("branch", False, problem, _ms(started))
    if not nessie:
        if settings.branch == "main":
            return CheckResult("branch", True, "writes go to main", _ms(started))
        detail = f"table branch {settings.branch!r} (created from main's head on first write)"
        return CheckResult("branch", True, detail, _ms(started))
    base = settings.connection.nessie.uri or settings.catalog_uri
    api = events.redact(nessie_api_v2_uri(base))
    branch = settings.branch
    seconds = timeout or DEFAULT_TIMEOUT
    try:
        if create:
            created = call_with_retries(
                lambda: ensure_nessie_branch(base, branch, timeout=seconds),
                policy,
                events,
                f"resolve Nessie reference {branch!r}",
                endpoint=api,
            )
            detail = f"Nessie reference {branch!r} " + ("created from main" if created else "exists")
        else:
            found = call_with_retries(
                lambda: (nessie_reference(base, branch, seconds), nessie_reference(base, "main", seconds)),
                policy,
                events,
                f"resolve Nessie reference {branch!r}",
                endpoint=api,
            )
            if found[0] is not None:
                detail = f"Nessie reference {branch!r} exists at {found[0].get('hash')}"
            elif found[1] is not None:
                detail = f"Nessie reference {branch!r} is missing; the target creates it from main"
            else:
                return CheckResult(
                    "branch", False, f"Nessie at {api}: neither {branch!r} nor 'main' exists", _ms(started)
                )
    except Exception as exc:
        return CheckResult("branch", False, f"Nessie at {api}: {_cause(exc, events)}", _ms(started))
    return CheckResult("branch", True, f"{detail} (Nessie at {api})", _ms(started))


def check_catalog(
    settings: Settings, events: EventLog, policy: RetryPolicy, timeout: float | None
) -> tuple[CheckResult, Any]:
    """The catalog loads and lists its namespaces; returns the loaded catalog (None on failure)."""
    started = time.monotonic()
    if settings.catalog_type == "none":
        return CheckResult("catalog", True, "catalog_type none: no catalog", skipped=True), None
    try:
        props = settings.catalog_load_properties()
    except DativoError as exc:
        return CheckResult("catalog", False, str(exc), _ms(started)), None
    endpoint = events.redact(catalog_endpoint(settings.catalog_type, props))

    def probe() -> tuple[Any, int]:
        catalog = load_catalog_racing(settings)
        return catalog, len(catalog.list_namespaces())

    try:
        catalog, count = call_with_retries(
            with_timeout(probe, timeout, f"{settings.catalog_type} catalog at {endpoint}"),
            policy,
            events,
            f"reach {settings.catalog_type} catalog",
            endpoint=endpoint,
        )
    except Exception as exc:
        detail = f"{settings.catalog_type} catalog at {endpoint}: {_cause(exc, events)}"
        return CheckResult("catalog", False, detail, _ms(started)), None
    detail = f"{settings.catalog_type} catalog at {endpoint} answered ({count} namespace(s))"
    return CheckResult("catalog", True, detail, _ms(started)), catalog


def probe_target(settings: Settings, catalog: Any) -> tuple[str | None, dict[str, Any], str]:
    """(warehouse to probe or None, FileIO properties, reason when skipped)."""
    if catalog is not None:
        props = dict(catalog.properties)
    elif settings.catalog_type == "none":
        props = settings.s3_file_io_properties()
    else:
        try:
            props = settings.catalog_load_properties()
        except DativoError:
            props = settings.s3_file_io_properties()
    warehouse = str(props.get("warehouse") or "")
    if not warehouse and settings.catalog_type in ("sql", "none"):
        warehouse = settings.warehouse
    if any(k.lower() == "header.x-iceberg-access-delegation" for k in props):
        return None, props, "the catalog vends storage credentials per table"
    if not warehouse:
        return None, props, "the catalog chooses table locations (no warehouse URI configured)"
    if "://" in warehouse:
        scheme = urlsplit(warehouse).scheme
    else:  # a path for SQL catalogs; for REST catalogs a bare word is a catalog name (Polaris)
        local = settings.catalog_type in ("sql", "none") or warehouse.startswith(("/", "~", "."))
        scheme = "file" if local else ""
    if scheme != "file" and scheme not in STORAGE_SCHEMES:
        return None, props, f"warehouse {warehouse!r} is managed by the catalog"
    return warehouse, props, ""


def _probe_local(warehouse: str) -> str:
    local = url2pathname(urlsplit(warehouse).path) if warehouse.startswith("file://") else warehouse
    path = Path(local).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".dativo-preflight-") as probe:
        probe.write(b"dativo preflight")
        probe.flush()
    return str(path)


def _probe_remote(warehouse: str, props: dict[str, Any]) -> str:
    from pyiceberg.io import load_file_io

    location = f"{warehouse.rstrip('/')}/{PROBE_DIR}/dativo-preflight-{uuid.uuid4().hex}"
    props = {**props}
    props.setdefault("s3.connect-timeout", "10")
    io = load_file_io(props, location)
    payload = f"dativo preflight {location}".encode()
    with io.new_output(location).create(overwrite=True) as out:
        out.write(payload)
    try:
        with io.new_input(location).open() as stream:
            got = stream.read()
    finally:
        io.delete(location)
    if got != payload:
        raise ProbeMismatchError(f"read back {len(got)} bytes, wrote {len(payload)}")
    return location


def _has_client_credentials(props: dict[str, Any]) -> bool:
    """Storage keys configured on our side (else a REST catalog is expected to vend them per table)."""
    keys = ("s3.access-key-id", "s3.session-token", "gcs.oauth2.token", "adls.account-key", "adls.sas-token")
    return any(props.get(k) for k in keys) or any(k.startswith("s3.role-arn") for k in props)


def check_storage(
    settings: Settings, events: EventLog, policy: RetryPolicy, catalog: Any, timeout: float | None
) -> CheckResult:
    """Write, read back and delete a probe object under the warehouse."""
    started = time.monotonic()
    warehouse, props, skipped = probe_target(settings, catalog)
    if warehouse is None:
        return CheckResult("storage", True, f"skipped: {skipped}", _ms(started), skipped=True)
    local = "://" not in warehouse or warehouse.startswith("file://")
    endpoint = props.get("s3.endpoint")
    where = events.redact(warehouse + (f" (endpoint {endpoint})" if endpoint and not local else ""))

    def probe() -> str:
        return _probe_local(warehouse) if local else _probe_remote(warehouse, props)

    try:
        written = call_with_retries(
            with_timeout(probe, timeout, f"storage at {where}"),
            policy,
            events,
            "write a probe object",
            endpoint=where,
        )
    except Exception as exc:
        cause = _cause(exc, events)
        if settings.catalog_type in ("rest", "nessie") and not local and not _has_client_credentials(props):
            detail = (
                f"not checked: no storage credentials configured, the catalog vends them per table ({cause})"
            )
            return CheckResult("storage", True, detail, _ms(started), skipped=True)
        return CheckResult("storage", False, f"cannot write to {where}: {cause}", _ms(started))
    what = "a temporary file in" if local else f"{written.rsplit('/', 1)[-1]} under"
    return CheckResult("storage", True, f"wrote, read and deleted {what} {where}", _ms(started))


# --------------------------------------------------------------------------- entry points


def check_all(
    settings: Settings,
    events: EventLog,
    policy: RetryPolicy | None = None,
    *,
    create_branch: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
    stop_on_failure: bool = False,
) -> list[CheckResult]:
    """Run every check (or up to the first failure); later checks still run after a failed one for doctor."""
    policy = policy or NO_RETRY
    results = [check_branch(settings, events, policy, create_branch, timeout)]
    if stop_on_failure and not results[-1].ok:
        return results
    catalog_settings = settings
    if settings.catalog_type == "nessie" and not create_branch and "missing" in results[-1].detail:
        catalog_settings = dataclasses.replace(settings, branch="main")  # the reference comes later
    catalog_result, catalog = check_catalog(catalog_settings, events, policy, timeout)
    results.append(catalog_result)
    if stop_on_failure and not catalog_result.ok:
        return results
    results.append(check_storage(settings, events, policy, catalog, timeout))
    return results


def run_preflight(
    settings: Settings,
    events: EventLog,
    policy: RetryPolicy | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> None:
    """The target's preflight: raise PreflightError on the first failed check, else emit `preflight_ok`.

    Transient errors are retried per `policy` (the run's `retry_config`); for Nessie a missing
    branch is created from main.
    """
    started = time.monotonic()
    results = check_all(settings, events, policy, create_branch=True, timeout=timeout, stop_on_failure=True)
    failed = next((r for r in results if not r.ok), None)
    if failed is not None:
        message = events.redact(f"preflight {failed.name} check failed: {failed.detail}")
        events.emit("preflight_failed", check=failed.name, error=message)
        raise PreflightError(message)
    events.emit(
        "preflight_ok",
        catalog_type=settings.catalog_type,
        branch=settings.branch,
        duration_ms=_ms(started),
        timings_ms={r.name: r.duration_ms for r in results},
        checks={r.name: events.redact(r.detail) for r in results},
    )
