"""Batch: per-table buffers of raw record runs, flushed on rows, bytes or age.

Memory is bounded: a table flushes at ``rows``/``bytes``, and when all buffers together hold more
than ``total_bytes`` every buffer flushes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ingestion.records import Batch, RawBatch

TP = tuple[str, int]


@dataclass(frozen=True)
class FlushPolicy:
    rows: int
    bytes: int
    seconds: float
    total_bytes: int


@dataclass
class _TableBuffer:
    format: str
    parts: list[RawBatch] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    since: float = 0.0
    ranges: dict[TP, tuple[int, int]] = field(default_factory=dict)

    def add(self, raw: RawBatch) -> None:
        if not self.parts:
            self.since = time.monotonic()
        self.parts.append(raw)
        self.rows += raw.size
        self.bytes += raw.nbytes
        tp = (raw.topic, raw.partition)
        first, last = raw.offsets[0], raw.offsets[-1]
        if tp in self.ranges:
            first = min(first, self.ranges[tp][0])
            last = max(last, self.ranges[tp][1])
        self.ranges[tp] = (first, last)


@dataclass
class Buffer:
    policy: FlushPolicy
    _tables: dict[str, _TableBuffer] = field(default_factory=dict)

    def add(self, table: str, fmt: str, raw: RawBatch) -> None:
        if raw.size:
            self._tables.setdefault(table, _TableBuffer(fmt)).add(raw)

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self._tables.values())

    @property
    def bytes(self) -> int:
        return sum(b.bytes for b in self._tables.values())

    def ready(self, *, now: float | None = None) -> list[Batch]:
        """Batches due for writing; they are removed from the buffer."""
        now = time.monotonic() if now is None else now
        flush_all = self.bytes >= self.policy.total_bytes
        due = [
            name
            for name, b in self._tables.items()
            if b.rows
            and (
                flush_all
                or b.rows >= self.policy.rows
                or b.bytes >= self.policy.bytes
                or now - b.since >= self.policy.seconds
            )
        ]
        return [self._take(name) for name in due]

    def drain(self) -> list[Batch]:
        """Everything buffered, as batches (for shutdown and ``--once``)."""
        return [self._take(name) for name, b in list(self._tables.items()) if b.rows]

    def drop(self, partitions: list[TP]) -> int:
        """Forget buffered records of revoked partitions; the new owner re-reads them."""
        gone = set(partitions)
        dropped = 0
        for name, b in list(self._tables.items()):
            keep = [p for p in b.parts if (p.topic, p.partition) not in gone]
            if len(keep) == len(b.parts):
                continue
            dropped += b.rows
            fresh = _TableBuffer(b.format)
            for part in keep:
                fresh.add(part)
            dropped -= fresh.rows
            self._tables[name] = fresh
        return dropped

    def _take(self, name: str) -> Batch:
        b = self._tables.pop(name)
        return Batch(name, b.format, tuple(b.parts), dict(b.ranges), b.bytes)
