"""pyiceberg `load_catalog` properties for each `catalog_type`, and Nessie URL handling.

- `sql`: SQLite (default, paths made absolute) or PostgreSQL by SQLAlchemy URL (`postgresql://...`;
  `jdbc:postgresql://...` is accepted); a local warehouse becomes a `file://` URI.
- `rest`: any Iceberg REST catalog (`uri`, optional `warehouse`). Auth goes through `catalog_properties`:
  OAuth2 `credential` / `token` / `oauth2-server-uri`, pyiceberg's `auth` object, or SigV4
  (`rest.sigv4-enabled`, for S3 Tables and SeaweedFS). With SigV4 and no `client.*` keys, the
  `connection.s3` keys sign the requests. Without any auth no `Authorization` header is sent
  (pyiceberg 0.12 would otherwise send `Bearer None`, which secured servers reject).
- `nessie`: Nessie's Iceberg REST API at `<base>/iceberg/<branch>`; a native-API URL
  (`http://host:19120/api/v1` or `/api/v2`) maps to its base. The branch is a Nessie reference.
- `glue`, `hive`: passed through to pyiceberg (their extras must be installed).

`connection.s3.*` always maps onto pyiceberg's `s3.*` FileIO properties; user `catalog_properties` win.
`load_catalog_retrying` is the one place that opens a catalog with `retry_config` retries.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.iceberg.retry import NO_RETRY, RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from target_dativo_iceberg.events import EventLog
    from target_dativo_iceberg.settings import Settings

DEFAULT_CATALOG_URI = "sqlite:///.local/iceberg/catalog.db"
DEFAULT_WAREHOUSE = ".local/iceberg/warehouse"

_S3_PROPS = {
    "endpoint": "s3.endpoint",
    "access_key_id": "s3.access-key-id",
    "secret_access_key": "s3.secret-access-key",
    "session_token": "s3.session-token",
    "region": "s3.region",
}
# pyiceberg's names for the credentials SigV4 signs REST requests with.
_SIGV4_FROM_S3 = {
    "s3.access-key-id": "client.access-key-id",
    "s3.secret-access-key": "client.secret-access-key",
    "s3.session-token": "client.session-token",
    "s3.region": "client.region",
}
_REST_AUTH_KEYS = ("credential", "token", "auth")


def as_bool(value: Any) -> bool:
    """Settings booleans may arrive as strings (Meltano env vars): "true", "1", "yes"."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def s3_file_io_properties(s3: Mapping[str, Any]) -> dict[str, str]:
    """Map `connection.s3.*` (Dativo job config shape) onto pyiceberg's FileIO `s3.*` properties."""
    props = {prop: str(s3[key]) for key, prop in _S3_PROPS.items() if s3.get(key)}
    if s3.get("path_style_access") is not None:
        props["s3.force-virtual-addressing"] = "false" if as_bool(s3["path_style_access"]) else "true"
    return props


def _property_value(value: Any) -> Any:
    """Scalars become strings (pyiceberg properties); objects such as `auth` stay as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Mapping, list)):
        return value
    return str(value)


def local_uri(path: str) -> str:
    """A warehouse given as a plain path becomes an absolute file:// URI (pyiceberg needs a scheme)."""
    if "://" in path:
        return path
    return Path(path).expanduser().resolve().as_uri()


def sql_uri(uri: str) -> str:
    """A SQLAlchemy URL for pyiceberg's SQL catalog: relative SQLite paths resolved, JDBC form accepted."""
    if uri.startswith("jdbc:"):
        uri = uri[len("jdbc:") :]
    if uri.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg2://" + uri.split("://", 1)[1]
    if uri.startswith("sqlite:///"):
        path, query = uri[len("sqlite:///") :], ""
        if "?" in path:
            path, query = path.split("?", 1)
            query = "?" + query
        if not path or path == ":memory:":
            return uri
        db_path = Path(path).expanduser()
        if not db_path.is_absolute():
            db_path = db_path.resolve()  # relative to the working directory
        make_directory(db_path.parent, "catalog_uri (the SQLite catalog file's directory)")
        return f"sqlite:///{db_path}{query}"
    return uri


