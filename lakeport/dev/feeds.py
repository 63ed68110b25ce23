"""What turns the demo's database transactions into Kafka topics: ``lakeport capture`` (the default)
or the real Debezium PostgreSQL connector in Kafka Connect (``make demo KAFKA=apache DEBEZIUM=1``).

Both expose ``start()``, ``publish(tag)`` (wait until every change made so far is in Kafka) and
``stop()``; ``publish`` returns the records published since the previous call."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from confluent_kafka import Consumer, TopicPartition

from lakeport.capture.publisher import Publisher
from lakeport.dev import jvm
from lakeport.dev.processes import Service, StackError, stop
from lakeport.settings import Settings

MARKER_PREFIX = "lakeport-demo"  # logical decoding messages the demo writes to know Debezium caught up


@dataclass(frozen=True)
class Published:
    """Records published by one ``publish``: change events (snapshot included) and domain events."""

    snapshot: int
    changes: int
    events: int
    topics: frozenset[str]


class CaptureFeed:
    """``lakeport capture --once`` after each round (its counts add up over calls)."""

    name = "lakeport capture"

    def __init__(self, settings: Settings, *, home: Path) -> None:
        source = settings.source(None).model_copy(update={"state_dir": str(home / "capture")})
        self.publisher = Publisher(source, settings.kafka)
        self.seen = (0, 0, 0)

    def start(self) -> None:
        self.publisher.prepare()  # the slot (and snapshot) first: every later change is streamed

    def publish(self, tag: str) -> Published:
        s = self.publisher.stream(once=True)
        total = (s.snapshot_rows, s.changes, s.outbox_events)
        snap, changes, events = (now - before for now, before in zip(total, self.seen, strict=True))
        self.seen = total
        return Published(snapshot=snap, changes=changes, events=events, topics=frozenset(s.topics))

    def stop(self) -> None:
        return None


class DebeziumFeed:
    """Debezium 3's PostgreSQL connector and outbox router (``infra/debezium/*.json``, pointed at the
    demo's database) in Kafka Connect on the stack's Apache Kafka. Caught up when the logical
    decoding message written after a round is in Kafka, and the outbox connector has published
    every outbox row inserted since it started."""

    name = "Debezium"

    def __init__(self, settings: Settings, *, home: Path, bootstrap: str, timeout: float = 120) -> None:
        self.settings, self.home, self.bootstrap, self.timeout = settings, home, bootstrap, timeout
        source = settings.source(None)
        self.prefix, self.pg = source.name, source.postgres
        self.events_prefix = source.events_prefix
        self.topics = {t for table in settings.tables if table.format == "debezium-json" for t in table.topics}
        self.service: Service | None = None
        self.outbox_start = 0
        self.seen: dict[str, int] = {}

    def start(self) -> None:
        connectors = jvm.debezium_connectors(
            self.prefix, port=int(self.pg.port), database=self.pg.database, user=self.pg.user,
            password=self.pg.password.get_secret_value(), events=self.events_prefix,
            tables=sorted(t.split(".", 1)[1] for t in self.topics),
        )  # fmt: skip
        self.service = jvm.start_connect(self.home / "connect-home", bootstrap=self.bootstrap,
                                         connectors=connectors, deadline=time.monotonic() + self.timeout)  # fmt: skip
        self.outbox_start = self._sql("SELECT count(*) FROM outbox")
        self.seen = self._ends()

    def publish(self, tag: str) -> Published:
        self._sql(f"SELECT pg_logical_emit_message(true, '{MARKER_PREFIX}', %s)::text", tag)
        deadline = time.monotonic() + self.timeout
        outbox = self._sql("SELECT count(*) FROM outbox") - self.outbox_start
        while not (self._marked(tag) and self._events(self._ends()) >= outbox):
            if time.monotonic() > deadline:
                raise StackError(f"Debezium did not publish round {tag!r} within {self.timeout:.0f}s")
            time.sleep(0.5)
        ends, previous = self._ends(), None
        while ends != previous:  # every record handed to the producer before the marker is in
            time.sleep(1)
            previous, ends = ends, self._ends()
        changes = sum(n - self.seen.get(t, 0) for t, n in ends.items() if t in self.topics)
        events = self._events(ends) - self._events(self.seen)
        self.seen = ends
        topics = frozenset(t for t, n in ends.items() if n and (t in self.topics or self._is_event(t)))
        return Published(snapshot=0, changes=changes, events=events, topics=topics)

    def stop(self) -> None:
        if self.service is not None:
            stop(self.service)
            self.service = None

    # -- plumbing -------------------------------------------------------------------------------
    def _sql(self, query: str, *args: object) -> int:
        with psycopg2.connect(**self.pg.to_libpq()) as conn, conn.cursor() as cur:
            cur.execute(query, args or None)
            row = cur.fetchone()
            return int(row[0]) if row and str(row[0]).isdigit() else 0

    def _is_event(self, topic: str) -> bool:
        return topic.startswith(f"{self.events_prefix}.")

    def _events(self, ends: dict[str, int]) -> int:
        return sum(n for t, n in ends.items() if self._is_event(t))

    def _consumer(self) -> Consumer:
        return Consumer({"bootstrap.servers": self.bootstrap, "group.id": "lakeport-demo-probe",
                         "enable.auto.commit": False})  # fmt: skip

    def _ends(self) -> dict[str, int]:
        """Records in each topic (sum of the partitions' end offsets: Debezium's topics are never trimmed here)."""
        consumer = self._consumer()
        try:
            topics = consumer.list_topics(timeout=10).topics
            end = consumer.get_watermark_offsets
            return {
                name: sum(end(TopicPartition(name, p), timeout=10)[1] for p in meta.partitions)
                for name, meta in topics.items()
                if name in self.topics or self._is_event(name) or name == f"{self.prefix}.message"
            }
        finally:
            consumer.close()

    def _marked(self, tag: str) -> bool:
        topic, marker = f"{self.prefix}.message", base64.b64encode(tag.encode())
        consumer = self._consumer()
        try:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                return False
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions}
            consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end])
            left, deadline = {p for p, end in ends.items() if end}, time.monotonic() + 10
            while left and time.monotonic() < deadline:
                for msg in consumer.consume(500, 0.5):
                    if msg.error() is None and marker in (msg.value() or b""):  # the content, base64
                        return True
                    offset, partition = msg.offset() or 0, msg.partition() or 0
                    if msg.error() is None and offset + 1 >= ends[partition]:
                        left.discard(partition)
            return False
        finally:
            consumer.close()
