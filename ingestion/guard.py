"""Guard: what may reach the lake. Runs on decoded rows, before they are buffered and written.

0. Unnest: the fields of configured struct columns (an outbox event's ``payload``) become columns.
1. Input limits: a record whose value nests deeper than ``max_nesting_depth``, or that brings a
   column beyond the ``max_new_columns_per_batch`` new ones a batch may add to the table, becomes a
   dead letter (stage ``limits``); the offending columns are dropped, so they never enter the
   schema. (Size, and depths that would crash the parser, are checked on the raw bytes in ``decode``.)
2. Column rules: ``drop`` / ``hash`` (salted SHA-256, hex) / ``mask`` named columns, so protected
   data (e-mail, phone, card fields) is never written in clear. Dead letters of such a table keep
   only a digest of their raw value unless ``security.keep_raw_dead_letters``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc

from lakeport.ingestion.records import META_COLUMNS, Batch, DeadLetter, Decoded, RawMessage
from lakeport.settings import Settings
from lakeport.settings.security import ColumnRule

META = frozenset(META_COLUMNS)


@dataclass(frozen=True)
class GuardOptions:
    rules: tuple[ColumnRule, ...] = ()
    salt: bytes = b""
    max_nesting_depth: int = 16
    max_new_columns: int = 100
    known_columns: frozenset[str] | None = None  # the table's columns so far (None: a new table)
    keep_raw_dead_letters: bool = False
    unnest: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings, table: str, known: pa.Schema | None) -> GuardOptions:
        """The options of ``table`` as configured, given the columns it has so far."""
        ing, sec, config = settings.ingest, settings.security, settings.table(table)
        return cls(
            rules=tuple(config.column_rules),
            salt=sec.hash_salt.get_secret_value().encode(),
            max_nesting_depth=ing.max_nesting_depth,
            max_new_columns=ing.max_new_columns_per_batch,
            known_columns=frozenset(known.names) if known is not None else None,
            keep_raw_dead_letters=sec.keep_raw_dead_letters,
            unnest=tuple(config.unnest),
        )


def depth(t: pa.DataType) -> int:
    """Nesting depth of a type: 0 for scalars, 1 + the deepest child for structs, lists and maps
    (so ``{"a": 1}`` as a row's column value ``a`` has depth 1, like its JSON text)."""
    if pa.types.is_struct(t):
        return 1 + max((depth(f.type) for f in t), default=0)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return 1 + depth(t.value_type)
    if pa.types.is_map(t):
        return 1 + max(depth(t.key_type), depth(t.item_type))
    return 0


def _offenders(rows: pa.Table, columns: Sequence[str]) -> pa.Array:
    """Row mask: a non-null value in any of ``columns``."""
    mask = pa.array([False] * rows.num_rows)
    for c in columns:
        mask = pc.or_(mask, pc.is_valid(rows[c]).combine_chunks())
    return mask


def _messages(batch: Batch) -> dict[tuple[str, int, int], RawMessage]:
    return {(p.topic, p.partition, p.offsets[i]): p.message(i) for p in batch.parts for i in range(p.size)}


def _limits(rows: pa.Table, opts: GuardOptions) -> tuple[pa.Table, pa.Array | None, dict[str, str]]:
    """(rows without offending columns, mask of rows to reject, column -> reason)."""
    reasons: dict[str, str] = {}
    for f in rows.schema:  # the row itself is one level: a column of depth d nests d + 1 deep
        if f.name not in META and depth(f.type) + 1 > opts.max_nesting_depth:
            reasons[f.name] = f"nesting depth {depth(f.type) + 1} exceeds max_nesting_depth={opts.max_nesting_depth}"
    if opts.known_columns is not None:
        new = [c for c in rows.column_names if c not in opts.known_columns and c not in META and c not in reasons]
        for c in new[opts.max_new_columns :]:
            reasons[c] = f"new column {c!r} exceeds max_new_columns_per_batch={opts.max_new_columns}"
    if not reasons:
        return rows, None, reasons
    return rows.drop_columns(list(reasons)), _offenders(rows, list(reasons)), reasons


def _protect(rows: pa.Table, rules: Sequence[ColumnRule], salt: bytes) -> pa.Table:
    for rule in rules:
        if rule.column not in rows.column_names:
            continue
        if rule.action == "drop":
            rows = rows.drop_columns([rule.column])
            continue
        values = pc.cast(rows[rule.column], pa.string()).to_pylist()
        if rule.action == "hash":
            out = [None if v is None else hashlib.sha256(salt + v.encode()).hexdigest() for v in values]
        else:
            out = [None if v is None else "*" * max(len(v) - rule.keep_last, 0) + v[len(v) - rule.keep_last :]
                   if rule.keep_last else "*" * len(v) for v in values]  # fmt: skip
        i = rows.column_names.index(rule.column)
        rows = rows.set_column(i, rule.column, pa.array(out, pa.string()))
    return rows


def _unnest(rows: pa.Table, columns: Sequence[str]) -> pa.Table:
    """Lift the fields of struct ``columns`` to top-level columns (a field never replaces a column
    that exists already: it is then kept as ``<struct>_<field>``)."""
    for name in columns:
        if name not in rows.column_names or not pa.types.is_struct(rows.schema.field(name).type):
            continue
        struct = rows[name].combine_chunks()
        i = rows.column_names.index(name)
        rows = rows.remove_column(i)
        for f_index, f in enumerate(struct.type):
            target = f.name if f.name not in rows.column_names else f"{name}_{f.name}"
            values = pc.struct_field(struct, [f_index])
            rows = rows.append_column(target, values)
    return rows


def _withheld(message: RawMessage) -> RawMessage:
    value = message.value or b""
    note = (
        f"raw value withheld (table has column rules): {len(value)} bytes, sha256 {hashlib.sha256(value).hexdigest()}"
    )
    return replace(message, value=note.encode())


def guard(batch: Batch, decoded: Decoded, *, options: GuardOptions) -> Decoded:
    """Apply limits and column rules to ``decoded`` (rows of ``batch``); never raises for bad records."""
    source = _unnest(decoded.rows, options.unnest) if options.unnest else decoded.rows
    rows, reject, reasons = _limits(source, options)
    dead = list(decoded.dead_letters)
    if reject is not None and pc.any(reject).as_py():
        by_pos = _messages(batch)
        bad = source.filter(reject)
        why = "; ".join(sorted(set(reasons.values())))
        for topic, part, off in zip(bad["_topic"].to_pylist(), bad["_partition"].to_pylist(),
                                    bad["_offset"].to_pylist(), strict=True):  # fmt: skip
            dead.append(DeadLetter(decoded.table, by_pos[(topic, part, off)], why, "limits"))
        rows = rows.filter(pc.invert(reject))
        if options.known_columns is not None:  # new columns only the rejected records had: gone with them
            empty = [c for c in rows.column_names if c not in options.known_columns and c not in META
                     and rows[c].null_count == rows.num_rows]  # fmt: skip
            rows = rows.drop_columns(empty)
    if options.rules:
        rows = _protect(rows, options.rules, options.salt)
        if not options.keep_raw_dead_letters:
            dead = [replace(d, message=_withheld(d.message)) for d in dead]
    if rows is decoded.rows and len(dead) == len(decoded.dead_letters):
        return decoded
    return replace(decoded, rows=rows, dead_letters=tuple(dead))
