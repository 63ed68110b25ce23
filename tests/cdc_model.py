"""A reference model of CDC into silver and history, in plain Python, and a delivery adversary.

- ``source_history`` plays a source database: inserts, updates (some with unchanged-TOAST
  placeholders in a string, a bytes and a decimal column), deletes (with REPLICA IDENTITY
  DEFAULT fillers), re-inserts, primary-key changes (delete + create), snapshot reads and
  truncates, over one or several source databases.
- ``current`` and ``versions`` are what silver and history must hold once a set of those changes
  has landed, whatever order and however often they landed.
- ``deliver`` is at-least-once Kafka: each key's changes on one partition in source order,
  null-key truncates on any partition, partitions interleaved arbitrarily, and replays of any
  earlier range of a partition (at new offsets, as a restarted connector sends them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa

from lakeport.ingestion.records import UNAVAILABLE  # Debezium's placeholder of an unchanged TOAST value

COLUMNS = ("name", "_version", "doc", "blob", "amount")  # source columns; `_version` is the source's
BRONZE = pa.schema(
    [
        ("_topic", pa.string()),
        ("_partition", pa.int32()),
        ("_offset", pa.int64()),
        ("_op", pa.string()),
        ("_source_lsn", pa.int64()),
        ("_source_ts_ms", pa.int64()),
        ("_source_db", pa.string()),
        ("_toast_unavailable", pa.list_(pa.string())),
        ("id", pa.int64()),
        ("name", pa.string()),
        ("_version", pa.int64()),
        ("doc", pa.string()),
        ("blob", pa.binary()),
        ("amount", pa.decimal128(12, 2)),
    ]
)
Row = dict[str, object]


@dataclass(frozen=True)
class Change:
    pos: int  # LSN
    op: str  # c u d r t
    db: str
    key: int | None  # None: a truncate
    row: Row | None = field(default=None, compare=False)  # the image as sent (placeholders, fillers)
    toast: tuple[str, ...] = ()  # columns whose value was unchanged and not sent

    @property
    def ts_ms(self) -> int:
        return self.pos * 10


@dataclass
class _Db:
    rows: dict[int, Row] = field(default_factory=dict)


def source_history(rnd: random.Random, *, steps: int, dbs: tuple[str, ...] = ("a",), keys: int = 5) -> list[Change]:
    state = {db: _Db() for db in dbs}
    pos, out = 100, []

    def emit(op: str, db: str, key: int | None, row: Row | None = None, toast: tuple[str, ...] = ()) -> None:
        nonlocal pos
        pos += rnd.randint(1, 3)
        out.append(Change(pos, op, db, key, row, toast))

    def fresh(key: int) -> Row:
        return {
            "id": key,
            "name": rnd.choice(["ann", "bob", "cy", ""]),
            "_version": rnd.randint(0, 9),
            "doc": rnd.choice(["long text " * 3, "other long text", None]),
            "blob": rnd.choice([b"\x00\xffbytes", b"more", None]),
            "amount": Decimal(rnd.randint(-99_999, 99_999)) / 100,
        }

    for _ in range(steps):
        db = rnd.choice(dbs)
        rows = state[db].rows
        roll = rnd.random()
        if roll < 0.06:
            emit("t", db, None)
            rows.clear()
        elif roll < 0.45 or not rows:
            key = rnd.choice([k for k in range(1, keys + 1) if k not in rows] or [None])
            if key is None:
                continue
            rows[key] = fresh(key)
            emit(rnd.choice("cr"), db, key, dict(rows[key]))
        elif roll < 0.8:
            key = rnd.choice(sorted(rows))
            new, toast = fresh(key), []
            for column in ("doc", "blob", "amount"):
                if rows[key][column] is not None and rnd.random() < 0.5:  # unchanged TOAST value
                    new[column] = rows[key][column]
                    toast.append(column)
            rows[key] = new
            sent = dict(new)
            for column in toast:
                sent[column] = {"doc": UNAVAILABLE, "blob": UNAVAILABLE.encode(), "amount": None}[column]
            emit("u", db, key, sent, tuple(toast))
        elif roll < 0.93:
            key = rnd.choice(sorted(rows))
            del rows[key]
            filler = {"id": key, "name": "", "_version": 0, "doc": None, "blob": None, "amount": Decimal(0)}
            emit("d", db, key, filler)
        else:  # a primary-key change: delete the old key, create the new one
            key = rnd.choice(sorted(rows))
            free = [k for k in range(1, keys + 1) if k not in rows]
            if not free:
                continue
            row = rows.pop(key)
            emit("d", db, key, {**row})
            rows[free[0]] = {**row, "id": free[0]}
            emit("c", db, free[0], dict(rows[free[0]]))
    for db in dbs:  # a closing clean-up: deleted keys stay deleted, so replays must not bring them back
        for key in sorted(state[db].rows)[::2]:
            row = state[db].rows.pop(key)
            emit("d", db, key, {**row})
    return out


def current(changes: list[Change]) -> dict[tuple[str, int], Row]:
    """Silver's rows: the source state after the distinct changes, applied in position order."""
    state: dict[tuple[str, int], Row] = {}
    for ch in sorted(set(changes), key=lambda c: c.pos):
        if ch.op == "t":
            for k in [k for k in state if k[0] == ch.db]:
                del state[k]
        elif ch.op == "d":
            state.pop((ch.db, ch.key), None)  # type: ignore[arg-type]
        else:
            before = state.get((ch.db, ch.key), {})  # type: ignore[arg-type]
            row = {c: (before.get(c) if c in ch.toast else ch.row[c]) for c in COLUMNS}  # type: ignore[index]
            state[(ch.db, ch.key)] = row  # type: ignore[index]
    return state


