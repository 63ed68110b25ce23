"""Decode: a Batch of raw Kafka values → one Arrow table plus dead-letter rows.

The fast path parses every value of the batch in one ``pyarrow.json.read_json`` call over the
newline-joined values (multi-threaded C++, no Python object per message). If that fails, the batch
is bisected until the offending messages are isolated; they become dead letters and everything else
lands. Later halves are parsed with the schema the earlier halves produced, so a type conflict is
pinned on the message that brought it ("first type wins", as in the Delta table).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial

import pyarrow as pa
import pyarrow.json as pj

from lakeport.ingestion import arrow_types, connect_types, debezium, fast_decode, precheck
from lakeport.ingestion.records import KEY, META_COLUMNS, OLD_KEY, Batch, DeadLetter, Decoded, key_column

RESERVED = frozenset(META_COLUMNS) | frozenset(debezium.CDC_COLUMNS)
_BLOCK = 8 << 20
_TOMBSTONE = "__lakeport_tombstone"
Parser = Callable[[list[bytes], pa.StructType | None, bytes | None], tuple[pa.Table, pa.StructType]]


@dataclass(frozen=True)
class DecodeOptions:
    format: str
    table_schema: pa.Schema | None = None  # the Delta table's schema, when it exists
    max_message_bytes: int = 1 << 20
    tombstones: str = "record"


@dataclass
class _Chunk:
    """Parsed rows for some message indexes, and the raw row type that parsing settled on."""

    rows: pa.Table
    index: list[int]
    row_type: pa.StructType


def _read_json(values: Sequence[bytes], schema: pa.Schema | None, data: bytes | None = None) -> pa.Table:
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
def _fast_plan(fmt: str, row_hint: pa.StructType) -> fast_decode.Plan | None:
    if fmt == "debezium-json":
        return fast_decode.envelope_plan(row_hint, debezium.SOURCE_FIELDS)
    return fast_decode.plan_for(list(row_hint), strict=True)


def _parse_rows(
    values: Sequence[bytes], fmt: str, row_hint: pa.StructType | None, data: bytes | None
) -> tuple[pa.Table, pa.StructType]:
    """Parse values into row columns (CDC columns included); returns the raw row type too."""
    plan = _fast_plan(fmt, row_hint) if row_hint is not None and fast_decode.AVAILABLE else None
    known = fast_decode.parse(values, plan) if plan is not None else None
    if known is not None:  # every value has the shape the table knows (the usual case)
        return debezium.flatten(known) if fmt == "debezium-json" else (known, pa.struct(list(known.schema)))
    if fmt == "debezium-json":
        schema = debezium.envelope_parse_schema(row_hint)
        table = _read_json(values, schema, data)
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
            table = _read_json(values, fixed)
        return debezium.flatten(table)
    schema = pa.schema(list(row_hint)) if row_hint is not None else None
    table = _read_json(values, schema, data)
    fixed = _strip_inferred_timestamps(pa.struct(list(table.schema)), row_hint)
    if not fixed.equals(pa.struct(list(table.schema))):
        table = _read_json(values, pa.schema(list(fixed)))
    return table, pa.struct(list(table.schema))


def _merge_hint(hint: pa.StructType | None, seen: pa.StructType) -> pa.StructType:
    if hint is None:
        return seen
    known = set(hint.names)
    return pa.struct(list(hint) + [f for f in seen if f.name not in known])


def _bisect(
    values: list[bytes],
    index: list[int],
    parse: Parser,
    hint: pa.StructType | None,
    bad: dict[int, str],
    joined: bytes | None = None,
    *,
    infer: bool = False,
) -> tuple[list[_Chunk], pa.StructType | None]:
    try:
        rows, row_type = parse(values, hint, joined)
        return [_Chunk(rows, index, row_type)], _merge_hint(hint, row_type)
    except Exception as exc:  # any failure of this slice: find the messages that cause it
        if len(values) == 1:
            return _alone(values, index, parse, hint, bad, exc, infer)
    mid = len(values) // 2
    left, hint = _bisect(values[:mid], index[:mid], parse, hint, bad, infer=infer)
    right, hint = _bisect(values[mid:], index[mid:], parse, hint, bad, infer=infer)
    return left + right, hint


def _alone(values: list[bytes], index: list[int], parse: Parser, hint: pa.StructType | None, bad: dict[int, str],
           exc: Exception, infer: bool) -> tuple[list[_Chunk], pa.StructType | None]:  # fmt: skip
    """One record the table's types refused. Schemaless JSON declares no type, so its integer
    columns are read as they are once more (``infer``; the rest keep the table's types): a number
    with a fraction in an integer column is a lossless widening (the table evolves, and later
    records parse with the wider type); anything else that does not fit stays refused (text is
    never read as a number, and integers are never read through a double)."""
    if infer and hint is not None and any(pa.types.is_integer(f.type) for f in hint):
        loose = pa.struct([f for f in hint if not pa.types.is_integer(f.type)])
        try:
            rows, row_type = parse(values, loose if loose.num_fields else None, None)
        except Exception:
            pass
        else:
            wider = arrow_types.widenings(pa.schema(list(hint)), rows.schema)
            if wider:
                widened = pa.struct([pa.field(f.name, wider.get(f.name, f.type)) for f in hint])
                return [_Chunk(rows, index, row_type)], _merge_hint(widened, row_type)
    bad[index[0]] = debezium.control_record(values[0]) or f"{type(exc).__name__}: {exc}"
    return [], hint


def _row_hint(options: DecodeOptions) -> pa.StructType | None:
    schema = arrow_types.parse_schema(options.table_schema, skip=RESERVED)
    return pa.struct(list(schema)) if schema is not None and len(schema) else None


def _parse_groups(
    values: list[bytes | None], todo: list[int], options: DecodeOptions, bad: dict[int, str]
) -> list[_Chunk]:
    """Split wrapped Debezium messages by their Connect schema, then parse each group."""
    groups: dict[bytes | None, list[int]] = {}
    payloads: dict[int, bytes] = {}
    clean: list[bytes] = values if len(todo) == len(values) else [values[i] for i in todo]  # type: ignore[assignment, misc]
    fast = _fast_chunk(clean, todo, options)
    if fast is not None:
        return [fast]
    joined = b"\n".join(clean)
    if not joined.isascii():
        todo = precheck.utf8(values, todo, bad)
        clean = [values[i] for i in todo]  # type: ignore[misc]
        joined = b"\n".join(clean)
    if options.format != "debezium-json" or not debezium.any_wrapped(joined, clean):
        return _parse_group(clean, todo, None, options, bad, joined, options.table_schema)
    for i in todo:
        value = values[i] or b""
        if options.format == "debezium-json" and debezium.is_wrapped(value):
            try:
                wrapper_schema, payloads[i] = debezium.unwrap(value)
            except Exception as exc:
                bad[i] = f"malformed schema wrapper: {exc}"
                continue
            groups.setdefault(wrapper_schema, []).append(i)
        else:
            payloads[i] = value
            groups.setdefault(None, []).append(i)
    chunks: list[_Chunk] = []
    target = options.table_schema
    for schema_json, index in groups.items():  # later groups conform to what earlier ones produced
        found = _parse_group([payloads[i] for i in index], index, schema_json, options, bad, None, target)
        chunks += found
        schemas = ([target] if target is not None else []) + [c.rows.schema for c in found]
        if schemas:
            target = arrow_types.unify(schemas)
    return chunks


def _fast_chunk(values: list[bytes], index: list[int], options: DecodeOptions) -> _Chunk | None:
    """The whole batch at once, without joining it, when every value is valid UTF-8 and has the
    shape the table knows (the usual case); None sends it down the general path."""
    hint = _row_hint(options)
    plan = _fast_plan(options.format, hint) if hint is not None and fast_decode.AVAILABLE else None
    known = fast_decode.parse(values, plan, check_utf8=True) if plan is not None else None
    if known is None:
        return None
    try:  # e.g. an envelope without "op" (a wrapped message): the general path tells which
        rows, row_type = debezium.flatten(known) if options.format == "debezium-json" else (known, hint)
    except ValueError:
        return None
    rows = _rename_reserved(arrow_types.make_storable(rows), options.format)
    return _Chunk(arrow_types.conform(rows, options.table_schema), index, row_type)


def _parse_group(
    payloads: list[bytes],
    index: list[int],
    schema_json: bytes | None,
    options: DecodeOptions,
    bad: dict[int, str],
    joined: bytes | None,
    target: pa.Schema | None,
) -> list[_Chunk]:
    hint = _row_hint(options)
    conversions: tuple[tuple[str, connect_types.Conversion], ...] = ()
    if schema_json is not None:
        try:
            hint, conversions = connect_types.connect_row(schema_json)
        except Exception as exc:
            reason = debezium.control_record(schema_json or b"")  # BEGIN/END, heartbeats: named, not "unusable"
            bad.update({i: reason or f"unusable Connect schema: {exc}" for i in index})
            return []

    def parse(vals: list[bytes], h: pa.StructType | None, data: bytes | None) -> tuple[pa.Table, pa.StructType]:
        rows, row_type = _parse_rows(vals, options.format, h, data)
        rows = arrow_types.make_storable(connect_types.apply_logical(rows, conversions))
        rows = _rename_reserved(rows, options.format)
        return arrow_types.conform(rows, target), row_type

    found, _ = _bisect(payloads, index, parse, hint, bad, joined, infer=schema_json is None)
    return found


def _rename_reserved(rows: pa.Table, fmt: str) -> pa.Table:
    own = set(debezium.CDC_COLUMNS) if fmt == "debezium-json" else set()
    names = [f"{n}_value" if n in RESERVED and n not in own else n for n in rows.column_names]
    return rows.rename_columns(names) if names != rows.column_names else rows


def _metadata(batch: Batch, take: list[int], now: datetime) -> pa.Table:
    topics, parts, offsets, stamps, keys = [], [], [], [], []
    for part in batch.parts:
        topics += [part.topic] * part.size
        parts += [part.partition] * part.size
        offsets += part.offsets
        stamps += part.timestamps_ms
        keys += part.keys
    if take != list(range(len(offsets))):
        topics, parts = [topics[i] for i in take], [parts[i] for i in take]
        offsets, stamps, keys = (
            [offsets[i] for i in take],
            [stamps[i] for i in take],
            [keys[i] for i in take],
        )
    n = len(take)
    return pa.table(
        {
            "_topic": pa.array(topics, pa.string()),
            "_partition": pa.array(parts, pa.int32()),
            "_offset": pa.array(offsets, pa.int64()),
            "_timestamp": pa.array(stamps, pa.int64())
            .cast(pa.timestamp("ms", tz="UTC"))
            .cast(pa.timestamp("us", tz="UTC")),
            KEY: key_column(keys),
            "_ingested_at": pa.repeat(pa.scalar(now, pa.timestamp("us", tz="UTC")), n),
        }
    )


def decode(batch: Batch, *, options: DecodeOptions, now: datetime | None = None) -> Decoded:
    """Decode one batch; never raises for bad records (they are returned as dead letters)."""
    now = now or datetime.now(UTC)
    values: list[bytes | None] = [v for part in batch.parts for v in part.values]
    bad: dict[int, str] = {}
    todo, tombstones = precheck.validate(values, max_message_bytes=options.max_message_bytes, bad=bad)
    chunks = _parse_groups(values, todo, options, bad) if todo else []
    if tombstones and options.tombstones == "record":
        marker = {"_op": pa.nulls(len(tombstones), pa.string())} if options.format == "debezium-json" else {}
        marker[_TOMBSTONE] = pa.nulls(len(tombstones), pa.bool_())
        chunks.append(_Chunk(pa.table(marker), tombstones, pa.struct([])))
    pieces, take = [], []
    for chunk in chunks:
        pieces.append(chunk.rows)
        take += chunk.index
    rows = _assemble(batch, pieces, take, now)
    if options.format == "debezium-json" and "_op" in rows.column_names:
        moved = debezium.old_keys(rows["_op"], values, take, partial(_headers, batch))
        rows = rows if moved is None else rows.append_column(OLD_KEY, moved)
    messages = [m for part in batch.parts for m in (part.message(i) for i in range(part.size))] if bad else []
    dead = tuple(
        DeadLetter(table=batch.table, message=messages[i], error=error, stage=_stage(error))
        for i, error in sorted(bad.items())
    )  # fmt: skip
    return Decoded(table=batch.table, rows=rows, dead_letters=dead, ranges=dict(batch.ranges), messages=len(values),
                   raw_bytes=batch.raw_bytes)  # fmt: skip


# A value whose type does not fit its column (a type change in the source, e.g. ALTER … TYPE): the
# parser (explicit column types) or the cast refused it.
_NARROWING = ("SchemaConflict", "was truncated converting", "does not fit in precision", "would cause data loss",
              "Integer value", "out of bounds", ") changed from ", "Failed to convert JSON to")  # fmt: skip


def _stage(error: str) -> str:
    if "exceeds" in error:
        return "limits"
    return "schema" if any(hint in error for hint in _NARROWING) else "decode"


def _headers(batch: Batch, index: int) -> list[tuple[str, bytes]]:
    """The headers of the batch's ``index``-th record (over all its parts)."""
    for part in batch.parts:
        if index < part.size:
            return part.headers(index)
        index -= part.size
    return []


def _assemble(batch: Batch, pieces: list[pa.Table], take: list[int], now: datetime) -> pa.Table:
    meta = _metadata(batch, take, now)
    if not pieces:
        return meta
    data = arrow_types.concat(pieces)
    if _TOMBSTONE in data.column_names:
        data = data.drop_columns([_TOMBSTONE])
    for name, col in zip(data.column_names, data.columns, strict=True):
        meta = meta.append_column(name, col)
    return meta
