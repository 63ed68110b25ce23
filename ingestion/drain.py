"""``--once``: when a run has landed everything it was started for, next to the Kafka source.

Done when either no subscribed topic exists (after 10 s: nothing to drain), or every partition
this worker holds has reached the high watermark seen at its assignment (``KafkaSource.drained``)
and the partitions other group members hold (possibly dead ones) have landed up to theirs as
well, checked against the Delta log every 2 s. Those are waited for at most
``ingest.once_wait_seconds``; then the run ends and says which were still behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from lakeport.ingestion.source import TP, KafkaSource

log = structlog.get_logger("lakeport.ingest")
Positions = Callable[[list[TP]], dict[TP, "int | None"]]  # partitions -> next offset the lake needs


class Drain:
    def __init__(self, source: KafkaSource, *, positions: Positions, wait_seconds: float) -> None:
        self.source, self._positions, self._wait = source, positions, wait_seconds
        self._started = time.monotonic()
        self._checked_at = 0.0
        self._deadline: float | None = None

    def done(self) -> bool:
        return self._nothing_to_drain() or (self.source.drained() and self._others_landed())

    def _nothing_to_drain(self) -> bool:
        """No partition was ever assigned because no subscribed topic exists."""
        if self.source.progress or time.monotonic() - self._started < 10.0:
            return False
        if self.source.subscribed_partitions():
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
        others = [tp for tp in self.source.subscribed_partitions() if tp not in self.source.progress]
        behind = self.source.has_data_from(self._positions(others)) if others else set()
        if behind and now > self._deadline:
            log.warning("once_gave_up_waiting", partitions=[f"{t}[{p}]" for t, p in sorted(behind)])
            return True
        return not behind
