"""``--once`` decides a partition is drained from fetch watermarks (no end-of-partition events),
and from a probe when the tail holds no deliverable record (transaction markers). Pure logic: the
broker's answers are stubbed; the integration tests run the same code against the real broker."""

from __future__ import annotations

import time

from lakeport.ingestion.drain import Ends
from lakeport.ingestion.source import TP, KafkaSource, PartitionProgress

TOPIC = "shop.public.orders"


class _Source(KafkaSource):
    """A source whose fetch watermarks and probe answers are stubbed; ``drained`` asks :class:`Ends`."""

    def __init__(self, fetched_high: dict[TP, int], with_data: set[TP]) -> None:
        super().__init__({}, [TOPIC], lambda tps: {}, lambda tps: None)
        self.fetched, self.with_data, self.probes = fetched_high, with_data, 0
        self.assigned_once = True
        self.ends = Ends(self, probe=self._probe)

    def fetched_high(self, tp: TP) -> int:
        return self.fetched.get(tp, -1001)

    def _probe(self, positions: dict[TP, int | None]) -> set[TP]:
        self.probes += 1
        return set(positions) & self.with_data

    def drained(self) -> bool:
        return self.ends.reached()


def _progress(position: int, high_at_assign: int, *, idle: float = 0.0) -> PartitionProgress:
    p = PartitionProgress(0, high_at_assign, position)
    p.moved_at = time.monotonic() - idle
    return p


def test_a_stale_listoffsets_answer_is_raised_to_the_fetched_end() -> None:
    a, b = (TOPIC, 0), (TOPIC, 1)
    source = _Source({a: 120, b: 50}, with_data=set())
    source.progress = {a: _progress(100, 100), b: _progress(50, 40)}  # a: ListOffsets said 100, the log ends at 120
    assert not source.drained()
    assert source.progress[b].drained and not source.progress[a].drained
    source.progress[a].position = 120
    assert source.drained() and source.probes == 0


def test_no_fetch_answer_yet_means_not_drained() -> None:
    a = (TOPIC, 0)
    source = _Source({}, with_data=set())
    source.progress = {a: _progress(0, 0, idle=5)}  # empty partition, no fetch response yet
    assert not source.drained()
    source.fetched[a] = 0
    assert source.drained()


def test_a_tail_of_transaction_markers_is_drained_after_a_probe() -> None:
    a = (TOPIC, 0)
    source = _Source({a: 102}, with_data=set())  # records up to 99, markers at 100 and 101
    source.progress = {a: _progress(100, 102)}
    source.progress[a].position = 102 - 2
    source.progress[a].high_at_assign = 100
    assert not source.drained() and source.probes == 0  # it moved just now: no probe yet
    source.progress[a].moved_at -= 2
    assert source.drained() and source.probes == 1


def test_a_tail_of_markers_below_an_exact_high_watermark_is_drained_after_a_probe() -> None:
    """Apache Kafka answers ListOffsets exactly: the position stops below the watermark asked for
    at assignment, because the last offsets are commit or abort markers (a regression: --once hung)."""
    a = (TOPIC, 0)
    source = _Source({a: 21}, with_data=set())  # records up to 16; markers and an aborted transaction after
    source.progress = {a: _progress(17, 21)}
    assert not source.drained() and source.probes == 0
    source.progress[a].moved_at -= 2
    assert source.drained() and source.probes == 1


def test_a_probe_that_finds_records_keeps_the_partition_open() -> None:
    a = (TOPIC, 0)
    source = _Source({a: 130}, with_data={a})
    source.progress = {a: _progress(110, 100, idle=2)}
    assert not source.drained() and source.probes == 1
    assert not source.drained() and source.probes == 1  # probes are at least 2 s apart