def make_directory(path: Path, purpose: str) -> None:
    """Create `path` (and its parents) or fail naming the directory, what it is for, and why."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot create directory {path} for {purpose}: {reason}") from exc


def nessie_base_uri(uri: str) -> str:
    """The Nessie server base URL from any of its URL forms.

    `http://h:19120`, `http://h:19120/api/v1`, `/api/v2`, `/iceberg` and `/iceberg/<ref>` all give
    `http://h:19120` (path prefixes before those parts, e.g. behind a proxy, are kept).
    """
    parts = urllib.parse.urlsplit(uri.strip())
    segments = [s for s in parts.path.split("/") if s]
    for i, seg in enumerate(segments):
        if seg == "iceberg" or (seg == "api" and (i + 1 == len(segments) or segments[i + 1].startswith("v"))):
            segments = segments[:i]
            break
    path = "/" + "/".join(segments) if segments else ""
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", "")).rstrip("/")


def nessie_iceberg_uri(uri: str, branch: str) -> str:
    """Nessie's Iceberg REST endpoint for `branch`: `<base>/iceberg/<branch>`."""
    return f"{nessie_base_uri(uri)}/iceberg/{urllib.parse.quote(branch, safe='')}"


def nessie_api_v2_uri(uri: str) -> str:
    """Nessie's native REST API v2 root (`<base>/api/v2`), used to create references."""
    return f"{nessie_base_uri(uri)}/api/v2"


