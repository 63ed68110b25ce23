"""Decode: a Batch of raw Kafka values → one Arrow table plus dead-letter rows.

Values first pass the prechecks (size limits, tombstones, UTF-8), Debezium's schema wrappers are
grouped by their Connect schema, and each group is parsed (:mod:`ingestion.json_rows`: all values
at once, bisected to isolate the ones that fail) and given its Connect logical types. Lakeport's
metadata columns (``_topic`` … ``_key``) are added; nothing raises for a bad record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import pyarrow as pa

from lakeport.ingestion import arrow_types, connect_types, debezium, fast_decode, precheck
from lakeport.ingestion.json_rows import Chunk, bisect, fast_plan, parse_rows
from lakeport.ingestion.records import KEY, META_COLUMNS, OLD_KEY, Batch, DeadLetter, Decoded, key_column

RESERVED = frozenset(META_COLUMNS) | frozenset(debezium.CDC_COLUMNS)
_TOMBSTONE = "__lakeport_tombstone"


@dataclass(frozen=True)
class DecodeOptions:
    format: str
    table_schema: pa.Schema | None = None  # the Delta table's schema, when it exists
    max_message_bytes: int = 1 << 20
    tombstones: str = "record"


def _row_hint(options: DecodeOptions) -> pa.StructType | None:
    schema = arrow_types.parse_schema(options.table_schema, skip=RESERVED)
    return pa.struct(list(schema)) if schema is not None and len(schema) else None


def _parse_groups(
    values: list[bytes | None], todo: list[int], options: DecodeOptions, bad: dict[int, str]
) -> list[Chunk]:
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
    chunks: list[Chunk] = []
    target = options.table_schema
    for schema_json, index in groups.items():  # later groups conform to what earlier ones produced
        found = _parse_group([payloads[i] for i in index], index, schema_json, options, bad, None, target)
        chunks += found
        schemas = ([target] if target is not None else []) + [c.rows.schema for c in found]
        if schemas:
            target = arrow_types.unify(schemas)
    return chunks


def _fast_chunk(values: list[bytes], index: list[int], options: DecodeOptions) -> Chunk | None:
    """The whole batch at once, without joining it, when every value is valid UTF-8 and has the
    shape the table knows (the usual case); None sends it down the general path."""
    hint = _row_hint(options)
    plan = fast_plan(options.format, hint) if hint is not None and fast_decode.AVAILABLE else None
    known = fast_decode.parse(values, plan, check_utf8=True) if plan is not None else None
    if known is None:
        return None
    try:  # e.g. an envelope without "op" (a wrapped message): the general path tells which
        rows, row_type = debezium.flatten(known) if options.format == "debezium-json" else (known, hint)
    except ValueError:
        return None
    rows = _rename_reserved(arrow_types.make_storable(rows), options.format)
    try:
        return Chunk(arrow_types.conform(rows, options.table_schema), index, row_type)
    except (arrow_types.SchemaConflict, pa.ArrowInvalid):  # the general path finds the records that do not fit
        return None


def _parse_group(
    payloads: list[bytes],
    index: list[int],
    schema_json: bytes | None,
    options: DecodeOptions,
    bad: dict[int, str],
    joined: bytes | None,
    target: pa.Schema | None,
) -> list[Chunk]:
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
        rows, row_type = parse_rows(vals, options.format, h, data)
        rows = arrow_types.make_storable(connect_types.apply_logical(rows, conversions))
        rows = _rename_reserved(rows, options.format)
        return arrow_types.conform(rows, target), row_type

    found, _ = bisect(payloads, index, parse, hint, bad, joined, infer=schema_json is None)
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
        chunks.append(Chunk(pa.table(marker), tombstones, pa.struct([])))
    pieces, take = [], []
    for chunk in chunks:
        pieces.append(chunk.rows)
        take += chunk.index
    data, misfits = arrow_types.concat(pieces) if pieces else (None, {})
    if misfits:  # a value the batch's wider type cannot hold exactly (a bigint beyond 2**53 as a double)
        bad.update({take[i]: error for i, error in misfits.items()})
        take = [t for i, t in enumerate(take) if i not in misfits]
    rows = _assemble(batch, data, take, now)
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


def _assemble(batch: Batch, data: pa.Table | None, take: list[int], now: datetime) -> pa.Table:
    meta = _metadata(batch, take, now)
    if data is None:
        return meta
    if _TOMBSTONE in data.column_names:
        data = data.drop_columns([_TOMBSTONE])
    for name, col in zip(data.column_names, data.columns, strict=True):
        meta = meta.append_column(name, col)
    return meta
