"""Source: a Kafka consumer in a consumer group that yields columnar record runs.

Where to start reading is not Kafka's business: on every assignment the worker's
``start_offsets`` callback is asked (it reads the Delta log), and the partitions are assigned at
those positions. Kafka's committed offsets are only written after a Delta commit, for lag
monitoring. Only the Kafka protocol through confluent-kafka is used, so any Kafka-compatible
broker works.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from lakeport.ingestion.errors import TerminalError, TransientError
from lakeport.ingestion.records import RawBatch

TP = tuple[str, int]
log = structlog.get_logger("lakeport.source")

# Settings that make a consumer behave for a lake writer; users can override any of them.
CONSUMER_DEFAULTS: dict[str, object] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    # The end of a partition is read from the high watermark of fetch responses (``drain.Ends``):
    # end-of-partition events cost the client ~8 % of its throughput here.
    "enable.partition.eof": False,
    "fetch.queue.backoff.ms": 5,
    # Bounded prefetch: memory stays flat whatever the backlog. Large per-partition fetches mean
    # fewer requests, which roughly halves the broker's CPU per message.
    "queued.min.messages": 20000,
    "queued.max.messages.kbytes": 65536,
    "max.partition.fetch.bytes": 8388608,
    "fetch.max.bytes": 33554432,
    "session.timeout.ms": 10000,
    "heartbeat.interval.ms": 1000,
}

_FATAL_CODES = {
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError._SSL,
}


@dataclass
class PartitionProgress:
    """Where a partition started, where its end was when assigned, and whether we got there."""

    start: int
    high_at_assign: int
    position: int
    drained: bool = False
    end: int | None = None  # the end to reach, fixed once the position passes high_at_assign
    from_lake: bool = False  # the start is the lake's next offset (a gap below the log start is a loss)
    moved_at: float = field(default_factory=time.monotonic)  # when the position last moved


@dataclass
class KafkaSource:
    conf: dict[str, object]
    subscriptions: list[str]
    start_offsets: Callable[[list[TP]], dict[TP, int | None]]
    on_revoked: Callable[[list[TP]], None]
    progress: dict[TP, PartitionProgress] = field(default_factory=dict)
    from_timestamp_ms: int | None = None  # partitions with no lake offsets start here (a backfill)
    # A retention gap (the next offset needed is below the log start): (partition, needed, log
    # start) → where to read on; it records, alerts, and raises under on_gap: fail (ingestion.gaps)
    on_gap: Callable[[TP, int, int], int] | None = None
    _before_start: set[TP] = field(default_factory=set)  # backfilled partitions not yet past the time
    _consumer: Consumer | None = None
    assigned_once: bool = False  # an assignment happened (before: nothing can be drained yet)

    def open(self) -> KafkaSource:
        conf = {**CONSUMER_DEFAULTS, **self.conf}
        self._incremental = "cooperative" in str(conf.get("partition.assignment.strategy", ""))
        self._consumer = Consumer(conf)
        self._consumer.subscribe(
            self.subscriptions, on_assign=self._assign, on_revoke=self._revoke, on_lost=self._revoke
        )
        return self

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("source is not open")
        return self._consumer

    # -- rebalance callbacks (run inside poll) ---------------------------------------------
    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        stored = self.start_offsets(tps)
        from_lake = {tp for tp, offset in stored.items() if offset is not None}
        if self.from_timestamp_ms is not None:
            fresh = [tp for tp in tps if stored.get(tp) is None]
            stored = {**stored, **self._offsets_at(consumer, fresh)}
            # Brokers whose ListOffsets ignores timestamps answer too early an offset: older
            # records are also skipped by their timestamp until the first one at or after it.
            self._before_start |= set(fresh)
        assigned = []
        for tp in tps:
            low, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10, cached=False)
            start = stored.get(tp)
            if start is not None and start < 0:  # nothing at or after the timestamp: from the end
                start = high
            if start is not None and tp in from_lake and 0 <= start < low and self.on_gap is not None:
                start = self.on_gap(tp, start, low)  # records below the log start never landed
            begin = max(low, 0) if start is None else start
            self.progress[tp] = PartitionProgress(begin, high, begin, from_lake=tp in from_lake)
            assigned.append(TopicPartition(tp[0], tp[1], OFFSET_BEGINNING if start is None else start))
        if self._incremental:
            consumer.incremental_assign(assigned)
        else:
            consumer.assign(assigned)
        self.assigned_once = True
        log.info(
            "partitions_assigned",
            partitions=[f"{t}[{p}]@{self.progress[(t, p)].start}" for t, p in tps],
        )

    def _offsets_at(self, consumer: Consumer, tps: list[TP]) -> dict[TP, int | None]:
        """The first offset at or after ``from_timestamp_ms`` per partition (-1: none that late)."""
        if not tps or self.from_timestamp_ms is None:
            return {}
        query = [TopicPartition(t, p, self.from_timestamp_ms) for t, p in tps]
        found = consumer.offsets_for_times(query, timeout=10)
        log.info("start_offsets_from_timestamp", timestamp_ms=self.from_timestamp_ms,
                 offsets={f"{r.topic}[{r.partition}]": r.offset for r in found})  # fmt: skip
        return {(r.topic, r.partition): r.offset for r in found}

    def _revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        self.on_revoked(tps)
        for tp in tps:
            self.progress.pop(tp, None)
        if self._incremental:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()
        log.info("partitions_revoked", partitions=[f"{t}[{p}]" for t, p in tps])

    # -- data ------------------------------------------------------------------------------
    def poll(self, max_messages: int, timeout: float) -> list[RawBatch]:
        """Up to ``max_messages`` records, as runs per topic-partition (no object per message)."""
        messages = self.consumer.consume(num_messages=max_messages, timeout=timeout)
        if not messages:
            return []
        if any(map(Message.error, messages)):
            for m in messages:
                if m.error() is not None:
                    self._handle_error(m.error(), m)  # type: ignore[arg-type]
            messages = [m for m in messages if m.error() is None]
            if not messages:
                return []
        batches = []
        for start, end in _runs(messages):
            run, first_msg = messages[start:end], messages[start]
            raw_stamps: list[int] = [t for _, t in map(Message.timestamp, run)]
            stamps = cast(list[int | None], raw_stamps)
            if min(raw_stamps) < 0:  # no timestamp: None
                stamps = [t if t >= 0 else None for t in raw_stamps]
            tp = (str(first_msg.topic()), int(first_msg.partition()))  # type: ignore[arg-type]
            self._check_gap(tp, int(first_msg.offset()))  # type: ignore[arg-type]
            if tp in self._before_start and self.from_timestamp_ms is not None:
                after = self.from_timestamp_ms
                first = next((k for k, t in enumerate(stamps) if t is not None and t >= after), None)
                if first is None:  # all older than the backfill's start
                    progress = self.progress.get(tp)
                    if progress is not None:
                        progress.position = run[-1].offset() + 1  # type: ignore[operator]
                    continue
                self._before_start.discard(tp)
                run, stamps = run[first:], stamps[first:]
            batch = RawBatch(
                tp[0],
                tp[1],
                list(map(Message.offset, run)),  # type: ignore[arg-type]
                stamps,
                list(map(Message.key, run)),
                list(map(Message.value, run)),
                run,
            )
            batches.append(batch)
            progress = self.progress.get(tp)
            if progress is not None:
                progress.position = batch.offsets[-1] + 1
                progress.moved_at = time.monotonic()
        return batches

    def _check_gap(self, tp: TP, first: int) -> None:
        """A run that starts past the position is a retention gap if the log start is past it too
        (the client reset to the log start); compaction and transaction markers leave holes below it."""
        progress = self.progress.get(tp)
        if progress is None or first <= progress.position or self.on_gap is None:
            return
        if not (progress.from_lake or progress.position > progress.start):
            return  # nothing of this partition landed yet and the lake asked for no offset
        low = self.consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)[0]
        if low < 0:
            low = self.consumer.get_watermark_offsets(TopicPartition(*tp), timeout=5, cached=False)[0]
        if low > progress.position:
            self.on_gap(tp, progress.position, min(low, first))

    def _handle_error(self, err: KafkaError, msg: object) -> None:
        code = err.code()
        if code == KafkaError._PARTITION_EOF:
            tp = (msg.topic(), msg.partition())  # type: ignore[attr-defined]
            progress = self.progress.get(tp)
            if progress is not None:
                progress.position = max(progress.position, msg.offset())  # type: ignore[attr-defined]
                progress.drained = progress.drained or progress.position >= progress.high_at_assign
            return
        if err.fatal() or code in _FATAL_CODES:
            raise TerminalError(f"Kafka consumer failed: {err.str()}")
        log.warning("kafka_error_seen", error=err.str(), retriable=err.retriable())

    def fetched_high(self, tp: TP) -> int:
        """The high watermark of the latest fetch response (negative: none received yet)."""
        try:
            return int(self.consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)[1])
        except KafkaException:
            return -1

    def assigned(self) -> list[TP]:
        return sorted(self.progress)

    def seek(self, tp: TP, offset: int) -> None:
        self.consumer.seek(TopicPartition(tp[0], tp[1], offset))
        if tp in self.progress:
            self.progress[tp].position = offset

    def commit(self, next_offsets: dict[TP, int]) -> None:
        """Record progress in Kafka (for lag tools) — after the Delta commit, never before."""
        owned = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items() if (t, p) in self.progress]
        if not owned:
            return
        try:
            self.consumer.commit(offsets=owned, asynchronous=True)
        except KafkaException as exc:  # the lake holds the truth; a failed commit only delays lag
            log.warning("kafka_commit_failed", error=str(exc))

    def high_watermarks(self, tps: Iterable[TP], *, timeout: float = 5.0, cached: bool = False) -> dict[TP, int]:
        out = {}
        for tp in tps:
            try:
                out[tp] = self.consumer.get_watermark_offsets(TopicPartition(*tp), timeout=timeout, cached=cached)[1]
            except KafkaException as exc:
                raise TransientError(f"watermarks unavailable: {exc}") from None
        return out

    def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(KafkaException, RuntimeError):
                self._consumer.close()
            self._consumer = None


def _runs(messages: list[Message]) -> list[tuple[int, int]]:
    """(start, end) of each run of consecutive messages from one topic-partition."""
    n = len(messages)
    partitions = np.fromiter(map(Message.partition, messages), np.int64, n)  # type: ignore[arg-type]
    cuts = np.flatnonzero(partitions[1:] != partitions[:-1]) + 1
    topics = list(map(Message.topic, messages))
    if topics.count(topics[0]) != n:  # several topics: cut where the topic changes too
        extra = [i for i in range(1, n) if topics[i] != topics[i - 1]]
        cuts = np.union1d(cuts, np.array(extra, np.int64))
    bounds = [0, *cuts.tolist(), n]
    return list(itertools.pairwise(bounds))
