"""Flattening on the columnar path: parsed record columns flattened as singer-sdk's mapper flattens records.

With `flattening_enabled` and `flattening_max_depth` > 0 the SDK gives the sink the flattened schema and
flattens each record before the sink sees it (`singer_sdk.helpers._flattening.flatten_record`): an object
whose flattened key (`parent__child`, shortened past `flattening_max_key_length`) is not a property of the
flattened schema is expanded while its level is below the max depth; every object or array left, at any
level, becomes JSON text (`serialize_json`); a null or missing parent only yields no child keys. Here the
same is done to the Arrow columns the reader parsed from the nested records: struct columns are expanded
by struct field access, scalar columns pass through, and the JSON-text columns are computed from the raw
RECORD lines with the SDK's own `deserialize_json` + `serialize_json`, for the rows holding a value only
(Arrow cannot write that text byte for byte: it fills missing keys, unifies ints and floats); empty
lists and lists of integers, booleans or strings on a line without escapes are written from Arrow's
values, which are then exactly the values Python parses. Hints for
the parse come from the mapper's unflattened schema, leaf types from the flattened one.

What the columns cannot settle — two keys flattening to one name, a key the SDK's JSON-dump test treats
specially, a value Python and Arrow read differently — returns None: the reader then sends that run line
by line through the SDK. A stream whose flattened schema requires a key flattening replaces takes the
per-record path (`unsupported`, logged by `intake.routes`).

Measured (2-core machine shared with other jobs, so CPU seconds user+sys, one run each; 200k records of
10 fields: seven scalars, a 2-level nested object and an array of strings; `flattening_max_depth: 2`, no
contract, validation on): per record 38.1 CPU-s, columnar 4.4 CPU-s (5.9 when every array's text was
written from its parsed line; lists of integers, booleans or strings are now written from Arrow's
values). The same input unflattened takes 3.4 CPU-s columnar.
"""

from __future__ import annotations

import typing as t
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.json import deserialize_json, serialize_json

from target_dativo_iceberg.errors import Unflattened
from target_dativo_iceberg.intake.metadata import MESSAGE_COLUMNS
from target_dativo_iceberg.sdk_compat import dumped_as_json, flattened_key

Path = tuple[str, ...]


def flattening_map(maps: list[Any], stream: str) -> SameRecordTransform | None:
    """The stream's one map when it only flattens (None: no flattening, or other maps apply)."""
    if len(maps) != 1 or not isinstance(maps[0], SameRecordTransform) or maps[0].stream_alias != stream:
        return None
    return maps[0] if maps[0].flattening_enabled else None


def record_flattener(maps: list[Any], stream: str) -> t.Callable[[dict[str, Any]], dict[str, Any]]:
    """A RECORD message → the message with its record as the stream's sink receives it (flattened when
    the mapper flattens the stream): for records re-read from their lines on the record path."""
    stream_map = flattening_map(maps, stream)
    if stream_map is None:
        return lambda message: message
    return lambda message: {**message, "record": stream_map.flatten_record(message["record"])}


def unsupported(stream_map: SameRecordTransform) -> str | None:
    """Why the stream's flattened records cannot be built as columns (None: they can)."""
    schema = stream_map.transformed_schema
    properties = schema.get("properties") or {}
    # a `required` key flattening replaces is no flattened property: the column rules already send
    # such a stream per record (`jsonschema_rules`), and without validation nothing checks it
    flat = Flattening(stream_map)
    raw = stream_map.raw_schema.get("properties") or {}
    for name in MESSAGE_COLUMNS.values():
        if name in raw and flat.key((name,)) not in properties:
            return f"flattening_enabled: the schema declares {name!r} as an object"
    return None


