"""Fast path of decoding: messages whose shape the table already knows, parsed by a small C
extension (``_fastjson``) straight into Arrow buffers, without the GIL.

It accepts a batch only when every message fits the expected fields and types exactly; for
anything else (a new column, another type, a list, escaped keys, invalid JSON) it returns None and
``decode`` takes the general path (``pyarrow.json`` with inference and bisection), which also
decides what is a dead letter. The result is the table ``pyarrow.json`` would have produced with
the same explicit schema. Without a C compiler at install time the extension is absent and every
batch takes the general path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

try:
    from lakeport.ingestion import _fastjson  # type: ignore[attr-defined]
except ImportError:  # built optionally (needs a C compiler)
    _fastjson = None

AVAILABLE = _fastjson is not None
_STRUCT, _INT64, _DOUBLE, _BOOL, _STRING, _NULL = range(6)
_LEAVES = {pa.int64(): _INT64, pa.float64(): _DOUBLE, pa.bool_(): _BOOL, pa.string(): _STRING, pa.null(): _NULL}
Plan = list[tuple[int, bytes, int, int]]


def plan_for(fields: Sequence[pa.Field], *, strict: bool) -> Plan | None:
    """The C plan of a top-level object with these fields (None: a type the fast path lacks).
    ``strict`` objects refuse unknown keys; nested structs always do."""
    plan: Plan = [(_STRUCT, b"", len(fields), int(strict))]
    for f in fields:
        if not _add(plan, f, strict=True):
            return None
    return plan


def _add(plan: Plan, field: pa.Field, *, strict: bool) -> bool:
    if any(c in field.name for c in '"\\') or not field.name.isprintable():
        return False  # a key that JSON must escape: matched by the general path only
    if pa.types.is_struct(field.type):
        plan.append((_STRUCT, field.name.encode(), field.type.num_fields, int(strict)))
        return all(_add(plan, child, strict=strict) for child in field.type)
    kind = _LEAVES.get(field.type)
    if kind is None:
        return False
    plan.append((kind, field.name.encode(), 0, 0))
    return True


def envelope_plan(row: pa.StructType, source: Sequence[pa.Field]) -> Plan | None:
    """A Debezium envelope: ``op``, ``source`` (its listed fields; others skipped), and the row
    images ``before``/``after`` (strict); other envelope keys are skipped."""
    plan: Plan = [(_STRUCT, b"", 4, 0), (_STRING, b"op", 0, 0), (_STRUCT, b"source", len(source), 0)]
    for f in source:
        if not _add(plan, f, strict=False):
            return None
    for side in ("before", "after"):
        if not _add(plan, pa.field(side, row), strict=True):
            return None
    return plan


def plan_schema(plan: Plan) -> pa.Schema:
    """The Arrow schema of a plan's result."""
    fields, _ = _fields(plan, 1, plan[0][2])
    return pa.schema(fields)


def _fields(plan: Plan, at: int, count: int) -> tuple[list[pa.Field], int]:
    out = []
    for _ in range(count):
        kind, name, children, _strict = plan[at]
        at += 1
        if kind == _STRUCT:
            inner, at = _fields(plan, at, children)
            out.append(pa.field(name.decode(), pa.struct(inner)))
        else:
            out.append(pa.field(name.decode(), next(t for t, k in _LEAVES.items() if k == kind)))
    return out, at


def parse(values: Sequence[bytes], plan: Plan, *, check_utf8: bool = False) -> pa.Table | None:
    """Parse ``values`` by ``plan``; None if any value does not fit it (or, with ``check_utf8``,
    is not valid UTF-8)."""
    if _fastjson is None or not values:
        return None
    buffers = _fastjson.decode(values if isinstance(values, list) else list(values), plan, check_utf8)
    if buffers is None:
        return None
    schema = plan_schema(plan)
    return pa.Table.from_arrays(_arrays(list(schema), iter(buffers[1:]), len(values)), schema=schema)


def _arrays(fields: list[pa.Field], buffers: Iterator[tuple[Any, ...]], n: int) -> list[pa.Array]:
    """Arrow arrays over the C buffers (per field, depth-first: null count, then (address, size,
    owner) per buffer; the owner frees the memory when Arrow lets go of it)."""
    out = []
    for f in fields:
        nulls, validity, *rest = (b if isinstance(b, int) else pa.foreign_buffer(*b) for b in next(buffers))
        mask = validity if nulls else None
        if pa.types.is_struct(f.type):
            children = _arrays(list(f.type), buffers, n)
            out.append(pa.Array.from_buffers(f.type, n, [mask], null_count=nulls, children=children))
        elif pa.types.is_null(f.type):
            out.append(pa.nulls(n))
        else:
            out.append(pa.Array.from_buffers(f.type, n, [mask, *rest], null_count=nulls))
    return out
