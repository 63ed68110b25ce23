"""Debezium envelopes: the ``schemas.enable`` wrapper, flattening, control records, old keys.

A change event ``{"before":…, "after":…, "op":…, "source":{…}, "ts_ms":…}`` (optionally wrapped
as ``{"schema":…, "payload":…}``) becomes one row: the row image (``after``, or ``before`` for
deletes) as columns, plus ``_op`` and the source position fields. Connect's types and logical
types: :mod:`lakeport.ingestion.connect_types`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakeport.ingestion.records import CDC_COLUMNS, UNAVAILABLE, UNAVAILABLE_B64

SOURCE_COLUMNS = {
    "_source_ts_ms": ("ts_ms", pa.int64()),
    "_source_lsn": ("lsn", pa.int64()),
    "_source_tx_id": ("txId", pa.int64()),
    "_source_snapshot": ("snapshot", pa.string()),
    "_source_db": ("db", pa.string()),
    "_source_schema": ("schema", pa.string()),
    "_source_table": ("table", pa.string()),
}
assert ("_op", *SOURCE_COLUMNS) == CDC_COLUMNS, "ingestion.records.CDC_COLUMNS names these"
SOURCE_FIELDS = tuple(pa.field(name, dtype) for name, dtype in SOURCE_COLUMNS.values())  # what is read
_SOURCE_PARSE = pa.struct([("ts_ms", pa.int64()), ("lsn", pa.int64()), ("txId", pa.int64())])
OPS = frozenset({"c", "u", "d", "r", "t"})


class _Wrapper(msgspec.Struct, gc=False):
    schema: msgspec.Raw = msgspec.Raw(b"null")
    payload: msgspec.Raw = msgspec.Raw(b"null")


_wrapper_decoder = msgspec.json.Decoder(_Wrapper)


_WRAPPED = b'{"schema"'
_SPACES = np.frombuffer(b" \t\n\r\x0b\x0c", np.uint8)


def maybe_wrapped(value: bytes) -> bool:
    """Cheap pre-check (no copy): wrapped, or leading whitespace that needs the full check."""
    return value.startswith(_WRAPPED) or value[:1].isspace()


def any_wrapped(joined: bytes, values: list[bytes]) -> bool:
    """Whether any of the newline-joined ``values`` may be wrapped (``maybe_wrapped`` of each),
    vectorized over the joined bytes: no Python call per message."""
    lengths = np.fromiter(map(len, values), np.int64, len(values))
    starts = np.zeros(len(values), np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    buf = np.frombuffer(joined, np.uint8)
    first = buf[starts]
    if np.isin(first, _SPACES).any():
        return True
    candidates = starts[(first == _WRAPPED[0]) & (lengths >= len(_WRAPPED))]
    for k in range(1, len(_WRAPPED)):
        candidates = candidates[buf[candidates + k] == _WRAPPED[k]]
    return bool(candidates.size)


def is_wrapped(value: bytes) -> bool:
    return value[:48].lstrip().startswith(b'{"schema"')


def unwrap(value: bytes) -> tuple[bytes, bytes]:
    """(schema JSON, payload JSON) of a ``schemas.enable=true`` message; raises if malformed."""
    wrapper = _wrapper_decoder.decode(value)
    return bytes(wrapper.schema), bytes(wrapper.payload)


_CONTROL = {  # Debezium's records that are not change events, by their Connect schema name or shape
    b"io.debezium.connector.common.TransactionMetadataValue": "a transaction-metadata record (BEGIN/END)",
    b"io.debezium.connector.common.Heartbeat": "a heartbeat",
}


def control_record(value: bytes) -> str | None:
    """Why ``value`` is a Debezium control record and not a change event, or None: transaction
    metadata (``<prefix>.transaction``) and heartbeats (``__debezium-heartbeat.<prefix>``) belong on
    their own topics, which a change-event table must not subscribe to."""
    head = value[:4096]
    kind = next((what for name, what in _CONTROL.items() if name in head), None)
    begin_or_end = b'"status":"BEGIN"' in head or b'"status":"END"' in head
    if kind is None and b'"op"' not in head and begin_or_end:
        kind = _CONTROL[b"io.debezium.connector.common.TransactionMetadataValue"]
    if kind is None and b'"op"' not in head and head.strip().startswith(b'{"ts_ms"') and head.count(b":") == 1:
        kind = _CONTROL[b"io.debezium.connector.common.Heartbeat"]
    if kind is None:
        return None
    return f"not a change event: Debezium's {kind}; subscribe the table to change-event topics only"


def envelope_parse_schema(row: pa.StructType | None) -> pa.Schema:
    fields = [pa.field("op", pa.string()), pa.field("source", _SOURCE_PARSE)]
    if row is not None and row.num_fields:
        fields += [pa.field("before", row), pa.field("after", row)]
    return pa.schema(fields)


def _child(struct_col: pa.ChunkedArray | None, name: str, n: int) -> pa.ChunkedArray | None:
    if struct_col is None or not pa.types.is_struct(struct_col.type):
        return None
    index = struct_col.type.get_field_index(name)
    if index < 0:
        return None
    # The child as stored (zero-copy). The JSON reader stores null children under a null
    # struct, so this equals pc.struct_field without recomputing validity bitmaps.
    return pa.chunked_array([chunk.field(index) for chunk in struct_col.chunks], type=struct_col.type.field(index).type)


def flatten(envelopes: pa.Table) -> tuple[pa.Table, pa.StructType]:
    """Envelope table → (row image columns + CDC columns, the raw row struct type seen)."""
    n = envelopes.num_rows
    names = envelopes.column_names
    if "op" not in names:
        raise ValueError("not a Debezium change event: no 'op' field")
    op = envelopes["op"]
    if op.null_count:
        raise ValueError("not a Debezium change event: 'op' is null")
    ops = set(pc.unique(op).to_pylist())
    unknown = ops - OPS
    if unknown:
        raise ValueError(f"unknown Debezium op {sorted(unknown)[0]!r}")
    before = envelopes["before"] if "before" in names else None
    after = envelopes["after"] if "after" in names else None
    row_fields: dict[str, pa.DataType] = {}
    for side in (after, before):
        if side is not None and pa.types.is_struct(side.type):
            for f in side.type:
                row_fields.setdefault(f.name, f.type)
    is_delete = pc.equal(op, "d")
    any_delete = "d" in ops
    columns: dict[str, pa.ChunkedArray] = {}
    for name, dtype in row_fields.items():
        a, b = _child(after, name, n), _child(before, name, n)
        if a is not None and b is not None and not a.type.equals(b.type):
            if pa.types.is_null(a.type):
                a = a.cast(b.type)
            elif pa.types.is_null(b.type):
                b = b.cast(a.type)
            else:
                raise ValueError(f"field {name!r} has type {a.type} in 'after' but {b.type} in 'before'")
        a = a if a is not None else pa.chunked_array([pa.nulls(n, dtype)])
        b = b if b is not None else pa.chunked_array([pa.nulls(n, a.type)])
        columns[name] = pc.if_else(is_delete, b, a) if any_delete else a
    cdc: dict[str, pa.ChunkedArray] = {"_op": op}
    source = envelopes["source"] if "source" in names else None
    for column, (field, dtype) in SOURCE_COLUMNS.items():
        value = _child(source, field, n)
        cdc[column] = pa.chunked_array([pa.nulls(n, dtype)]) if value is None else value.cast(dtype)
    table = pa.table({**cdc, **columns})
    return table, pa.struct([pa.field(k, v) for k, v in row_fields.items()])


OLD_KEY_HEADER = "__debezium.oldkey"  # on the create of a primary-key change: the key before it
_PLACEHOLDERS = (UNAVAILABLE.encode(), UNAVAILABLE_B64.encode())  # text, and bytes in JSON


def old_keys(
    ops: pa.ChunkedArray, values: Sequence[bytes | None], take: Sequence[int], headers: Callable[[int], list[Any]]
) -> pa.Array | None:
    """The ``_old_key`` column: for a create that carries an unchanged-TOAST placeholder, the old
    key its ``__debezium.oldkey`` header names (a primary-key change: the value is the old key's);
    None elsewhere. None when no row has one, so ordinary batches read no header at all."""
    is_create = pc.fill_null(pc.equal(ops, "c"), False).to_numpy(zero_copy_only=False)
    found: dict[int, str] = {}
    for row in np.flatnonzero(is_create).tolist():
        value = values[take[row]] or b""
        if any(p in value for p in _PLACEHOLDERS):
            old = next((v for k, v in headers(take[row]) if k == OLD_KEY_HEADER and v), None)
            if old is not None:
                found[row] = bytes(old).decode("utf-8", "replace")
    if not found:
        return None
    return pa.array([found.get(row) for row in range(len(take))], pa.string())
