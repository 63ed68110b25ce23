"""Records Kafka deleted before they landed (a retention gap) are never skipped silently: found at
assignment or mid-read (stubbed watermarks here; on Apache Kafka with ``DeleteRecords`` in
``test_apache_kafka_only_behaviours.py``), recorded once in ``ops.retention_gaps``, alerted, then
``on_gap: fail`` stops and ``on_gap: skip`` reads on from the log start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import read_table

from lakeport.ingestion.gaps import GapKeeper, RetentionGapError
from lakeport.ingestion.source import KafkaSource, PartitionProgress
from lakeport.settings import Settings

TP = ("shop.public.orders", 0)


class _Watermarks:
    """A consumer that only answers watermarks: (low, high)."""

    def __init__(self, low: int, high: int = 100) -> None:
        self.low, self.high = low, high

    def get_watermark_offsets(self, _tp: Any, timeout: float = 0, cached: bool = False) -> tuple[int, int]:
        return self.low, self.high


def _source(low: int, *, position: int, from_lake: bool) -> tuple[KafkaSource, list[tuple[Any, ...]]]:
    found: list[tuple[Any, ...]] = []
    source = KafkaSource({}, [TP[0]], lambda tps: {}, lambda tps: None,
                         on_gap=lambda tp, needed, start: found.append((tp, needed, start)) or start)  # fmt: skip
    source._consumer = _Watermarks(low)  # type: ignore[assignment]
    source.progress[TP] = PartitionProgress(position, 100, position, from_lake=from_lake)
    return source, found


def test_a_run_past_the_position_with_the_log_start_past_it_is_a_gap() -> None:
    source, found = _source(30, position=20, from_lake=True)
    source._check_gap(TP, 30)
    assert found == [(TP, 20, 30)]


def test_holes_below_the_log_start_are_no_gap() -> None:
    source, found = _source(0, position=20, from_lake=True)
    source._check_gap(TP, 22)  # a transaction marker or a compacted record: the log still starts at 0
    source._check_gap(TP, 20)
    assert found == []


def test_a_partition_the_lake_never_asked_for_has_no_gap_before_its_first_record() -> None:
    source, found = _source(30, position=0, from_lake=False)
    source._check_gap(TP, 30)  # from the beginning: the log's start is where the lake starts
    assert found == []


def _keeper(tmp_path: Path, policy: str) -> GapKeeper:
    settings = Settings(lake={"uri": str(tmp_path / "lake")}, tables=[{"name": "orders", "topics": [TP[0]]}],
                        ingest={"on_gap": policy})  # fmt: skip
    return GapKeeper(settings)


def test_on_gap_fail_records_alerts_and_stops_once_per_range(tmp_path: Path) -> None:
    keeper = _keeper(tmp_path, "fail")
    for _ in range(2):
        with pytest.raises(RetentionGapError, match=r"orders\[0\] offsets 20\.\.29 \(10 records\)"):
            keeper.found("orders", *TP, needed=20, log_start=30)
    gaps = read_table(keeper.uri).to_pylist()
    assert [(g["first_offset"], g["last_offset"], g["records"], g["policy"]) for g in gaps] == [(20, 29, 10, "fail")]
    alerts = read_table(keeper.settings.lake.table_uri("ops", "alerts")).to_pylist()
    assert [a["status"] for a in alerts] == ["firing"] and alerts[0]["key"] == f"retention_gap:{TP[0]}[0]:20"


def test_on_gap_skip_reads_on_from_the_log_start_and_counts(tmp_path: Path) -> None:
    keeper = _keeper(tmp_path, "skip")
    assert keeper.found("orders", *TP, needed=20, log_start=30) == 30
    assert keeper.skipped == 10
    assert [g["policy"] for g in read_table(keeper.uri).to_pylist()] == ["skip"]


def test_the_policy_is_checked_when_the_config_loads() -> None:
    with pytest.raises(ValueError, match="on_gap"):
        Settings(tables=[{"name": "orders", "topics": [TP[0]]}], ingest={"on_gap": "ignore"})
