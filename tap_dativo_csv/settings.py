"""The tap's settings (JSON schema with a description per setting) and the CSV options built from them."""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from tap_dativo_csv.formats import FORMATS
from tap_dativo_csv.markdown_kv import PATTERN_SETTING
from tap_dativo_csv.reader import BAD_ROWS, CSVOptions

STRATEGIES = ("file_modified_time", "full_table", "replication_key")
FILE_ERRORS = ("fail", "skip")
#: The columns `add_metadata_columns` adds to every record, with their JSON schemas.
METADATA_SCHEMAS: dict[str, dict[str, t.Any]] = {
    "_sdc_source_file": {"type": ["string", "null"]},
    "_sdc_source_lineno": {"type": ["integer", "null"]},
    "_sdc_modified_at": {"type": ["string", "null"], "format": "date-time"},
}
METADATA_COLUMNS = tuple(METADATA_SCHEMAS)
DEFAULT_INFER_SAMPLE_ROWS = 10_000

FILE_ENTRY = th.ObjectType(
    th.Property(
        "path",
        th.StringType,
        required=True,
        description=(
            "A file, a directory (its .csv/.tsv/.json/.ndjson/.jsonl[.gz] files, sorted) or a glob "
            "(`**` recurses); "
            "local or `s3://bucket/key-or-prefix-or-glob`."
        ),
    ),
    th.Property("object", th.StringType, required=True, description="Stream name the file(s) feed."),
    th.Property(
        "asset",
        th.StringType,
        description="Path of an ODCS v3 contract YAML whose schema types the columns.",
    ),
    th.Property(
        "primary_keys",
        th.ArrayType(th.StringType),
        description="Key columns of the stream; defaults to the contract's primaryKey properties.",
    ),
    th.Property(
        "replication_key",
        th.StringType,
        description="Cursor column for the `replication_key` strategy (same for all files of an object).",
    ),
    th.Property(
        "column_names",
        th.ArrayType(th.StringType),
        description="Column names of these files, overriding the top-level `column_names`.",
    ),
    th.Property(
        "format",
        th.StringType,
        allowed_values=list(FORMATS),
        description="Format of these files, overriding the top-level `format`.",
    ),
    additional_properties=False,
)

S3_CONNECTION = th.ObjectType(
    th.Property("endpoint", th.StringType, description="S3 endpoint URL, e.g. http://127.0.0.1:8333."),
    th.Property("bucket", th.StringType, description="Bucket used by `s3:///key` paths (empty bucket)."),
    th.Property("access_key_id", th.StringType, secret=True, description="S3 access key id."),
    th.Property("secret_access_key", th.StringType, secret=True, description="S3 secret access key."),
    th.Property(
        "session_token", th.StringType, secret=True, description="S3 session token (temporary keys)."
    ),
    th.Property("region", th.StringType, description="S3 region name (default us-east-1)."),
    th.Property(
        "path_style_access",
        th.BooleanType,
        description="Path-style bucket addressing; defaults to on when `endpoint` is set (MinIO, SeaweedFS).",
    ),
)

