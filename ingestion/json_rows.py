"""Parsing JSON values into Arrow rows, and finding the values that cannot be parsed.

Values are parsed together (newline-joined, one ``pyarrow.json.read_json`` call, or the C fast
path when every value has the shape the table knows). If that fails, the values are bisected until
the offending ones are isolated: they are returned as bad, everything else parses. Later halves
are parsed with the schema the earlier halves produced, so a type conflict is pinned on the value
that brought it ("first type wins", as in the Delta table).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa
import pyarrow.json as pj

from lakeport.ingestion import arrow_types, debezium, fast_decode

_BLOCK = 8 << 20
Parser = Callable[[list[bytes], pa.StructType | None, bytes | None], tuple[pa.Table, pa.StructType]]


@dataclass(frozen=True)
class Chunk:
    """Parsed rows for some message indexes, and the raw row type that parsing settled on."""

    rows: pa.Table
    index: list[int]
    row_type: pa.StructType


def read_json(values: Sequence[bytes], schema: pa.Schema | None, data: bytes | None = None) -> pa.Table:
    """Parse newline-joined values. A value with newlines inside (pretty-printed JSON) can break
    a block boundary; the row-count check or a parse error then sends the batch to bisection,
    where such a value is parsed on its own."""
    data = b"\n".join(values) if data is None else data
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    block = min(max(len(data) // 4, 1 << 20), _BLOCK)
    table = pj.read_json(io.BytesIO(data), parse_options=opts, read_options=pj.ReadOptions(block_size=block))
    if table.num_rows != len(values):
        raise ValueError(f"expected one JSON object per message, got {table.num_rows} for {len(values)}")
    return table


def _strip_inferred_timestamps(parsed: pa.DataType, explicit: pa.DataType | None) -> pa.DataType:
    if explicit is not None and parsed.equals(explicit):
        return parsed
    if pa.types.is_struct(parsed):
        known = {f.name: f.type for f in explicit} if explicit is not None and pa.types.is_struct(explicit) else {}
        return pa.struct([pa.field(f.name, _strip_inferred_timestamps(f.type, known.get(f.name))) for f in parsed])
    return arrow_types.timestamps_as_strings(parsed)


@lru_cache(maxsize=64)
def fast_plan(fmt: str, row_hint: pa.StructType) -> fast_decode.Plan | None:
    if fmt == "debezium-json":
        return fast_decode.envelope_plan(row_hint, debezium.SOURCE_FIELDS)
    return fast_decode.plan_for(list(row_hint), strict=True)


def parse_rows(
    values: Sequence[bytes], fmt: str, row_hint: pa.StructType | None, data: bytes | None
) -> tuple[pa.Table, pa.StructType]:
    """Parse values into row columns (CDC columns included); returns the raw row type too."""
    plan = fast_plan(fmt, row_hint) if row_hint is not None and fast_decode.AVAILABLE else None
    known = fast_decode.parse(values, plan) if plan is not None else None
    if known is not None:  # every value has the shape the table knows (the usual case)
        return debezium.flatten(known) if fmt == "debezium-json" else (known, pa.struct(list(known.schema)))
    if fmt == "debezium-json":
        schema = debezium.envelope_parse_schema(row_hint)
        table = read_json(values, schema, data)
        fixed = pa.schema(
            [
                pa.field(
                    f.name,
                    _strip_inferred_timestamps(f.type, schema.field(f.name).type if f.name in schema.names else None),
                )
                for f in table.schema
            ]
        )
        if not fixed.equals(table.schema):
            table = read_json(values, fixed)
        return debezium.flatten(table)
    schema = pa.schema(list(row_hint)) if row_hint is not None else None
    table = read_json(values, schema, data)
    fixed = _strip_inferred_timestamps(pa.struct(list(table.schema)), row_hint)
    if not fixed.equals(pa.struct(list(table.schema))):
        table = read_json(values, pa.schema(list(fixed)))
    return table, pa.struct(list(table.schema))


def merge_hint(hint: pa.StructType | None, seen: pa.StructType) -> pa.StructType:
    if hint is None:
        return seen
    known = set(hint.names)
    return pa.struct(list(hint) + [f for f in seen if f.name not in known])


def bisect(
    values: list[bytes],
    index: list[int],
    parse: Parser,
    hint: pa.StructType | None,
    bad: dict[int, str],
    joined: bytes | None = None,
    *,
    infer: bool = False,
) -> tuple[list[Chunk], pa.StructType | None]:
    try:
        rows, row_type = parse(values, hint, joined)
        return [Chunk(rows, index, row_type)], merge_hint(hint, row_type)
    except Exception as exc:  # any failure of this slice: find the messages that cause it
        if len(values) == 1:
            return _alone(values, index, parse, hint, bad, exc, infer)
    mid = len(values) // 2
    left, hint = bisect(values[:mid], index[:mid], parse, hint, bad, infer=infer)
    right, hint = bisect(values[mid:], index[mid:], parse, hint, bad, infer=infer)
    return left + right, hint


def _alone(values: list[bytes], index: list[int], parse: Parser, hint: pa.StructType | None, bad: dict[int, str],
           exc: Exception, infer: bool) -> tuple[list[Chunk], pa.StructType | None]:  # fmt: skip
    """One record the table's types refused. Schemaless JSON declares no type, so its integer
    columns are read as they are once more (``infer``; the rest keep the table's types): a number
    with a fraction in an integer column is a lossless widening (the table evolves; later records
    still parse their integers as integers, so none is read through a double); anything else that
    does not fit stays refused (text is never read as a number), named by its column and both
    types."""
    if infer and hint is not None and any(pa.types.is_integer(f.type) for f in hint):
        loose = pa.struct([f for f in hint if not pa.types.is_integer(f.type)])
        try:
            rows, row_type = parse(values, loose if loose.num_fields else None, None)
        except Exception:
            pass
        else:
            if arrow_types.widenings(pa.schema(list(hint)), rows.schema):  # later records keep the
                return [Chunk(rows, index, row_type)], merge_hint(hint, row_type)  # integer type: exact
    error = f"{type(exc).__name__}: {exc}"
    if infer and hint is not None:  # read as it is, the table's types name the column and both types
        try:
            parse(values, None, None)
        except arrow_types.SchemaConflict as conflict:
            error = f"SchemaConflict: {conflict}"
        except Exception:  # the parser's own message stays
            pass
    bad[index[0]] = debezium.control_record(values[0]) or error
    return [], hint
