"""tap-dativo-csv on `s3://` paths against a real SeaweedFS S3 server (fresh bucket per test)."""

from __future__ import annotations

import gzip
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tap_dativo_csv import s3 as s3_module
from tap_dativo_csv.s3 import S3Settings, S3Store

try:  # tests/ is a rootdir-relative directory without __init__.py (pytest "prepend" import mode)
    from test_tap_dativo_csv import CONTRACT_YAML, bookmarks, person_row, run_tap
except ImportError:  # pragma: no cover - when tests/ becomes a package
    from tests.test_tap_dativo_csv import CONTRACT_YAML, bookmarks, person_row, run_tap

pytest_plugins = ["servers"]

HEADER = "id,name,score,active,born,seen_at\n"


def people_csv(start: int, count: int) -> bytes:
    """CSV bytes of contract-valid people (ids from `start`)."""
    return (HEADER + "".join(",".join(person_row(i)) + "\n" for i in range(start, start + count))).encode()


@pytest.fixture
def s3_bucket(seaweedfs: Any) -> str:
    """A fresh, empty bucket on the session's SeaweedFS (restarted if a previous test stopped it)."""
    seaweedfs.start()
    name = f"tap-{uuid.uuid4().hex[:12]}"
    seaweedfs.s3_client().create_bucket(Bucket=name)
    return name


def put(seaweedfs: Any, bucket: str, key: str, body: bytes) -> None:
    """Upload one object."""
    seaweedfs.s3_client().put_object(Bucket=bucket, Key=key, Body=body)