CONFIG_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "files",
        th.ArrayType(FILE_ENTRY),
        required=True,
        description=(
            "Files to read: list of {path, object, asset?, primary_keys?, replication_key?, "
            "column_names?, format?}."
        ),
    ),
    th.Property(
        "incremental",
        th.ObjectType(
            th.Property(
                "strategy",
                th.StringType,
                default="file_modified_time",
                allowed_values=list(STRATEGIES),
                description=(
                    "`file_modified_time` skips files whose modified time is unchanged since the last run; "
                    "`replication_key` also emits only rows at or after the saved cursor of each "
                    "file entry's `replication_key` column; `full_table` re-reads every file."
                ),
            ),
            th.Property(
                "lookback_days",
                th.IntegerType,
                default=0,
                description="Re-read files modified within this many days even if unchanged (0 = never).",
            ),
        ),
        description="How runs after the first one pick the files to read.",
    ),
    th.Property(
        "chunk_size",
        th.IntegerType,
        default=10000,
        description="Rows read and converted per chunk; bounds memory for any file size.",
    ),
    th.Property("delimiter", th.StringType, default=",", description="Field delimiter (one character)."),
    th.Property("quotechar", th.StringType, default='"', description="Quote character (one character)."),
    th.Property(
        "escapechar",
        th.StringType,
        description="Escape character inside values, e.g. a backslash (default: none, quotes are doubled).",
    ),
    th.Property("encoding", th.StringType, default="utf-8", description="Text encoding of the files."),
    th.Property(
        "header",
        th.BooleanType,
        default=True,
        description=(
            "First row (after `skip_rows`) holds column names; without it names come from "
            "`column_names`, the contract, or column_N."
        ),
    ),
    th.Property(
        "column_names",
        th.ArrayType(th.StringType),
        description="Column names in file order: with `header: false` the names; with a header they replace it.",
    ),
    th.Property(
        "skip_rows",
        th.IntegerType,
        default=0,
        description="Rows skipped at the top of every file, before the header.",
    ),
    th.Property(
        "null_values",
        th.ArrayType(th.StringType),
        default=[""],
        description="Cell values read as null.",
    ),
    th.Property(
        "on_bad_rows",
        th.StringType,
        default="fail",
        allowed_values=list(BAD_ROWS),
        description=(
            "A row with the wrong number of fields: `fail` stops with file and line; `skip` drops it, "
            "counts it and logs the count with the first examples per file."
        ),
    ),
    th.Property(
        "infer_types",
        th.BooleanType,
        default=False,
        description=(
            "Without a contract, infer integer/number/boolean/date/timestamp columns from the first "
            "`infer_sample_rows` rows of every file (else all columns are strings)."
        ),
    ),
    th.Property(
        "infer_sample_rows",
        th.IntegerType,
        default=DEFAULT_INFER_SAMPLE_ROWS,
        description="Data rows sampled from the start of every file when `infer_types` is on.",
    ),
    th.Property(
        "add_metadata_columns",
        th.BooleanType,
        default=False,
        description="Add `_sdc_source_file`, `_sdc_source_lineno` and `_sdc_modified_at` to every record.",
    ),
    th.Property(
        "format",
        th.StringType,
        allowed_values=list(FORMATS),
        description=(
            "File format: `csv`, `json` (an array of objects), `ndjson` (one object a line) or "
            "`markdown_kv`; default: from each file's extension (.csv/.tsv, .json, .ndjson/.jsonl, "
            ".md, also gzipped), csv for other names."
        ),
    ),
    th.Property(
        "on_file_error",
        th.StringType,
        default="fail",
        allowed_values=list(FILE_ERRORS),
        description=(
            "A file that cannot be read: `fail` stops the run (exit 2) naming the file; `skip` logs "
            "the file and the error (event `file_skipped`), leaves it unbookmarked and reads the others."
        ),
    ),
    PATTERN_SETTING,
    th.Property(
        "shard_count",
        th.IntegerType,
        default=1,
        description="Workers the matched files are split across (by a hash of each file's path).",
    ),
    th.Property(
        "shard_index",
        th.IntegerType,
        default=0,
        description="This worker's shard, 0 to shard_count - 1: it reads (and bookmarks) only its files.",
    ),
    th.Property(
        "connection",
        th.ObjectType(
            th.Property(
                "s3",
                S3_CONNECTION,
                description="S3 settings for `s3://` paths (keys as in the target's connection.s3).",
            )
        ),
        description="Connections to remote storage.",
    ),
).to_dict()


def csv_options(config: t.Mapping[str, t.Any]) -> tuple[CSVOptions, list[str]]:
    """CSV dialect and chunking from config, with the problems the JSON schema cannot express."""
    escape = config.get("escapechar") or None
    options = CSVOptions(
        delimiter=config.get("delimiter", ","),
        quotechar=config.get("quotechar", '"'),
        escapechar=escape,
        encoding=config.get("encoding", "utf-8"),
        header=bool(config.get("header", True)),
        null_values=tuple(config.get("null_values", [""])),
        chunk_size=int(config.get("chunk_size", 10000)),
        skip_rows=int(config.get("skip_rows") or 0),
        on_bad_rows=str(config.get("on_bad_rows") or "fail"),
        markdown_kv_pattern=config.get("markdown_kv_pattern") or None,
    )
    problems = []
    if len(options.delimiter) != 1:
        problems.append(f"delimiter must be one character, got {options.delimiter!r}")
    if len(options.quotechar) > 1:
        problems.append(f"quotechar must be one character, got {options.quotechar!r}")
    if escape is not None and (len(escape) != 1 or escape in (options.delimiter, options.quotechar)):
        problems.append(
            f"escapechar must be one character other than delimiter and quotechar, got {escape!r}"
        )
    if options.chunk_size < 1:
        problems.append(f"chunk_size must be at least 1, got {options.chunk_size}")
    if options.skip_rows < 0:
        problems.append(f"skip_rows must be 0 or more, got {options.skip_rows}")
    if sample_rows(config) < 1:
        problems.append("infer_sample_rows must be at least 1")
    if int((config.get("incremental") or {}).get("lookback_days") or 0) < 0:
        problems.append("incremental.lookback_days must be 0 or more")
    return options, problems


def sample_rows(config: t.Mapping[str, t.Any]) -> int:
    """`infer_sample_rows`, defaulted when unset or null."""
    value = config.get("infer_sample_rows")
    return DEFAULT_INFER_SAMPLE_ROWS if value is None else int(value)
