"""Status: per table, the Delta version, rows and files, and per partition the lake's offset vs
the high watermark (lag). Read-only: it joins no consumer group."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from lakeport.ingestion import offsets
from lakeport.ingestion.writer import DeltaWriter
from lakeport.settings import Settings


@dataclass
class PartitionStatus:
    topic: str
    partition: int
    lake_offset: int | None  # next offset to land (None: nothing landed)
    high_watermark: int
    lag: int


@dataclass
class TableStatus:
    table: str
    uri: str
    exists: bool
    version: int | None = None
    rows: int = 0
    files: int = 0
    bytes: int = 0
    partitions: list[PartitionStatus] = field(default_factory=list)

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


def _topics(consumer: Consumer, subscriptions: list[str]) -> dict[str, int]:
    meta = consumer.list_topics(timeout=10)
    out = {}
    for name, topic in meta.topics.items():
        for sub in subscriptions:
            if (sub.startswith("^") and re.fullmatch(sub[1:], name)) or sub == name:
                out[name] = len(topic.partitions)
    return out


def collect(settings: Settings, *, kafka: bool = True) -> list[TableStatus]:
    writer = DeltaWriter(settings.lake.to_object_store())
    consumer = Consumer(settings.kafka.to_librdkafka(**{"group.id": settings.kafka.group_id})) if kafka else None
    out = []
    try:
        for config in settings.tables:
            uri = settings.lake.table_uri("bronze", config.name)
            table = writer.open(uri)
            status = TableStatus(config.name, uri, table is not None)
            if table is not None:
                adds = table.get_add_actions(flatten=True)
                status.version = table.version()
                status.files = adds.num_rows
                status.rows = sum(v or 0 for v in adds.column("num_records").to_pylist())
                status.bytes = sum(v or 0 for v in adds.column("size_bytes").to_pylist())
            if consumer is not None:
                for topic, count in sorted(_topics(consumer, config.subscriptions).items()):
                    tps = [(topic, p) for p in range(count)]
                    stored = offsets.next_offsets(table, tps)
                    for tp in tps:
                        low, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)
                        at = stored[tp]
                        lag = max(high - (at if at is not None else max(low, 0)), 0)
                        status.partitions.append(PartitionStatus(topic, tp[1], at, high, lag))
            out.append(status)
    finally:
        if consumer is not None:
            consumer.close()
    return out


def as_dicts(statuses: list[TableStatus]) -> list[dict[str, Any]]:
    return [{**asdict(s), "lag": s.lag} for s in statuses]