def config(seaweedfs: Any, *files: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Tap config reading through the server's connection.s3."""
    return {"files": list(files), "connection": {"s3": seaweedfs.s3_connection()}, **extra}


def last_modified(seaweedfs: Any, bucket: str, key: str) -> str:
    """The bookmark form of an object's LastModified."""
    head = seaweedfs.s3_client().head_object(Bucket=bucket, Key=key)
    return head["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_s3_key_directory_glob_and_gz(tmp_path: Path, seaweedfs: Any, s3_bucket: str) -> None:
    """A key, a prefix (its CSV objects, one level) and a `**` glob; `.gz` decompressed; stable order."""
    put(seaweedfs, s3_bucket, "in/b.csv.gz", gzip.compress(people_csv(4, 2)))
    put(seaweedfs, s3_bucket, "in/a.csv", people_csv(1, 3))
    put(seaweedfs, s3_bucket, "in/sub/c.csv", people_csv(6, 1))
    put(seaweedfs, s3_bucket, "in/notes.txt", b"not a csv\n")
    put(seaweedfs, s3_bucket, "other/x.csv", people_csv(100, 2))
    contract = tmp_path / "person.odcs.yaml"
    contract.write_text(CONTRACT_YAML, encoding="utf-8")
    url = f"s3://{s3_bucket}"
    cfg = config(
        seaweedfs,
        {"path": f"{url}/in/**/*.csv*", "object": "globbed", "asset": str(contract)},
        {"path": f"{url}/in/", "object": "dir"},
        {"path": f"{url}/in", "object": "dir_no_slash"},
        {"path": f"{url}/other/x.csv", "object": "one"},
        add_metadata_columns=True,
    )
    run = run_tap(tmp_path, cfg)

    globbed = run.records("globbed")
    assert [r["id"] for r in globbed] == [1, 2, 3, 4, 5, 6]
    assert globbed[0]["score"] == 1.5 and globbed[2]["score"] is None  # typed by the contract
    assert [r["_sdc_source_file"] for r in globbed] == [f"{url}/in/a.csv"] * 3 + [
        f"{url}/in/b.csv.gz"
    ] * 2 + [f"{url}/in/sub/c.csv"]
    assert [r["_sdc_source_lineno"] for r in globbed] == [2, 3, 4, 2, 3, 2]
    assert globbed[3]["_sdc_modified_at"] == last_modified(seaweedfs, s3_bucket, "in/b.csv.gz")
    for stream in ("dir", "dir_no_slash"):
        assert [r["id"] for r in run.records(stream)] == ["1", "2", "3", "4", "5"]
    assert [r["id"] for r in run.records("one")] == ["100", "101"]
    assert bookmarks(run.final_state, "globbed") == {
        f"{url}/{key}": last_modified(seaweedfs, s3_bucket, key)
        for key in ("in/a.csv", "in/b.csv.gz", "in/sub/c.csv")
    }


def test_s3_incremental_by_last_modified(tmp_path: Path, seaweedfs: Any, s3_bucket: str) -> None:
    """Unchanged objects are skipped; a re-uploaded object (new LastModified) and a new one are read."""
    put(seaweedfs, s3_bucket, "d/a.csv", people_csv(1, 2))
    put(seaweedfs, s3_bucket, "d/b.csv.gz", gzip.compress(people_csv(3, 2)))
    cfg = config(seaweedfs, {"path": f"s3://{s3_bucket}/d/*", "object": "person"})
    first = run_tap(tmp_path, cfg)
    assert [r["id"] for r in first.records()] == ["1", "2", "3", "4"]
    assert run_tap(tmp_path, cfg, first.final_state).records() == []

    time.sleep(1.1)  # S3 LastModified has one-second resolution
    put(seaweedfs, s3_bucket, "d/b.csv.gz", gzip.compress(people_csv(3, 3)))
    put(seaweedfs, s3_bucket, "d/c.csv", people_csv(9, 1))
    third = run_tap(tmp_path, cfg, first.final_state)
    assert [r["id"] for r in third.records()] == ["3", "4", "5", "9"]
    assert len(bookmarks(third.final_state, "person")) == 3

    full = run_tap(tmp_path, {**cfg, "incremental": {"strategy": "full_table"}}, third.final_state)
    assert len(full.records()) == 6


def test_s3_listing_paginates(seaweedfs: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing follows continuation tokens: 7 keys in pages of 2 are all found, sorted."""
    for i in (5, 3, 6, 1, 0, 4, 2):
        put(seaweedfs, s3_bucket, f"p/part-{i}.csv", b"a\n1\n")
    put(seaweedfs, s3_bucket, "p/part-9.txt", b"{}")
    monkeypatch.setattr(s3_module, "PAGE_SIZE", 2)
    store = S3Store(S3Settings.from_config({"connection": {"s3": seaweedfs.s3_connection()}}))
    calls: list[dict] = []
    real = store.client.list_objects_v2
    monkeypatch.setattr(store.client, "list_objects_v2", lambda **kw: calls.append(kw) or real(**kw))
    found = store.expand(f"s3://{s3_bucket}/p/part-*.csv")
    assert [url for url, *_ in found] == [f"s3://{s3_bucket}/p/part-{i}.csv" for i in range(7)]
    assert len(calls) >= 4 and all(c["MaxKeys"] == 2 for c in calls)
    assert len(store.expand(f"s3://{s3_bucket}/p/")) == 7


def test_s3_default_bucket_and_unset_fields(tmp_path: Path, seaweedfs: Any, s3_bucket: str) -> None:
    """`s3:///key` takes connection.s3.bucket; empty-string settings (unset env vars) count as unset."""
    put(seaweedfs, s3_bucket, "k/a.csv", b"x\n1\n")
    cfg = config(seaweedfs, {"path": "s3:///k/a.csv", "object": "a"})
    cfg["connection"]["s3"].update(bucket=s3_bucket, session_token="")
    run = run_tap(tmp_path, cfg)
    assert run.records() == [{"x": "1"}]
    assert bookmarks(run.final_state, "a") == {
        f"s3://{s3_bucket}/k/a.csv": last_modified(seaweedfs, s3_bucket, "k/a.csv")
    }


def test_s3_errors_name_path_and_endpoint(tmp_path: Path, seaweedfs: Any, s3_bucket: str) -> None:
    """Missing key, empty glob, missing bucket and a wrong secret fail clearly, never printing the secret."""
    put(seaweedfs, s3_bucket, "e/a.csv", b"x\n1\n")
    cases = {
        f"s3://{s3_bucket}/e/missing.csv": "not found",
        f"s3://{s3_bucket}/e/*.tsv": "glob matched no objects",
        f"s3://nobucket-{uuid.uuid4().hex[:8]}/a.csv": "NoSuchBucket",
    }
    for path, expected in cases.items():
        run = run_tap(tmp_path, config(seaweedfs, {"path": path, "object": "e"}), check=False)
        assert run.returncode != 0, path
        assert path in run.stderr and expected in run.stderr, run.stderr
        assert "Traceback" not in run.stderr

    cfg = config(seaweedfs, {"path": f"s3://{s3_bucket}/e/a.csv", "object": "e"})
    wrong = "wrong-" + seaweedfs.secret_key
    cfg["connection"]["s3"]["secret_access_key"] = wrong
    run = run_tap(tmp_path, cfg, check=False)
    assert run.returncode != 0
    assert f"s3://{s3_bucket}/e/a.csv" in run.stderr and seaweedfs.s3_endpoint in run.stderr
    assert wrong not in run.stderr and seaweedfs.secret_key not in run.stderr


def test_s3_bad_rows_and_dialect(tmp_path: Path, seaweedfs: Any, s3_bucket: str) -> None:
    """Dialect settings and on_bad_rows apply to S3 objects like to local files."""
    body = b"exported by tool\nid;name\n1;'a\\'b'\n2\n3;c\n"
    put(seaweedfs, s3_bucket, "x/data.csv.gz", gzip.compress(body))
    cfg = config(
        seaweedfs,
        {"path": f"s3://{s3_bucket}/x/data.csv.gz", "object": "x"},
        delimiter=";",
        quotechar="'",
        escapechar="\\",
        skip_rows=1,
    )
    run = run_tap(tmp_path, cfg, check=False)
    assert run.returncode != 0
    assert f"s3://{s3_bucket}/x/data.csv.gz: malformed CSV at line 4" in run.stderr

    run = run_tap(tmp_path, {**cfg, "on_bad_rows": "skip", "add_metadata_columns": True})
    assert [(r["id"], r["name"], r["_sdc_source_lineno"]) for r in run.records()] == [
        ("1", "a'b", 3),
        ("3", "c", 5),
    ]
    assert "Skipped 1 malformed row(s)" in run.stderr and "line 4" in run.stderr
