"""Buffers flush on rows, bytes or age; revoked partitions are forgotten; memory is bounded."""

from __future__ import annotations

from ingestion.batch import Buffer, FlushPolicy
from ingestion.records import RawBatch


def run(topic: str, partition: int, first: int, n: int, size: int = 10) -> RawBatch:
    return RawBatch(topic, partition, list(range(first, first + n)), [0] * n, [None] * n, [b"x" * size] * n)


def test_flush_on_rows() -> None:
    buf = Buffer(FlushPolicy(rows=100, bytes=10**9, seconds=3600, total_bytes=10**9))
    buf.add("a", "json", run("t", 0, 0, 60))
    assert buf.ready() == []
    buf.add("a", "json", run("t", 0, 60, 60))
    [batch] = buf.ready()
    assert batch.size == 120 and batch.ranges == {("t", 0): (0, 119)} and batch.raw_bytes == 1200
    assert buf.rows == 0


def test_flush_on_bytes_and_age() -> None:
    buf = Buffer(FlushPolicy(rows=10**6, bytes=1000, seconds=5, total_bytes=10**9))
    buf.add("a", "json", run("t", 0, 0, 50, size=30))
    buf.add("b", "json", run("u", 0, 0, 1))
    assert [b.table for b in buf.ready()] == ["a"]
    assert buf.ready(now=buf._tables["b"].since + 4) == []
    assert [b.table for b in buf.ready(now=buf._tables["b"].since + 6)] == ["b"]


def test_total_bytes_bound_flushes_everything() -> None:
    buf = Buffer(FlushPolicy(rows=10**6, bytes=10**6, seconds=3600, total_bytes=500))
    buf.add("a", "json", run("t", 0, 0, 30))
    buf.add("b", "json", run("u", 1, 0, 30))
    assert sorted(b.table for b in buf.ready()) == ["a", "b"]


def test_revoked_partitions_are_dropped_and_ranges_recomputed() -> None:
    buf = Buffer(FlushPolicy(rows=10**6, bytes=10**9, seconds=3600, total_bytes=10**9))
    buf.add("a", "json", run("t", 0, 0, 10))
    buf.add("a", "json", run("t", 1, 5, 10))
    buf.add("a", "json", run("t", 0, 10, 10))
    assert buf.drop([("t", 0)]) == 20
    [batch] = buf.drain()
    assert batch.ranges == {("t", 1): (5, 14)} and batch.size == 10