def _nessie_request(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    """One JSON call to Nessie's REST API: (HTTP status, parsed body or None on an HTTP error)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode() or "null"
            return resp.status, json.loads(text)
    except urllib.error.HTTPError as exc:
        return exc.code, None


def nessie_reference(uri: str, ref: str, timeout: float = 30.0) -> dict[str, Any] | None:
    """Nessie reference `ref` (`{"type", "name", "hash"}`) via `GET /api/v2/trees/{ref}`; None when absent."""
    api = nessie_api_v2_uri(uri)
    status, body = _nessie_request("GET", f"{api}/trees/{urllib.parse.quote(ref, safe='')}", timeout=timeout)
    if status == 404:
        return None
    if status != 200 or not isinstance(body, Mapping):
        raise RuntimeError(f"Nessie at {api}: GET /trees/{ref} answered HTTP {status}")
    return dict(body.get("reference", body))


def ensure_nessie_branch(uri: str, branch: str, from_ref: str = "main", timeout: float = 30.0) -> bool:
    """Create Nessie branch `branch` from the head of `from_ref` unless it exists; True when created.

    Uses Nessie REST API v2: `GET /trees/{ref}` then
    `POST /trees?name=<branch>&type=BRANCH` with the source reference as body.
    """
    api = nessie_api_v2_uri(uri)
    if nessie_reference(uri, branch, timeout) is not None:
        return False
    source = nessie_reference(uri, from_ref, timeout)
    if source is None:
        raise RuntimeError(f"Nessie at {api}: source reference {from_ref!r} not found (HTTP 404)")
    body = {"type": "BRANCH", "name": from_ref, "hash": source.get("hash")}
    query = urllib.parse.urlencode({"name": branch, "type": "BRANCH"})
    status, _ = _nessie_request("POST", f"{api}/trees?{query}", body, timeout)
    if status == 409:  # created concurrently by another writer
        return False
    if status not in (200, 201):
        raise RuntimeError(f"Nessie at {api}: creating branch {branch!r} answered HTTP {status}")
    return True


def catalog_properties(
    catalog_type: str,
    uri: str,
    warehouse: str,
    s3: Mapping[str, Any] | None = None,
    user_properties: Mapping[str, Any] | None = None,
    branch: str = "main",
    nessie_uri: str | None = None,
) -> dict[str, Any]:
    """Properties for `pyiceberg.catalog.load_catalog` (user `catalog_properties` win)."""
    s3 = s3 or {}
    user = {k: _property_value(v) for k, v in (user_properties or {}).items()}
    file_io = s3_file_io_properties(s3)
    props: dict[str, Any] = {}
    explicit_warehouse = warehouse and warehouse != DEFAULT_WAREHOUSE
    if catalog_type == "sql":
        props.update(type="sql", uri=sql_uri(uri or DEFAULT_CATALOG_URI))
        if "://" not in warehouse:
            make_directory(Path(warehouse).expanduser(), "warehouse")
        props["warehouse"] = local_uri(warehouse)
    elif catalog_type in ("rest", "nessie"):
        if catalog_type == "nessie":
            base = nessie_uri or (uri if uri and uri != DEFAULT_CATALOG_URI else "")
            if not base:
                raise ConfigError("catalog_type 'nessie' needs catalog_uri or connection.nessie.uri")
            props.update(type="rest", uri=nessie_iceberg_uri(base, branch))
        else:
            if not uri or uri == DEFAULT_CATALOG_URI:
                raise ConfigError("catalog_type 'rest' needs catalog_uri (the REST catalog URL)")
            props.update(type="rest", uri=uri.rstrip("/"))
        if explicit_warehouse:
            props["warehouse"] = warehouse
        if as_bool(user.get("rest.sigv4-enabled", False)):
            for s3_key, client_key in _SIGV4_FROM_S3.items():
                if s3_key in file_io:
                    props[client_key] = file_io[s3_key]
            if "s3.region" in file_io:
                props["rest.signing-region"] = file_io["s3.region"]
        elif not any(k in user for k in _REST_AUTH_KEYS):
            props["auth"] = {"type": "noop"}
    elif catalog_type in ("glue", "hive"):
        props["type"] = catalog_type
        if catalog_type == "hive" and uri and uri != DEFAULT_CATALOG_URI:
            props["uri"] = uri
        if explicit_warehouse:
            props["warehouse"] = warehouse
        if "s3.region" in file_io:
            props["client.region"] = file_io["s3.region"]
    else:
        raise ConfigError(f"catalog_type {catalog_type!r} has no pyiceberg catalog")
    props.update(file_io)
    props.update(user)
    return props


def catalog_endpoint(catalog_type: str, props: Mapping[str, Any]) -> str:
    """Where the catalog lives, for messages: its URI, or the AWS service and region (not redacted)."""
    if props.get("uri"):
        return str(props["uri"])
    if catalog_type == "glue":
        region = props.get("glue.region") or props.get("client.region") or "default region"
        return f"AWS Glue ({region})"
    return catalog_type


# A SQL catalog's first start creates its tables; concurrent writers race on that (not an outage).
_SQL_INIT_RACE = ("already exists", "UniqueViolation", "IntegrityError", "is locked")


def load_catalog_racing(settings: Settings) -> Catalog:
    """`load_catalog`, absorbing the race of concurrent first starts creating a SQL catalog's tables."""
    from pyiceberg.catalog import load_catalog

    props = settings.catalog_load_properties()
    for i in range(1, 11):
        try:
            return load_catalog(settings.catalog_name, **props)
        except Exception as exc:
            if i == 10 or not any(m in str(exc) for m in _SQL_INIT_RACE):
                raise
            time.sleep(min(1.0, 0.1 * i) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def load_catalog_retrying(
    settings: Settings,
    events: EventLog | None = None,
    policy: RetryPolicy | None = None,
) -> Catalog:
    """`load_catalog_racing` with transient errors retried per `policy` (retry.py).

    Raises the original error when it is not transient, else `RetryExhaustedError` naming the endpoint.
    """
    return call_with_retries(
        lambda: load_catalog_racing(settings),
        policy or NO_RETRY,
        events,
        f"load {settings.catalog_type} catalog",
        endpoint=catalog_endpoint(settings.catalog_type, settings.catalog_load_properties()),
    )
