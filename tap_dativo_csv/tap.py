"""tap-dativo-csv: Singer tap that reads CSV/JSON/NDJSON files (local or S3) incrementally, typed by ODCS contracts."""

from __future__ import annotations

import copy
import typing as t

from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities

from tap_dativo_csv.chunks import READERS, FileRead, sample_layout
from tap_dativo_csv.contract import ColumnSpec, Contract, json_schema_for, load_contract
from tap_dativo_csv.convert import UNKNOWN, merge_kinds
from tap_dativo_csv.formats import detect_format
from tap_dativo_csv.reader import CSVOptions, FileLayout, infer_kinds, inspect_file
from tap_dativo_csv.s3 import S3Settings
from tap_dativo_csv.settings import (
    CONFIG_SCHEMA,
    METADATA_COLUMNS,
    METADATA_SCHEMAS,
    csv_options,
    sample_rows,
)
from tap_dativo_csv.shards import shard_of, shard_settings
from tap_dativo_csv.sources import SourceFile, Sources
from tap_dativo_csv.streams import CSVFileStream, StreamPlan
from target_dativo_iceberg.errors import ContractError, CSVReadError, SourceError
from target_dativo_iceberg.process import run_and_exit

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream


class TapDativoCSV(Tap):
    """Singer tap for CSV, JSON and NDJSON files: one stream per `object`, per-file bookmarks."""

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

    config_jsonschema = CONFIG_SCHEMA
    #: Resolves and opens files (local and `s3://`); set by `discover_streams` from `connection.s3`.
    sources: Sources

    # -- configuration helpers -----------------------------------------------------------------

    def _fail(self, message: str) -> t.NoReturn:
        """Raise a config error the SDK CLI prints without a traceback."""
        raise ConfigValidationError(message, errors=[message])

    def csv_options(self) -> CSVOptions:
        """CSV dialect and chunking from config, validated (with the other cross-setting checks)."""
        options, problems = csv_options(self.config)
        if problems:
            self._fail("; ".join(problems))
        return options

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

    def _column_names(self, name: str, entries: list[dict]) -> list[str] | None:
        """Given column names: the entries' `column_names` (which must agree), else the top-level one."""
        given = {tuple(e["column_names"]) for e in entries if e.get("column_names")}
        if len(given) > 1:
            self._fail(f"stream {name!r}: files declare different column_names: {sorted(given)}")
        names = list(given.pop()) if given else self.config.get("column_names")
        return list(names) if names else None

    def _file_failed(self, name: str, source: SourceFile, exc: Exception) -> None:
        """A file discovery cannot read: exit 2 naming it, or with `on_file_error: skip` report it
        and leave it out of this run."""
        if self.config.get("on_file_error") != "skip":
            self.logger.error("stream %r: %s", name, exc)
            raise SystemExit(2)
        self.logger.warning(
            "file_skipped: stream %r, file %s: %s (on_file_error: skip; not read this run)",
            name,
            source.path,
            exc,
        )

    def _inspect(
        self,
        source: SourceFile,
        fmt: str,
        options: CSVOptions,
        fixed: list[str] | None,
        given: list[str] | None,
    ) -> tuple[FileLayout, dict[str, str] | None]:
        """A file's columns and, with `infer_types` and no contract, their inferred kinds."""

        def read(layout: FileLayout) -> FileRead:
            return FileRead(
                source.path, lambda: self.sources.open(source.path), options, layout, {}, format=fmt
            )

        rows = sample_rows(self.config)
        if fmt == "csv":
            layout = inspect_file(source.path, read(FileLayout((), ())).open_stream, options, fixed, given)
        else:
            layout = sample_layout(read(FileLayout((), ())), rows)
        if fixed is not None or not self.config.get("infer_types", False) or not layout.names:
            return layout, None
        return layout, infer_kinds(layout.names, READERS[fmt](read(layout)), rows)

    def _files(self, name: str, entries: list[dict]) -> list[tuple[SourceFile, str]]:
        """The stream's files in this shard, sorted by path, with their formats."""
        (count, index), problems = shard_settings(self.config)
        if problems:
            for problem in problems:
                self.logger.error(problem)
            raise SystemExit(2)
        found: dict[str, tuple[SourceFile, str]] = {}
        for entry in entries:
            for source in self.sources.resolve(entry["path"]):
                fmt = detect_format(source.path, entry.get("format") or self.config.get("format"))
                found.setdefault(source.path, (source, fmt))
        mine = [found[path] for path in sorted(found) if shard_of(path, count) == index]
        if count > 1:
            self.logger.info(
                "stream %r: shard %d of %d holds %d of %d file(s)", name, index, count, len(mine), len(found)
            )
        for source, fmt in mine:
            if fmt not in READERS:
                self._fail(f"stream {name!r}: {source.path}: format {fmt!r} has no reader in this version")
        return mine

    def _plan(self, name: str, entries: list[dict], options: CSVOptions) -> StreamPlan | None:
        """Resolve files, read headers and decide column types for one stream (None: no file to read)."""
        contract = self._contract_for(name, entries)
        given = self._column_names(name, entries)
        fixed = [c.name for c in contract.columns] if contract else None
        try:
            candidates = self._files(name, entries)
        except SourceError as exc:
            self._fail(f"stream {name!r}: {exc}")
        files: list[SourceFile] = []
        layouts: dict[str, FileLayout] = {}
        inferred: dict[str, str] = {}
        for source, fmt in candidates:
            try:
                layout, kinds = self._inspect(source, fmt, options, fixed, given)
            except (SourceError, CSVReadError) as exc:
                self._file_failed(name, source, exc)
                continue
            files.append(source)
            layouts[source.path] = layout
            for col, kind in (kinds or {}).items():
                inferred[col] = merge_kinds(inferred[col], kind) if col in inferred else kind
        if not files:
            self.logger.info("stream %r: no file to read (in this shard)", name)
            return None
        formats = {source.path: fmt for source, fmt in candidates}

        header_cols = list(dict.fromkeys(c for layout in layouts.values() for c in layout.names))
        metadata = bool(self.config.get("add_metadata_columns", False))
        clash = [c for c in METADATA_COLUMNS if c in header_cols] if metadata else []
        if clash:
            self._fail(f"stream {name!r}: CSV columns {clash} clash with add_metadata_columns")
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
            kinds = {col: ("string" if kind == UNKNOWN else kind) for col, kind in inferred.items()}
            specs = {c: ColumnSpec(c, kinds.get(c, "string")) for c in header_cols}
        else:
            specs = {c: ColumnSpec(c) for c in header_cols}

        keys = self._primary_keys(name, entries, contract, specs)
        cursor = self._replication_key(name, entries, specs)
        properties = {c.name: json_schema_for(c) for c in specs.values()}
        if metadata:
            properties.update(copy.deepcopy(METADATA_SCHEMAS))
        schema = {"type": "object", "properties": properties}
        return StreamPlan(
            name=name,
            files=tuple(files),
            layouts=layouts,
            columns=tuple(specs),
            kinds={c.name: c.kind for c in specs.values()},
            schema=schema,
            decimals={c.name: c.decimal for c in specs.values() if c.decimal},
            primary_keys=keys,
            contract_path=contract.path if contract else None,
            replication_key=cursor,
            options=options,
            sources=self.sources,
            metadata_columns=metadata,
            formats={path: fmt for path, fmt in formats.items() if path in layouts},
            on_file_error=str(self.config.get("on_file_error") or "fail"),
            shard=shard_settings(self.config)[0],
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
        options = self.csv_options()
        self.sources = Sources(S3Settings.from_config(self.config))
        grouped: dict[str, list[dict]] = {}
        for entry in self.config.get("files") or []:
            grouped.setdefault(entry["object"], []).append(entry)
        if not grouped:
            self._fail("files must list at least one {path, object} entry")
        plans = [self._plan(name, entries, options) for name, entries in grouped.items()]
        return [CSVFileStream(self, plan) for plan in plans if plan is not None]

    def sync_all(self) -> None:
        """The SDK's sync; a file that cannot be read (`on_file_error: fail`) ends it with exit 2
        and a message naming the file, without a traceback."""
        try:
            super().sync_all()
        except (CSVReadError, SourceError) as exc:
            self.logger.error("%s (on_file_error: fail)", exc)
            raise SystemExit(2) from None


def main() -> None:
    """Console script: the SDK's CLI, then an exit without interpreter teardown (Arrow's native
    threads can abort the process there after a successful sync: target_dativo_iceberg/process.py)."""
    run_and_exit(TapDativoCSV.cli)


if __name__ == "__main__":
    main()