class Flattening:
    """One stream's flattening (the mapper's options and flattened schema) applied to parsed columns."""

    def __init__(self, stream_map: SameRecordTransform) -> None:
        options = stream_map.flattening_options
        assert options is not None
        self.max_level, self.separator, self.max_key_length = (
            options.max_level,
            options.separator,
            options.max_key_length,
        )
        self.schema: dict[str, Any] = stream_map.transformed_schema
        self.raw_schema: dict[str, Any] = stream_map.raw_schema
        self.properties = frozenset(self.schema.get("properties") or {})
        self.closed = self.schema.get("additionalProperties") is False
        self._keys: dict[Path, str] = {}
        self._dumps: dict[str, bool] = {}
        self._hints_found: dict[str, pa.DataType | None] | None = None

    def key(self, path: Path) -> str:
        """The flattened key of a record path (the mapper's `flatten_key`)."""
        found = self._keys.get(path)
        if found is None:
            found = flattened_key(
                path[-1], list(path[:-1]), self.separator, max_key_length=self.max_key_length
            )
            self._keys[path] = found
        return found

    def _special(self, name: str) -> bool:
        """Whether the SDK's JSON-dump test would write a scalar under `name` as JSON text (or fail)."""
        found = self._dumps.get(name)
        if found is None:
            try:
                found = bool(dumped_as_json(name, 0, self.schema))
            except (TypeError, KeyError, ValueError):  # the SDK fails on such a key: the record path shows it
                found = True
            self._dumps[name] = found
        return found

    def _expands(self, path: Path, level: int) -> bool:
        return self.key(path) not in self.properties and level < self.max_level

    def hints(self, flat_types: dict[str, pa.DataType | None]) -> dict[str, pa.DataType | None]:
        """Top-level record field → the Arrow type to parse it as: nested structs down to the leaves
        the flattened schema types (`flat_types`, by flattened key); objects and arrays that become
        JSON text are inferred."""
        if self._hints_found is None:  # the sink's types do not change
            self._hints_found = dict(self._hints(self.raw_schema.get("properties") or {}, (), 0, flat_types))
        return self._hints_found

    def _hints(
        self, props: dict[str, Any], parents: Path, level: int, flat_types: dict[str, pa.DataType | None]
    ) -> list[tuple[str, pa.DataType]]:
        fields: list[tuple[str, pa.DataType]] = []
        for name, prop in props.items():
            if not isinstance(prop, dict):
                continue
            path = (*parents, name)
            raw = prop.get("type")
            kinds = [raw] if isinstance(raw, str) else list(raw or [])
            children = prop.get("properties")
            if "object" in kinds and isinstance(children, dict) and self._expands(path, level):
                sub = self._hints(children, path, level + 1, flat_types)
                if sub:
                    fields.append((name, pa.struct(sub)))
            elif kinds and "object" not in kinds and "array" not in kinds:
                hint = flat_types.get(self.key(path))
                if hint is not None:
                    fields.append((name, hint))
        return fields

    def columns(self, lines: pa.Array, records: pa.Table) -> pa.Table | None:
        """The run's flattened record columns (the message columns kept), or None when the columns
        cannot settle them exactly: the run then takes the record path."""
        meta = [name for name in MESSAGE_COLUMNS.values() if name in records.column_names]
        if self.closed and meta and pc.any(pc.match_substring(lines, '"_sdc_')).as_py():
            return None  # a record's own `_sdc_*` object would flatten into keys the schema forbids
        names: list[str] = []
        arrays: list[pa.Array | None] = []
        texts: list[tuple[int, Path, pa.Array]] = []  # output index, record path, parsed values
        top = [(name, records.column(name)) for name in records.column_names if name not in meta]
        try:
            self._walk(top, (), 0, records.num_rows, names, arrays, texts)
            if len(set(names) | set(meta)) != len(names) + len(meta):
                return None  # keys flattening to one name: the SDK keeps the last one of each record
            if texts:
                self._json_texts(lines, texts, arrays)
        except Unflattened:
            return None
        columns = [*arrays, *(records.column(name) for name in meta)]
        return pa.Table.from_arrays(columns, names=[*names, *meta])

    def _walk(
        self,
        columns: list[tuple[str, t.Any]],
        parents: Path,
        level: int,
        n: int,
        names: list[str],
        arrays: list[pa.Array | None],
        texts: list[tuple[int, Path, pa.Array]],
    ) -> None:
        for name, column in columns:
            array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            path, kind = (*parents, name), array.type
            key = self.key(path)
            if pa.types.is_struct(kind) and self._expands(path, level):
                if array.null_count:  # the SDK keeps a null parent under its own key
                    if self._special(name):
                        raise Unflattened(key)
                    names.append(key)
                    arrays.append(pa.nulls(n))
                children = array.flatten()  # child values under a null parent are null
                fields = [(kind.field(i).name, children[i]) for i in range(kind.num_fields)]
                self._walk(fields, path, level + 1, n, names, arrays, texts)
            elif pa.types.is_nested(kind):
                texts.append((len(names), path, array))
                names.append(key)
                arrays.append(None)
            else:
                if self._special(name):
                    raise Unflattened(key)
                names.append(key)
                arrays.append(array)

    def _json_texts(
        self, lines: pa.Array, texts: list[tuple[int, Path, pa.Array]], arrays: list[pa.Array | None]
    ) -> None:
        """The JSON-text columns: the values the SDK parses from the rows' lines, written by its
        serializer. Empty lists, and lists of integers, booleans or strings on a line without a
        backslash (no escape Arrow and Python might decode apart), are taken from Arrow's values,
        which are then exactly those Python parses; the other rows' lines are parsed."""
        n = len(lines)
        plain: pa.Array | None = None
        values: list[list[str | None]] = [[None] * n for _ in texts]
        parse: list[list[bool]] = []  # per column: rows whose value comes from the line
        masks: list[pa.Array] = []
        for column, (_index, _path, array) in enumerate(texts):
            valid = array.is_valid()
            direct = None
            if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
                direct = pc.and_(valid, pc.equal(pc.list_value_length(array), 0))
                if _simple_items(array.type.value_type):
                    if plain is None:
                        plain = pc.invert(pc.match_substring(lines, "\\"))
                    direct = pc.and_(valid, plain)
            if direct is not None:
                direct = pc.fill_null(direct, False)  # a null list has no length
            if direct is not None and direct.true_count:
                rows = pc.indices_nonzero(direct)
                for row, value in zip(rows.to_pylist(), array.take(rows).to_pylist(), strict=True):
                    values[column][row] = serialize_json(value)
                valid = pc.and_(valid, pc.invert(direct))
            masks.append(valid)
            parse.append(valid.to_pylist())
        needed = masks[0]
        for mask in masks[1:]:
            needed = pc.or_(needed, mask)
        rows = pc.indices_nonzero(needed)
        for row, line in zip(rows.to_pylist(), lines.take(rows).to_pylist(), strict=True):
            record = deserialize_json(line)["record"]
            for column, (_index, path, _array) in enumerate(texts):
                if not parse[column][row]:
                    continue
                value = record
                try:
                    for part in path:
                        value = value[part]
                except (KeyError, TypeError, IndexError):
                    raise Unflattened(path) from None
                if not isinstance(value, (dict, list)):
                    raise Unflattened(path)
                values[column][row] = serialize_json(value)
        for column, (index, _path, _array) in enumerate(texts):
            arrays[index] = pa.array(values[column], pa.string())


def _simple_items(kind: pa.DataType) -> bool:
    """List items Arrow and Python parse to the same Python values (no floats: Arrow unifies 1 and 1.0)."""
    return (
        pa.types.is_int64(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_string(kind)
        or pa.types.is_null(kind)
    )
