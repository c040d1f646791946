"""tap-dativo-csv: Singer tap that reads local CSV files incrementally, typed by ODCS contracts."""

from __future__ import annotations

import typing as t

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities

from tap_dativo_csv.contract import ColumnSpec, Contract, ContractError, json_schema_for, load_contract
from tap_dativo_csv.reader import CSVOptions, CSVReadError, FileLayout, infer_kinds, inspect_file, merge_kinds
from tap_dativo_csv.sources import SourceError, resolve_paths
from tap_dativo_csv.streams import STRATEGIES, CSVFileStream, StreamPlan

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

FILE_ENTRY = th.ObjectType(
    th.Property("path", th.StringType, required=True, description="CSV file path or glob (`**` allowed)."),
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
    additional_properties=False,
)

S3_CONNECTION = th.ObjectType(
    th.Property("endpoint", th.StringType, description="S3 endpoint URL, e.g. http://127.0.0.1:8333."),
    th.Property("bucket", th.StringType, description="Default bucket for `s3://` paths."),
    th.Property("access_key_id", th.StringType, secret=True, description="S3 access key id."),
    th.Property("secret_access_key", th.StringType, secret=True, description="S3 secret access key."),
    th.Property("region", th.StringType, description="S3 region name."),
    th.Property("path_style_access", th.BooleanType, description="Use path-style bucket addressing."),
)