def versions(changes: list[Change]) -> dict[tuple[str, int, int], tuple]:
    """History's rows: (db, key, position) -> (values..., valid_from, valid_to, is_current)."""
    distinct = sorted(set(changes), key=lambda c: c.pos)
    out: dict[tuple[str, int, int], tuple] = {}
    filled: dict[tuple[str, int], Row] = {}
    for i, ch in enumerate(distinct):
        if ch.op in ("t", "d"):
            continue
        before = filled.get((ch.db, ch.key), {})  # type: ignore[arg-type]
        row = {c: (before.get(c) if c in ch.toast else ch.row[c]) for c in COLUMNS}  # type: ignore[index]
        filled[(ch.db, ch.key)] = row  # type: ignore[index]
        closer = next(
            (n for n in distinct[i + 1 :] if n.db == ch.db and (n.key == ch.key or n.op == "t")),
            None,
        )
        valid_to = None if closer is None else _ts(closer.ts_ms)
        out[(ch.db, ch.key, ch.pos)] = (*row.values(), _ts(ch.ts_ms), valid_to, closer is None)  # type: ignore[misc]
    return out


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class Delivered:
    partition: int
    change: Change


def deliver(rnd: random.Random, changes: list[Change], *, partitions: int, replays: int) -> list[Delivered]:
    """At-least-once delivery of ``changes``: the order and the copies a consumer may read."""
    queues: list[list[Change]] = [[] for _ in range(partitions)]
    for ch in changes:
        p = rnd.randrange(partitions) if ch.key is None else (ord(ch.db[0]) * 7 + ch.key) % partitions
        queues[p].append(ch)
    sent = [0] * partitions
    out: list[Delivered] = []
    budget = replays
    while any(sent[p] < len(queues[p]) for p in range(partitions)):
        p = rnd.choice([p for p in range(partitions) if sent[p] < len(queues[p])])
        take = rnd.randint(1, 3)
        out += [Delivered(p, ch) for ch in queues[p][sent[p] : sent[p] + take]]
        sent[p] = min(len(queues[p]), sent[p] + take)
        if budget and rnd.random() < 0.3:  # a connector restart: resend an earlier range
            budget -= 1
            q = rnd.randrange(partitions)
            if sent[q]:
                a = rnd.randrange(sent[q])
                b = rnd.randint(a + 1, sent[q])
                out += [Delivered(q, ch) for ch in queues[q][a:b]]
    if replays:  # a last connector restart, after everything was sent: resend an earlier range
        q = rnd.randrange(partitions)
        if sent[q]:
            a = rnd.randrange(sent[q])
            out += [Delivered(q, ch) for ch in queues[q][a : rnd.randint(a + 1, sent[q])]]
    return out


def bronze_rows(batch: list[Delivered], offsets: dict[int, int]) -> pa.Table:
    rows = []
    for d in batch:
        ch = d.change
        offsets[d.partition] = offsets.get(d.partition, -1) + 1
        image = ch.row or {"id": None, "name": None, "_version": None, "doc": None, "blob": None, "amount": None}
        rows.append(
            {
                "_topic": "shop.public.t",
                "_partition": d.partition,
                "_offset": offsets[d.partition],
                "_op": ch.op,
                "_source_lsn": ch.pos,
                "_source_ts_ms": ch.ts_ms,
                "_source_db": ch.db,
                "_toast_unavailable": ["amount"] if "amount" in ch.toast else None,
                **image,
            }
        )
    return pa.Table.from_pylist(rows, schema=BRONZE)
