"""RECORD message lines built from Arrow columns, byte for byte what the Singer SDK writes.

The SDK writes a RECORD by building a message dict per row, serialising it with simplejson
(`separators=(",", ":")`, ASCII-only output, floats by `repr`) and flushing stdout: ~15 µs a row,
which made the tap the bottleneck of every `tap | target` pipe. Here each column becomes an array of
JSON fragments with Arrow kernels (integers and booleans as text, strings escaped, floats formatted
like `repr`), the fragments are joined into lines, and a whole chunk is written at once. Values the
kernels cannot render exactly as simplejson does (non-ASCII or control characters, floats Python
writes in exponent notation) are rendered one by one by simplejson's own functions, so the output
never differs from the SDK's (`tests/test_tap_jsonlines.py` checks this on random data).
"""

from __future__ import annotations

import typing as t

import pyarrow as pa
import pyarrow.compute as pc
from simplejson.encoder import encode_basestring_ascii

_NULL = pa.scalar("null")
#: Characters simplejson writes as themselves: printable ASCII (it escapes DEL and everything else).
_PLAIN = r"^[\x20-\x7e]*$"


def _fill(text: pa.Array, column: pa.Array) -> pa.Array:
    return text.fill_null(_NULL) if column.null_count else text


def _with_python(
    text: pa.Array, column: pa.Array, mask: pa.Array, render: t.Callable[[t.Any], str]
) -> pa.Array:
    """`text` with the rows of `mask` rendered from `column`'s values by `render` (rare rows)."""
    if not pc.any(mask).as_py():
        return text
    values = column.filter(mask).to_pylist()
    return pc.replace_with_mask(text, mask, pa.array([render(v) for v in values], pa.string()))


def _strings(column: pa.Array) -> pa.Array:
    escaped = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
    text = pc.binary_join_element_wise('"', escaped, '"', "")
    odd = pc.invert(pc.match_substring_regex(column, _PLAIN)).fill_null(False)
    return _with_python(text, column, odd, encode_basestring_ascii)


def _floats(column: pa.Array) -> pa.Array:
    """`repr` of each float: Arrow's shortest round-trip digits agree with it in fixed notation
    (1e-4 <= |x| < 1e16, Python's range for it) once integral values get their ".0"."""
    column = pc.cast(column, pa.float64())
    text = pc.cast(column, pa.string())
    size = pc.abs(column)
    fixed = pc.or_(pc.and_(pc.greater_equal(size, 1e-4), pc.less(size, 1e16)), pc.equal(size, 0.0))
    fixed = pc.and_(fixed, pc.invert(pc.match_substring(text, "e")))
    integral = pc.invert(pc.match_substring(text, "."))
    text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    finite = pc.is_finite(column)
    text = pc.if_else(finite, text, _NULL)  # simplejson's ignore_nan: NaN and infinities as null
    odd = pc.and_(finite, pc.invert(fixed)).fill_null(False)
    return _with_python(text, column, odd, repr)


def fragment(column: pa.Array) -> pa.Array | None:
    """Each value of `column` as JSON text (null as `null`); None for a type this cannot render."""
    kind = column.type
    if pa.types.is_null(kind):
        return pa.array(["null"] * len(column), pa.string())
    if pa.types.is_integer(kind):
        return _fill(pc.cast(column, pa.string()), column)
    if pa.types.is_boolean(kind):
        return _fill(pc.if_else(column, "true", "false"), column)
    if pa.types.is_floating(kind):
        return _fill(_floats(column), column)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _fill(_strings(pc.cast(column, pa.string())), column)
    return None


def record_lines(
    batch: pa.RecordBatch, stream: str, time_extracted: str, version: int | None = None, end: str = ""
) -> pa.Array | None:
    """One RECORD line per row, as `SimpleSingerWriter` would write it, each followed by `end`;
    None when a column's type has no vectorised rendering (the caller then takes the SDK's
    per-record way)."""
    parts: list[t.Any] = ['{"type":"RECORD","stream":' + encode_basestring_ascii(stream) + ',"record":{']
    for index, (name, column) in enumerate(zip(batch.schema.names, batch.columns, strict=True)):
        text = fragment(column)
        if text is None:
            return None
        parts += [("," if index else "") + encode_basestring_ascii(name) + ":", text]
    tail = "}" if version is None else f'}},"version":{int(version)}'
    parts.append(tail + ',"time_extracted":' + encode_basestring_ascii(time_extracted) + "}" + end)
    if batch.num_columns == 0:
        return pa.array([parts[0] + parts[-1]] * batch.num_rows, pa.string())
    return pc.binary_join_element_wise(*parts, "")
