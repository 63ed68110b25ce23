"""Polled runs are grouped per table; decoded rows are buffered and flush on rows, bytes or age;
revoked partitions are forgotten; memory is bounded."""

from __future__ import annotations

import pyarrow as pa

from lakeport.ingestion.batch import Buffer, FlushPolicy, group
from lakeport.ingestion.records import Decoded, RawBatch


def run(topic: str, partition: int, first: int, n: int, size: int = 10) -> RawBatch:
    return RawBatch(topic, partition, list(range(first, first + n)), [0] * n, [None] * n, [b"x" * size] * n)


def decoded(table: str, topic: str, partition: int, first: int, n: int, size: int = 10) -> Decoded:
    rows = pa.table(
        {
            "_topic": [topic] * n,
            "_partition": pa.array([partition] * n, pa.int32()),
            "_offset": pa.array(range(first, first + n), pa.int64()),
        }
    )
    return Decoded(table, rows, (), {(topic, partition): (first, first + n - 1)}, n, n * size)


def test_group_makes_one_batch_per_table() -> None:
    route = {"a1": ("a", "json"), "a2": ("a", "json"), "b": ("b", "debezium-json")}.__getitem__
    batches = {
        b.table: b
        for b in group([run("a1", 0, 5, 3), run("b", 1, 0, 2), run("a2", 0, 0, 4), run("a1", 0, 8, 2)], route)
    }
    assert batches["a"].ranges == {("a1", 0): (5, 9), ("a2", 0): (0, 3)} and batches["a"].size == 9
    assert batches["b"].format == "debezium-json" and batches["b"].raw_bytes == 20


def test_flush_on_rows_merges_pieces() -> None:
    buf = Buffer(FlushPolicy(rows=100, bytes=10**9, seconds=3600, total_bytes=10**9))
    buf.add(decoded("a", "t", 0, 0, 60))
    assert buf.ready() == []
    buf.add(decoded("a", "t", 0, 60, 60))
    [batch] = buf.ready()
    assert batch.rows.num_rows == 120 and batch.ranges == {("t", 0): (0, 119)} and batch.raw_bytes == 1200
    assert batch.rows["_offset"].to_pylist() == list(range(120))
    assert buf.rows == 0


def test_flush_on_bytes_and_age() -> None:
    buf = Buffer(FlushPolicy(rows=10**6, bytes=1000, seconds=5, total_bytes=10**9))
    buf.add(decoded("a", "t", 0, 0, 50, size=30))
    buf.add(decoded("b", "u", 0, 0, 1))
    assert [b.table for b in buf.ready()] == ["a"]
    since = buf._tables["b"].since
    assert buf.ready(now=since + 4) == []
    assert [b.table for b in buf.ready(now=since + 6)] == ["b"]


def test_total_bytes_bound_flushes_everything() -> None:
    buf = Buffer(FlushPolicy(rows=10**6, bytes=10**6, seconds=3600, total_bytes=500))
    buf.add(decoded("a", "t", 0, 0, 30))
    buf.add(decoded("b", "u", 1, 0, 30))
    assert sorted(b.table for b in buf.ready()) == ["a", "b"]


def test_revoked_partitions_are_dropped_and_ranges_recomputed() -> None:
    buf = Buffer(FlushPolicy(rows=10**6, bytes=10**9, seconds=3600, total_bytes=10**9))
    buf.add(decoded("a", "t", 0, 0, 10))
    buf.add(decoded("a", "t", 1, 5, 10))
    buf.add(decoded("a", "t", 0, 10, 10))
    assert buf.drop([("t", 0)]) == 20
    [batch] = buf.drain()
    assert batch.ranges == {("t", 1): (5, 14)} and batch.rows.num_rows == 10
