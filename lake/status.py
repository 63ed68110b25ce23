"""Status: per table, the Delta version, rows and files, and per partition the lake's offset vs
the high watermark (lag). Read-only: it joins no consumer group."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from lakeport.ingestion import offsets
from lakeport.ingestion.conflicts import STAGE
from lakeport.ingestion.replay import summary
from lakeport.lake.tables import facts, open_table
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
    # records in ops.dead_letters (stage schema, not replayed) that do not fit the table's schema:
    # the table is blocked on a source type change until it is fixed and they are replayed
    schema_blocked: int = 0
    schema_conflict: str | None = None  # the most common kind

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
    storage = settings.lake.to_object_store()
    consumer = Consumer(settings.kafka.to_librdkafka(**{"group.id": settings.kafka.group_id})) if kafka else None
    out = []
    conflicts = [g for g in summary(settings) if g.stage == STAGE and g.count > g.replayed]
    try:
        for config in settings.tables:
            uri = settings.lake.table_uri("bronze", config.name)
            table = open_table(uri, storage)
            status = TableStatus(config.name, uri, table is not None)
            if table is not None:
                known = facts(table)
                status.version, status.files, status.rows, status.bytes = (
                    known.version,
                    known.files,
                    known.rows,
                    known.bytes,
                )
            if consumer is not None:
                for topic, count in sorted(_topics(consumer, config.subscriptions).items()):
                    tps = [(topic, p) for p in range(count)]
                    stored = offsets.next_offsets(table, tps)
                    for tp in tps:
                        low, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10)
                        at = stored[tp]
                        lag = max(high - (at if at is not None else max(low, 0)), 0)
                        status.partitions.append(PartitionStatus(topic, tp[1], at, high, lag))
            blocked = [g for g in conflicts if g.table == config.name]
            status.schema_blocked = sum(g.count - g.replayed for g in blocked)
            if status.schema_blocked:
                status.schema_conflict = max(blocked, key=lambda g: g.count - g.replayed).error
            out.append(status)
    finally:
        if consumer is not None:
            consumer.close()
    return out


def as_dicts(statuses: list[TableStatus]) -> list[dict[str, Any]]:
    return [{**asdict(s), "lag": s.lag} for s in statuses]


def lag_by_table(settings: Settings) -> dict[str, dict[str, int]]:
    """table → {"topic[partition]": messages in Kafka not yet in the lake}."""
    return {s.table: {f"{p.topic}[{p.partition}]": p.lag for p in s.partitions} for s in collect(settings)}