class TapDativoCSV(Tap):
    """Singer tap for CSV files: one stream per `object`, per-file modified-time bookmarks."""

    name = "tap-dativo-csv"
    package_name = "dativo-ingest"
    dynamic_catalog = True
    #: SDK defaults minus ACTIVATE_VERSION: a version switch would make targets drop skipped files' rows.
    capabilities: t.ClassVar[list] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.BATCH,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "files",
            th.ArrayType(FILE_ENTRY),
            required=True,
            description="Files to read: list of {path, object, asset?, primary_keys?, replication_key?}.",
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
                        "`file_modified_time` skips files whose mtime is unchanged since the last run; "
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
        th.Property("encoding", th.StringType, default="utf-8", description="Text encoding of the files."),
        th.Property(
            "header",
            th.BooleanType,
            default=True,
            description="First row holds column names; without it columns come from the contract or column_N.",
        ),
        th.Property(
            "null_values",
            th.ArrayType(th.StringType),
            default=[""],
            description="Cell values read as null.",
        ),
        th.Property(
            "infer_types",
            th.BooleanType,
            default=False,
            description="Without a contract, infer integer/number/boolean columns from a sample (else strings).",
        ),
        th.Property(
            "connection",
            th.ObjectType(
                th.Property(
                    "s3",
                    S3_CONNECTION,
                    description="S3 settings as in Dativo job configs (declared; `s3://` reading not supported yet).",
                )
            ),
            description="Connections to remote storage.",
        ),
    ).to_dict()

    # -- configuration helpers -----------------------------------------------------------------

    def _fail(self, message: str) -> t.NoReturn:
        """Raise a config error the SDK CLI prints without a traceback."""
        raise ConfigValidationError(message, errors=[message])

    def csv_options(self) -> CSVOptions:
        """CSV dialect and chunking from config, validated."""
        cfg = self.config
        options = CSVOptions(
            delimiter=cfg.get("delimiter", ","),
            quotechar=cfg.get("quotechar", '"'),
            encoding=cfg.get("encoding", "utf-8"),
            header=bool(cfg.get("header", True)),
            null_values=tuple(cfg.get("null_values", [""])),
            chunk_size=int(cfg.get("chunk_size", 10000)),
        )
        if len(options.delimiter) != 1:
            self._fail(f"delimiter must be one character, got {options.delimiter!r}")
        if len(options.quotechar) > 1:
            self._fail(f"quotechar must be one character, got {options.quotechar!r}")
        if options.chunk_size < 1:
            self._fail(f"chunk_size must be at least 1, got {options.chunk_size}")
        return options

    def _check_incremental(self) -> None:
        """Checks the JSON schema cannot express."""
        incremental = self.config.get("incremental") or {}
        if int(incremental.get("lookback_days") or 0) < 0:
            self._fail("incremental.lookback_days must be 0 or more")

    # -- discovery -----------------------------------------------------------------------------

    def _contract_for(self, name: str, entries: list[dict]) -> Contract | None:
        """The one contract named by the stream's entries, if any."""
        assets = sorted({e["asset"] for e in entries if e.get("asset")})
        if len(assets) > 1:
            self._fail(f"stream {name!r}: files name different contracts: {', '.join(assets)}")
        if not assets:
            return None
        try:
            return load_contract(assets[0], name)
        except ContractError as exc:
            self._fail(f"stream {name!r}: {exc}")

    def _plan(self, name: str, entries: list[dict], options: CSVOptions) -> StreamPlan:
        """Resolve files, read headers and decide column types for one stream."""
        contract = self._contract_for(name, entries)
        try:
            files = resolve_paths([e["path"] for e in entries])
            fixed = [c.name for c in contract.columns] if contract else None
            layouts: dict[str, FileLayout] = {f.path: inspect_file(f.path, options, fixed) for f in files}
        except (SourceError, CSVReadError) as exc:
            self._fail(f"stream {name!r}: {exc}")

        header_cols = list(dict.fromkeys(c for layout in layouts.values() for c in layout.names))
        specs: dict[str, ColumnSpec] = {}
        if contract:
            specs = {c.name: c for c in contract.columns}
            extra = [c for c in header_cols if c not in specs]
            if extra:
                self.logger.warning("stream %r: columns not in contract %s: %s", name, contract.path, extra)
            specs.update({c: ColumnSpec(c) for c in extra})
            absent = [c.name for c in contract.columns if c.name not in header_cols]
            if absent:
                self.logger.warning(
                    "stream %r: contract columns absent from the CSV (emitted as null): %s", name, absent
                )
        elif self.config.get("infer_types", False):
            kinds: dict[str, str] = {}
            for source in files:
                try:
                    found = infer_kinds(source.path, options, layouts[source.path])
                except CSVReadError as exc:
                    self._fail(f"stream {name!r}: {exc}")
                for col, kind in found.items():
                    kinds[col] = merge_kinds(kinds[col], kind) if col in kinds else kind
            specs = {c: ColumnSpec(c, kinds.get(c, "string")) for c in header_cols}
        else:
            specs = {c: ColumnSpec(c) for c in header_cols}

        keys = self._primary_keys(name, entries, contract, specs)
        cursor = self._replication_key(name, entries, specs)
        schema = {
            "type": "object",
            "properties": {c.name: json_schema_for(c) for c in specs.values()},
        }
        return StreamPlan(
            name=name,
            files=tuple(files),
            layouts=layouts,
            columns=tuple(specs),
            kinds={c.name: c.kind for c in specs.values()},
            schema=schema,
            primary_keys=keys,
            contract_path=contract.path if contract else None,
            replication_key=cursor,
            options=options,
        )

    def _primary_keys(
        self, name: str, entries: list[dict], contract: Contract | None, specs: dict[str, ColumnSpec]
    ) -> tuple[str, ...]:
        """Configured keys win over contract keys; all entries of a stream must agree."""
        configured = {tuple(e["primary_keys"]) for e in entries if e.get("primary_keys")}
        if len(configured) > 1:
            self._fail(f"stream {name!r}: files declare different primary_keys: {sorted(configured)}")
        keys = configured.pop() if configured else (contract.primary_keys if contract else ())
        missing = [k for k in keys if k not in specs]
        if missing:
            self._fail(f"stream {name!r}: primary key column(s) {missing} not found in the CSV columns")
        return tuple(keys)

    def _replication_key(self, name: str, entries: list[dict], specs: dict[str, ColumnSpec]) -> str | None:
        """The stream's cursor column under the `replication_key` strategy, validated."""
        strategy = (self.config.get("incremental") or {}).get("strategy", "file_modified_time")
        if strategy != "replication_key":
            return None
        found = {e.get("replication_key") for e in entries}
        if None in found or "" in found:
            self._fail(
                f"stream {name!r}: incremental.strategy 'replication_key' needs `replication_key` on every file"
            )
        if len(found) > 1:
            self._fail(f"stream {name!r}: files declare different replication_key columns: {sorted(found)}")
        key = str(found.pop())
        if key not in specs:
            self._fail(f"stream {name!r}: replication_key column {key!r} not found in the CSV columns")
        if specs[key].kind == "string":
            self.logger.warning(
                "stream %r: replication_key %r is a string column, compared as text; type it with a "
                "contract (or infer_types) for numeric or timestamp cursors",
                name,
                key,
            )
        return key

    def run_discovery(self) -> str:
        """Discovery that reports config problems (missing files, bad contracts) without a traceback."""
        try:
            return super().run_discovery()
        except ConfigValidationError as exc:
            for error in exc.errors:
                self.logger.error(error)
            raise SystemExit(1) from None

    def discover_streams(self) -> list[Stream]:
        """One stream per distinct `object`, in order of first appearance in `files`."""
        self._check_incremental()
        options = self.csv_options()
        grouped: dict[str, list[dict]] = {}
        for entry in self.config.get("files") or []:
            grouped.setdefault(entry["object"], []).append(entry)
        if not grouped:
            self._fail("files must list at least one {path, object} entry")
        return [CSVFileStream(self, self._plan(name, entries, options)) for name, entries in grouped.items()]


if __name__ == "__main__":
    TapDativoCSV.cli()
