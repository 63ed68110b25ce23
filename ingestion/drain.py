"""``--once``: when a run has landed everything it was started for, next to the Kafka source.

Done when either no subscribed topic exists (after 10 s: nothing to drain), or every partition
this worker holds has reached the high watermark seen at its assignment (:class:`Ends`) and the
partitions other group members hold (possibly dead ones) have landed up to theirs as well,
checked against the Delta log every 2 s. Those are waited for at most ``ingest.once_wait_seconds``;
then the run ends and says which were still behind.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from lakeport.ingestion.source import TP, KafkaSource

log = structlog.get_logger("lakeport.ingest")
Positions = Callable[[list[TP]], dict[TP, "int | None"]]  # partitions -> next offset the lake needs
Probe = Callable[[dict[TP, "int | None"]], set[TP]]  # partitions -> those holding a record from there


class Drain:
    def __init__(self, source: KafkaSource, *, positions: Positions, wait_seconds: float) -> None:
        self.source, self._positions, self._wait = source, positions, wait_seconds
        self.ends = Ends(source)
        self._started = time.monotonic()
        self._checked_at = 0.0
        self._deadline: float | None = None

    def done(self) -> bool:
        return self._nothing_to_drain() or (self.ends.reached() and self._others_landed())

    def _nothing_to_drain(self) -> bool:
        """No partition was ever assigned because no subscribed topic exists."""
        if self.source.progress or time.monotonic() - self._started < 10.0:
            return False
        if subscribed_partitions(self.source):
            return False
        log.warning("no_partitions_to_drain", subscriptions=self.source.subscriptions)
        return True

    def _others_landed(self) -> bool:
        """Partitions held by other members have landed; otherwise keep polling until a rebalance
        hands them over or their owner lands them (until the wait runs out)."""
        now = time.monotonic()
        if now - self._checked_at < 2.0:
            return False
        self._checked_at = now
        if self._deadline is None:
            self._deadline = now + self._wait
        others = [tp for tp in subscribed_partitions(self.source) if tp not in self.source.progress]
        behind = has_data_from(self.source, self._positions(others)) if others else set()
        if behind and now > self._deadline:
            log.warning("once_gave_up_waiting", partitions=[f"{t}[{p}]" for t, p in sorted(behind)])
            return True
        return not behind


class Ends:
    """Whether every partition the source holds reached its end as of its assignment.

    The end is the watermark asked for at assignment, raised to the high watermark of the latest
    fetch response once the position passes it: some Kafka-compatible brokers answer ListOffsets
    with a stale value (the base offset of the last record batch), while fetch responses carry the
    true end. A partition whose tail holds no deliverable record (transaction markers) never
    reaches that end: once it has not moved for a second, a group-less ``probe`` asks whether any
    record is left at its position (at most every 2 s).
    """

    def __init__(self, source: KafkaSource, *, probe: Probe | None = None) -> None:
        self.source, self._probe = source, probe or partial(has_data_from, source)
        self._probed_at = 0.0

    def reached(self) -> bool:
        progress = self.source.progress
        if not (self.source.assigned_once and progress):
            return False
        for tp, p in progress.items():
            if p.drained or p.position < p.high_at_assign:
                continue
            if p.end is None:
                fetched = self.source.fetched_high(tp)
                p.end = None if fetched < 0 else max(p.high_at_assign, fetched)
            p.drained = p.end is not None and p.position >= p.end
        stuck: dict[TP, int | None] = {  # short of its end; or below an end that fetches confirm (markers)
            tp: p.position
            for tp, p in progress.items()
            if not p.drained and (p.end is not None or (p.position < p.high_at_assign == self.source.fetched_high(tp)))
        }
        now = time.monotonic()
        if stuck and all(now - progress[tp].moved_at > 1.0 for tp in stuck) and now - self._probed_at > 2.0:
            self._probed_at = now
            for tp in set(stuck) - self._probe(stuck):
                progress[tp].drained = True
        return all(p.drained for p in progress.values())


def subscribed_partitions(source: KafkaSource) -> list[TP]:
    """Every partition of the topics the source subscribes to (names or patterns)."""
    meta = source.consumer.list_topics(timeout=10)
    out = []
    for name, topic in meta.topics.items():
        if any((s.startswith("^") and re.fullmatch(s[1:], name)) or s == name for s in source.subscriptions):
            out += [(name, p) for p in topic.partitions]
    return sorted(out)


def has_data_from(source: KafkaSource, positions: dict[TP, int | None], *, timeout: float = 5.0) -> set[TP]:
    """Partitions holding a record at or after the given position, asked with a throwaway
    (group-less) consumer that reads at most one fetch: exact on brokers whose ListOffsets answer
    lags the log. An end short of the one the source saw at assignment counts as a record."""
    conf = {k: v for k, v in source.conf.items() if not k.startswith(("group.", "enable.auto"))}
    probe = Consumer({**conf, "group.id": "lakeport-probe", "enable.partition.eof": True, "enable.auto.commit": False})
    try:
        probe.assign([TopicPartition(t, p, OFFSET_BEGINNING if o is None else o) for (t, p), o in positions.items()])
        pending, found = set(positions), set()
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in probe.consume(100, 0.5):
                tp = (msg.topic(), msg.partition())
                if tp in pending:
                    pending.discard(tp)
                    mine, end = source.progress.get(tp), msg.offset()
                    short = mine is not None and end is not None and end < mine.high_at_assign
                    if msg.error() is None or short:
                        found.add(tp)
        return found | pending  # no answer in time: assume there is data
    finally:
        probe.close()
