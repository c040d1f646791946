"""A PostgreSQL password in any `catalog_uri` form never shows up, and redaction never mangles messages.

The password goes into the URI as user-info (`user:pw@`), as a `?password=` query parameter, and in
the JDBC forms (`jdbc:postgresql://h/db?user=u&password=pw`, `;password=pw` properties). The real
target runs against the PostgreSQL fixture with a role that has that password, successfully and
against a closed port (preflight fails); `dativo inspect`, `state show`, `branch list` and `doctor`
run with the same config. The password must appear nowhere in what they print or write. A one-letter
password and one that is a common word must still be hidden where the URI holds them, and must not
star the same letters elsewhere in a message.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import (
    BIN,
    PERSON,
    Run,
    assert_no_secret,
    run_target,
    secret_probe_messages,
    target_config,
)

from target_dativo_iceberg import redact
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.catalogs import sql_uri
from target_dativo_iceberg.iceberg.retry import describe
from target_dativo_iceberg.redact import MASK, Redactor, activate, uri_secrets
from target_dativo_iceberg.settings import Settings
from target_dativo_iceberg.target import TargetDativoIceberg

if TYPE_CHECKING:
    from pg_server import Postgres

pytest_plugins = ["servers"]

PASSWORD = "Hard3n-pg-s3cret"

# --------------------------------------------------------------------------- the redaction function


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql+psycopg2://u:p@ss@h/db failed", "postgresql+psycopg2://u:***@h/db failed"),
        ("redis://:pw@h/0", "redis://:***@h/0"),
        (
            "postgresql+psycopg2://user@host/db?password=s3cret",
            "postgresql+psycopg2://user@host/db?password=***",
        ),
        (
            "jdbc:postgresql://host:5432/db?user=u&password=s3cret&sslmode=require",
            "jdbc:postgresql://host:5432/db?user=u&password=***&sslmode=require",
        ),
        (
            "jdbc:sqlserver://host;user=u;password=s3cret;db=x",
            "jdbc:sqlserver://host;user=u;password=***;db=x",
        ),
        (
            'database "db;user=u;password=s3cret" does not exist',
            'database "db;user=u;password=***" does not exist',
        ),
        ("host=h port=5 password='a b' dbname=x", "host=h port=5 password=*** dbname=x"),
        (
            "at h/db?password=s3cret: refused (see h/?token=t.)",
            "at h/db?password=***: refused (see h/?token=***.)",
        ),
        (
            "s3://b/k?X-Amz-Credential=AKIA/1&X-Amz-Signature=ab12&X-Amz-Security-Token=zz&x=1",
            "s3://b/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***&x=1",
        ),
        (
            "https://h/p?access_key=k1&secret=k2&api-key=k3&key=k4",
            "https://h/p?access_key=***&secret=***&api-key=***&key=***",
        ),
        (
            "{'credential': 'id:sec', 's3.secret-access-key': 'x', 'uri': 'http://h'}",
            "{'credential': '***', 's3.secret-access-key': '***', 'uri': 'http://h'}",
        ),
        ('{"token": "a\\"b", "warehouse": "s3://w"}', '{"token": "***", "warehouse": "s3://w"}'),
        ("Authorization: Bearer eyJ0.abc-_", "Authorization: Bearer ***"),
    ],
)
def test_redacts_every_uri_and_parameter_form(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "http://host:8080/path?user=u&sslmode=require",
        "s3://bucket/key/part-0.parquet",
        "postgresql://user@host/db",
        "table acme.users: monkey=1 primary_key=id keys=id passthrough=yes",
        "DETAIL: Key (id)=(5) already exists.",
    ],
)
def test_leaves_text_without_secrets_alone(text: str) -> None:
    assert Redactor().text(text) == text


def test_known_secrets_are_replaced_as_whole_tokens_of_four_or_more_characters() -> None:
    r = Redactor(["p", "postgres", "abc", "p@ss!", "s3cr3t-value"])
    # a short secret only where a URI or parameter holds it: other p's stay
    assert r.text("postgresql://u:p@h/db ping p") == "postgresql://u:***@h/db ping p"
    assert (
        r.text("postgresql://u@h/db?password=p&sslmode=prefer")
        == "postgresql://u@h/db?password=***&sslmode=prefer"
    )
    assert r.text("abc abcdef") == "abc abcdef"
    # a longer one wherever it stands alone, never inside a longer word
    assert r.text("postgresql://postgres@h/x as postgres") == "postgresql://***@h/x as ***"
    assert r.text("s3cr3t-value and s3cr3t-values") == "*** and s3cr3t-values"
    assert r.text("key p@ss! and p@ss!x") == "key *** and ***x"  # non-word edges need no boundary
    # the percent-decoded and the JSON-escaped form too
    assert Redactor(["p%40ssw0rd"]).text("said p@ssw0rd") == "said ***"
    assert Redactor(['quo"ted-pw']).text(json.dumps({"v": 'quo"ted-pw'})) == '{"v": "***"}'


def test_uri_secrets_are_what_the_uri_holds() -> None:
    assert uri_secrets("jdbc:postgresql://h:5/db?user=u&password=s3cret") == ["s3cret"]
    assert uri_secrets("postgresql://u:p%40ss@h/db?sslpassword=x") == ["p%40ss", "x"]
    assert uri_secrets("http://h:8181/catalog") == []


def every_secret_setting(schema: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, prop in schema.get("properties", {}).items():
        if prop.get("secret"):
            yield (*path, name)
        yield from every_secret_setting(prop, (*path, name))


def test_every_secret_setting_and_secret_property_is_redacted() -> None:
    secret_paths = list(every_secret_setting(TargetDativoIceberg.config_jsonschema))
    assert ("catalog_uri",) in secret_paths and ("connection", "s3", "secret_access_key") in secret_paths
    config: dict[str, Any] = {
        "catalog_properties": {
            "credential": "client:prop-credential",
            "token": "prop-token-value",
            "s3.secret-access-key": "prop-s3-secret",
            "auth": {"type": "oauth2", "oauth2": {"client_secret": "nested-client-secret"}},
        },
        "connection": {"nessie": {"uri": "http://n:pw-in-nessie-uri@h:19120"}},
    }
    values = {"catalog_uri": "postgresql://u:pw-in-catalog-uri@h/db?sslpassword=pw-in-query"}
    for path in secret_paths:
        node = config
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = values.get(path[-1], f"value-of-{'-'.join(path)}")
    settings = Settings.from_config(config)
    hidden = [
        *(f"value-of-{'-'.join(p)}" for p in secret_paths if p[-1] not in values),
        "pw-in-catalog-uri",
        "pw-in-query",
        "client:prop-credential",
        "prop-token-value",
        "prop-s3-secret",
        "nested-client-secret",
        "pw-in-nessie-uri",
    ]
    text = " ".join(f"[{v}]" for v in hidden)
    assert Redactor(settings.secret_values()).text(text) == " ".join("[***]" for _ in hidden)
    for value in hidden:
        assert value not in repr(settings)


def test_event_fields_are_redacted_before_they_are_encoded() -> None:
    out = io.StringIO()
    log = EventLog("t", "r", ['pw"with-quote'], stream=out)
    log.emit(
        "x",
        uri="postgresql://u@h/db?password=p",
        nested={"checks": ['pw"with-quote', 3], "e": ValueError("at https://u:pw@h/")},
    )
    event = json.loads(out.getvalue())
    assert event["uri"] == "postgresql://u@h/db?password=***"
    assert event["nested"] == {"checks": ["***", 3], "e": "at https://u:***@h/"}


def test_a_cut_message_leaves_no_start_of_a_secret() -> None:
    secret = "start-of-the-secret-" + "x" * 40
    exc = RuntimeError("y" * 560 + f" postgresql://u:{secret}@h/db")  # over 600 characters
    text = describe(exc, Redactor([secret]).text)
    assert "start-of" not in text and "postgresql://u:***@h/db" in text


@pytest.fixture
def log_redaction() -> Iterator[Callable[[Redactor], None]]:
    """Activate a redactor for log records in this process; restore logging afterwards."""
    factory = logging.getLogRecordFactory()
    yield activate
    logging.setLogRecordFactory(factory)
    activate()


def test_log_lines_and_tracebacks_are_redacted(log_redaction: Callable[[Redactor], None]) -> None:
    log_redaction(Redactor(["long-known-secret"]))
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("test-hardening-secrets")
    logger.addHandler(handler)
    try:
        logger.error("cannot reach %s", "postgresql://u@h/db?password=s3cret")
        try:
            raise ValueError("bad uri jdbc:postgresql://h/db;password=s3cret with long-known-secret")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "s3cret" not in text and "long-known-secret" not in text
    assert "password=***" in text and "Traceback" in text and "with ***" in text
    assert redact.active().secrets >= {"long-known-secret"}


# --------------------------------------------------------------------------- real runs on PostgreSQL


@dataclass
class Account:
    """A PostgreSQL role with a password of our choosing and a database it owns."""

    user: str
    password: str
    host: str
    port: int
    database: str

    def uri(self, form: str, port: int | None = None) -> str:
        """`catalog_uri` with the password in the given form (`port` overrides, e.g. a closed one)."""
        where = f"{self.host}:{port or self.port}/{self.database}"
        return {
            "userinfo": f"postgresql+psycopg2://{self.user}:{self.password}@{where}",
            "query": f"postgresql+psycopg2://{self.user}@{where}?password={self.password}",
            "jdbc": f"jdbc:postgresql://{where}?user={self.user}&password={self.password}",
            "jdbc-properties": f"jdbc:postgresql://{where};user={self.user};password={self.password}",
        }[form]


@pytest.fixture
def account(postgres: Postgres) -> Iterator[Callable[[str], Account]]:
    """Make roles with a given password, each owning a fresh database; dropped afterwards."""
    from sqlalchemy.engine import make_url

    made: list[Account] = []
    url = make_url(postgres.url)

    def make(password: str) -> Account:
        assert "'" not in password
        name = f"dativo_secret_{uuid.uuid4().hex[:10]}"
        postgres._execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        postgres._execute(f'CREATE DATABASE "{name}" OWNER {name}')
        made.append(Account(name, password, str(url.host), int(url.port or 5432), name))
        return made[-1]

    yield make
    for acc in made:
        postgres._execute(f'DROP DATABASE IF EXISTS "{acc.database}" WITH (FORCE)')
        postgres._execute(f"DROP ROLE IF EXISTS {acc.user}")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe_run(root: Path, catalog_uri: str) -> Run:
    """The target on `secret_probe_messages` with `catalog_uri`, no retries."""
    return run_target(
        root,
        secret_probe_messages(),
        catalog_uri=catalog_uri,
        assets={"person": str(PERSON)},
        schema_validation_mode="warn",
        retry_config={"max_retries": 0},
    )


def dativo(root: Path, *args: str) -> Run:
    """A `dativo` command with the config `probe_run` wrote under `root`."""
    proc = subprocess.run(
        [str(BIN / "dativo"), *args, "--config", str(root / "target.json")],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def assert_hidden(password: str, *runs: Run) -> None:
    for run in runs:
        assert password not in run.stdout, run.stdout
        assert password not in run.stderr, run.stderr


FORMS = ("userinfo", "query", "jdbc")


@pytest.mark.parametrize("form", FORMS)
def test_password_in_catalog_uri_never_shows(
    tmp_path: Path, account: Callable[[str], Account], form: str
) -> None:
    acc = account(PASSWORD)
    uri = acc.uri(form)
    run = probe_run(tmp_path, uri)
    assert run.returncode == 1, run.stderr  # partial: one person rejected
    assert [r["id"] for r in pyiceberg_rows_of(open_catalog_at(tmp_path, uri), "acme.users")] == [1, 2]
    assert run.events("preflight_ok") and run.events("job_finished")[0]["status"] == "partial"
    shown = run.events("committer_initialized")[0]["catalog_uri"]
    assert MASK in shown and acc.user in shown and acc.database in shown
    assert_no_secret([PASSWORD], run, open_catalog_at(tmp_path, uri))

    inspect = dativo(tmp_path, "inspect")
    assert inspect.returncode == 0, inspect.stderr
    assert "acme.users" in inspect.stdout and f"{acc.host}:{acc.port}/{acc.database}" in inspect.stdout
    state = dativo(tmp_path, "state", "show")
    assert state.returncode == 0 and '"users": {"n": 2}' in state.stdout, state.stderr
    branches = dativo(tmp_path, "branch", "list")
    assert branches.returncode == 0 and "acme.users" in branches.stdout, branches.stderr
    doctor = dativo(tmp_path, "doctor", "--verbose")
    assert doctor.returncode == 0, doctor.stdout
    assert f"{acc.host}:{acc.port}/{acc.database}" in doctor.stdout and "answered" in doctor.stdout
    assert_hidden(PASSWORD, inspect, state, branches, doctor)


@pytest.mark.parametrize("form", [*FORMS, "jdbc-properties"])
def test_password_hidden_when_the_catalog_is_unreachable(
    tmp_path: Path, account: Callable[[str], Account], form: str
) -> None:
    acc = account(PASSWORD)
    port = closed_port()
    run = probe_run(tmp_path, acc.uri(form, port))
    assert run.returncode == 2, run.stderr
    failed = run.events("preflight_failed")[0]
    assert failed["check"] == "catalog" and f"{acc.host}:{port}" in failed["error"]
    assert run.events("job_finished")[0]["status"] == "failed"
    assert "onnection refused" in run.stderr
    assert_no_secret([PASSWORD], run)

    inspect = dativo(tmp_path, "inspect")
    doctor = dativo(tmp_path, "doctor")
    assert inspect.returncode == 2 and inspect.stderr.startswith("dativo: "), inspect.stderr
    assert "Traceback" not in inspect.stderr
    assert doctor.returncode == 2 and f"{acc.host}:{port}" in doctor.stdout, doctor.stdout
    assert_hidden(PASSWORD, inspect, doctor)


def test_password_in_jdbc_properties_hidden_in_the_server_error(
    tmp_path: Path, account: Callable[[str], Account]
) -> None:
    """PostgreSQL takes `db;user=..;password=..` for a database name and echoes it in its error."""
    acc = account(PASSWORD)
    run = probe_run(tmp_path, acc.uri("jdbc-properties"))
    assert run.returncode == 2, run.stderr
    assert "password=***: OperationalError" in run.events("preflight_failed")[0]["error"]
    assert_no_secret([PASSWORD], run)


@pytest.mark.parametrize(("password", "form"), [("p", "userinfo"), ("p", "query"), ("postgres", "jdbc")])
def test_short_or_common_word_password_redacts_its_position_only(
    tmp_path: Path, account: Callable[[str], Account], password: str, form: str
) -> None:
    acc = account(password)
    shown = Account(acc.user, MASK, acc.host, acc.port, acc.database).uri(form)  # as configured
    loaded = sql_uri(shown)  # as the target loads it (JDBC prefix dropped, driver named)
    run = probe_run(tmp_path, acc.uri(form))
    assert run.returncode == 1, run.stderr
    assert run.events("committer_initialized")[0]["catalog_uri"] == shown
    assert f"sql catalog at {loaded} answered" in run.events("preflight_ok")[0]["checks"]["catalog"]
    # the URI's password position is hidden wherever the URI is printed ...
    assert acc.uri(form) not in run.stderr and sql_uri(acc.uri(form)) not in run.stderr
    # ... and nothing else was starred: without the redacted URIs no *** is left
    rest = run.stderr.replace(shown, "").replace(loaded, "")
    assert MASK not in rest, [line for line in rest.splitlines() if MASK in line]
    assert '"event": "preflight_ok"' in rest and '"status": "partial"' in rest  # p's intact

    failed = probe_run(tmp_path / "down", acc.uri(form, closed_port()))
    assert failed.returncode == 2, failed.stderr
    error = failed.events("preflight_failed")[0]["error"]
    assert error.startswith("preflight catalog check failed: sql catalog at postgresql+psycopg2://")
    assert f"{acc.user}:{password}@" not in error and f"password={password}" not in error


def test_state_show_prints_a_taps_token_entries_as_they_are(tmp_path: Path) -> None:
    """A Singer state is data to restore: secret-looking entry names of the tap's are not starred."""
    bookmark = {"users": {"next_page_token": "tok-1=2", "api_key_rotated": "2024-01-01"}}
    messages = [*secret_probe_messages()[:3], {"type": "STATE", "value": {"bookmarks": bookmark}}]
    assert run_target(tmp_path, messages).returncode == 0
    shown = dativo(tmp_path, "state", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["singer_state"] == {"bookmarks": bookmark}
    text = dativo(tmp_path, "state", "show")
    assert json.dumps({"singer_state": {"bookmarks": bookmark}}, sort_keys=True) in text.stdout


def open_catalog_at(root: Path, catalog_uri: str) -> Any:
    """The catalog a `probe_run(root, catalog_uri)` wrote to, loaded as the target does."""
    from pyiceberg.catalog import load_catalog

    settings = Settings.from_config(target_config(root, catalog_uri=catalog_uri))
    return load_catalog(settings.catalog_name, **settings.catalog_load_properties())


def pyiceberg_rows_of(catalog: Any, name: str) -> list[dict[str, Any]]:
    from target_dativo_iceberg.ops.readback import pyiceberg_rows

    return sorted(pyiceberg_rows(catalog.load_table(name), "acme"), key=lambda r: r["id"])
