"""Batch: group polled record runs by table, and buffer decoded rows until a flush is due.

Records are decoded as soon as they are polled (small, cheap batches); the buffer holds only
the decoded Arrow rows, which are smaller than the raw values. A table flushes at ``rows`` rows,
``bytes`` raw bytes, or when its oldest record is ``seconds`` old; when all buffers together
exceed ``total_bytes`` everything flushes, so memory stays bounded whatever the backlog.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from lakeport.ingestion import arrow_types
from lakeport.ingestion.records import Batch, DeadLetter, Decoded, RawBatch, letters_from_rows

TP = tuple[str, int]


@dataclass(frozen=True)
class FlushPolicy:
    rows: int
    bytes: int
    seconds: float
    total_bytes: int


def group(raws: list[RawBatch], route: Callable[[str], tuple[str, str]]) -> list[Batch]:
    """One Batch per table from a poll's runs; ``route(topic)`` gives (table, format)."""
    by_table: dict[str, tuple[str, list[RawBatch]]] = {}
    for raw in raws:
        if raw.size:
            table, fmt = route(raw.topic)
            by_table.setdefault(table, (fmt, []))[1].append(raw)
    out = []
    for table, (fmt, parts) in by_table.items():
        ranges: dict[TP, tuple[int, int]] = {}
        for p in parts:
            tp, first, last = (p.topic, p.partition), p.offsets[0], p.offsets[-1]
            old = ranges.get(tp)
            ranges[tp] = (first, last) if old is None else (min(old[0], first), max(old[1], last))
        out.append(Batch(table, fmt, tuple(parts), ranges, sum(p.nbytes for p in parts)))
    return out


def merge(table: str, pieces: list[Decoded]) -> Decoded:
    """Decoded pieces of one table as one (columns that appeared later are null-filled before)."""
    if len(pieces) == 1:
        return pieces[0]
    ranges: dict[TP, tuple[int, int]] = {}
    for piece in pieces:
        for tp, (first, last) in piece.ranges.items():
            old = ranges.get(tp)
            ranges[tp] = (first, last) if old is None else (min(old[0], first), max(old[1], last))
    rows, misfits = arrow_types.concat([p.rows for p in pieces])
    dead = tuple(d for p in pieces for d in p.dead_letters) + _misfits(table, pieces, misfits)
    return Decoded(table, rows, dead, ranges, sum(p.messages for p in pieces), sum(p.raw_bytes for p in pieces))


def _misfits(table: str, pieces: list[Decoded], misfits: dict[int, str]) -> tuple[DeadLetter, ...]:
    """Rows whose values the merged type cannot hold exactly (a bigint beyond 2**53 where a later
    piece widened the column to a double), as ``schema`` dead letters."""
    out: list[DeadLetter] = []
    at = 0
    for piece in pieces:
        mine = [i - at for i in sorted(misfits) if at <= i < at + piece.rows.num_rows]
        out += letters_from_rows(
            table, piece.rows.take(pa.array(mine, pa.int64())), [misfits[at + i] for i in mine], stage="schema"
        )
        at += piece.rows.num_rows
    return tuple(out)


@dataclass
class _TableBuffer:
    pieces: list[Decoded] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    since: float = 0.0


@dataclass
class Buffer:
    policy: FlushPolicy
    _tables: dict[str, _TableBuffer] = field(default_factory=dict)

    def add(self, decoded: Decoded) -> None:
        buf = self._tables.setdefault(decoded.table, _TableBuffer())
        if not buf.pieces:
            buf.since = time.monotonic()
        buf.pieces.append(decoded)
        buf.rows += decoded.messages
        buf.bytes += decoded.raw_bytes

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self._tables.values())

    @property
    def bytes(self) -> int:
        return sum(b.bytes for b in self._tables.values())

    def ready(self, *, now: float | None = None) -> list[Decoded]:
        """Merged batches due for writing; they leave the buffer."""
        now = time.monotonic() if now is None else now
        flush_all = self.bytes >= self.policy.total_bytes
        due = [
            name
            for name, b in self._tables.items()
            if b.pieces
            and (
                flush_all
                or b.rows >= self.policy.rows
                or b.bytes >= self.policy.bytes
                or now - b.since >= self.policy.seconds
            )
        ]
        return [self._take(name) for name in due]

    def drain(self) -> list[Decoded]:
        """Everything buffered (for shutdown and ``--once``)."""
        return [self._take(name) for name, b in list(self._tables.items()) if b.pieces]

    def drop(self, partitions: list[TP]) -> int:
        """Forget buffered records of revoked partitions; their new owner re-reads them."""
        gone = set(partitions)
        dropped = 0
        for name, buf in list(self._tables.items()):
            kept = [_without(p, gone) for p in buf.pieces]
            dropped += buf.rows - sum(p.messages for p in kept)
            fresh = _TableBuffer(since=buf.since)
            for piece in kept:
                if piece.messages:
                    fresh.pieces.append(piece)
                    fresh.rows += piece.messages
                    fresh.bytes += piece.raw_bytes
            self._tables[name] = fresh
        return dropped

    def _take(self, name: str) -> Decoded:
        return merge(name, self._tables.pop(name).pieces)


def _without(piece: Decoded, gone: set[TP]) -> Decoded:
    if not gone & set(piece.ranges):
        return piece
    mask = None
    for topic, partition in gone & set(piece.ranges):
        hit = pc.and_(pc.equal(piece.rows["_topic"], topic), pc.equal(piece.rows["_partition"], partition))
        mask = hit if mask is None else pc.or_(mask, hit)
    rows = piece.rows.filter(pc.invert(mask))
    dead = tuple(d for d in piece.dead_letters if (d.message.topic, d.message.partition) not in gone)
    ranges = {tp: r for tp, r in piece.ranges.items() if tp not in gone}
    share = (rows.num_rows + len(dead)) / max(piece.rows.num_rows + len(piece.dead_letters), 1)
    return Decoded(piece.table, rows, dead, ranges, rows.num_rows + len(dead), int(piece.raw_bytes * share))
