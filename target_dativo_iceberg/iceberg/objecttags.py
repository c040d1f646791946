"""S3 object metadata and tags on every data file: governance labels from the contract and the run.

Object stores let lifecycle rules, access policies and cost reports select objects by tag, and
governance tools read user metadata without opening a file. A data file written to `s3://` through
`TaggedFileIO` is uploaded in one request carrying both: `x-amz-meta-dativo-*` metadata (every label)
and at most 10 tags (S3's limit) — asset, version, tenant, branch, owner, classification, retention,
record count, ingest time and run id. The record count is read from the finished file's Parquet
footer, so it is the count of that file.

The file is spooled to a local temporary file while Parquet is written and uploaded when it is
closed (`boto3`'s `upload_fileobj`: one PUT, multipart above 8 MB); only then does the commit that
registers it run, so an object without labels is never committed. Values are reduced to the
characters S3 accepts in tags (letters, digits, space, `+ - = . _ : / @`) and in metadata (ASCII).
"""

from __future__ import annotations

import datetime
import re
import tempfile
import typing as t
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

import pyarrow.parquet as pq
from pyiceberg.io import FileIO, InputFile, OutputFile, OutputStream

if t.TYPE_CHECKING:
    from target_dativo_iceberg.settings import Settings

MAX_TAGS = 10
#: Tag key → label name, in priority order (S3 keeps at most 10 tags per object).
TAG_LABELS = (
    "asset",
    "version",
    "tenant",
    "branch",
    "owner",
    "classification",
    "retention-days",
    "records",
    "ingested-at",
    "run-id",
)
#: Table property (contract, design §4) → label name.
PROPERTY_LABELS = {
    "dativo.contract-id": "contract-id",
    "dativo.contract-version": "version",
    "dativo.owner": "owner",
    "dativo.classification": "classification",
    "dativo.retention-days": "retention-days",
    "dativo.domain": "domain",
    "dativo.data-product": "data-product",
}
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9 +\-=._:/@]")


def is_s3(location: str) -> bool:
    """Whether `location` is an S3 URI (`s3://`, `s3a://`, `s3n://`)."""
    return urlsplit(location).scheme in ("s3", "s3a", "s3n")


def split_s3(location: str) -> tuple[str, str]:
    """`s3://bucket/key` → (bucket, key)."""
    parts = urlsplit(location)
    return parts.netloc, parts.path.lstrip("/")


def s3_client(settings: Settings) -> t.Any:
    """A boto3 S3 client for `connection.s3` (endpoint, keys, region, path-style addressing)."""
    import boto3
    from botocore.config import Config

    s3 = settings.connection.s3
    path_style = s3.path_style_access if s3.path_style_access is not None else bool(s3.endpoint)
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint or None,
        region_name=s3.region or "us-east-1",
        aws_access_key_id=s3.access_key_id or None,
        aws_secret_access_key=s3.secret_access_key or None,
        aws_session_token=s3.session_token or None,
        config=Config(s3={"addressing_style": "path" if path_style else "auto"}),
    )


def run_labels(
    settings: Settings, run_id: str, properties: Mapping[str, str], asset: str, stream: str
) -> dict[str, str]:
    """The labels every file of one table and run carries (the record count is added per file)."""
    labels = {
        "asset": asset,
        "tenant": settings.tenant_id,
        "branch": settings.table_branch,
        "run-id": run_id,
        "stream": stream,
        "ingested-at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for prop, label in PROPERTY_LABELS.items():
        if properties.get(prop):
            labels[label] = str(properties[prop])
    return labels


def object_metadata(labels: Mapping[str, str]) -> dict[str, str]:
    """User metadata (`x-amz-meta-dativo-<label>`): every label, as ASCII."""
    return {f"dativo-{k}": v.encode("ascii", "replace").decode()[:1024] for k, v in labels.items()}


def object_tags(labels: Mapping[str, str]) -> dict[str, str]:
    """At most 10 tags (`dativo-<label>`), in `TAG_LABELS` order, values in S3's tag alphabet."""
    tags = {}
    for label in TAG_LABELS:
        if labels.get(label):
            tags[f"dativo-{label}"] = _TAG_UNSAFE.sub("_", labels[label])[:256]
    return dict(list(tags.items())[:MAX_TAGS])


def upload_labelled(client: t.Any, location: str, body: t.IO[bytes], labels: Mapping[str, str]) -> None:
    """Upload `body` to `location` with the labels' metadata and tags (one PUT or one multipart upload)."""
    bucket, key = split_s3(location)
    extra = {"Metadata": object_metadata(labels), "Tagging": urlencode(object_tags(labels))}
    client.upload_fileobj(body, bucket, key, ExtraArgs=extra)


class _SpooledUpload(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """A Parquet file being written: kept locally, uploaded with its labels when closed."""

    def __init__(self, upload: t.Callable[[t.IO[bytes], int], None]) -> None:
        super().__init__(max_size=32 * 1024 * 1024, mode="w+b")
        self._upload: t.Callable[[t.IO[bytes], int], None] | None = upload

    def close(self) -> None:
        upload, self._upload = self._upload, None
        if upload is not None and not self.closed:
            self.flush()
            self.seek(0)
            records = pq.ParquetFile(self).metadata.num_rows
            self.seek(0)
            upload(self, records)
        super().close()

    def __exit__(self, *exc: object) -> None:
        self.close()  # SpooledTemporaryFile's own exit closes the file without calling close()


class _LabelledOutput(OutputFile):
    """An S3 output file uploaded with metadata and tags (the record count read from its footer)."""

    def __init__(self, io: TaggedFileIO, path: str) -> None:
        super().__init__(path)
        self.io = io
        self.path = path

    def __len__(self) -> int:
        return len(self.io.base.new_input(self.path))

    def exists(self) -> bool:
        return self.io.base.new_output(self.path).exists()

    def to_input_file(self) -> InputFile:
        return self.io.base.new_input(self.path)

    def create(self, overwrite: bool = False) -> OutputStream:
        def upload(body: t.IO[bytes], records: int) -> None:
            upload_labelled(self.io.client, self.path, body, {**self.io.labels, "records": str(records)})

        return t.cast(OutputStream, _SpooledUpload(upload))


class TaggedFileIO(FileIO):
    """A FileIO whose new `s3://` files carry `labels` (reads and deletes go to `base`)."""

    def __init__(self, base: FileIO, client: t.Any, labels: Mapping[str, str]) -> None:
        super().__init__(dict(base.properties))
        self.base = base
        self.client = client
        self.labels = dict(labels)

    def new_input(self, location: str) -> InputFile:
        return self.base.new_input(location)

    def new_output(self, location: str) -> OutputFile:
        if not is_s3(location):
            return self.base.new_output(location)
        return _LabelledOutput(self, location)

    def delete(self, location: str | InputFile | OutputFile) -> None:
        self.base.delete(location)
