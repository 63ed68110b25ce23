"""``lakeport capture``: PostgreSQL logical replication → Debezium-compatible Kafka topics.

Order of work, which is what makes a crash lose nothing:

1. Ensure the publication (the captured tables plus the outbox table).
2. A new slot (or one whose snapshot never finished) is created with ``EXPORT_SNAPSHOT``; every
   captured table gets a truncate event and then its rows as ``op: r`` read inside that
   snapshot; after the broker acknowledged all of them, the state file records the snapshot as
   done. A crash before that drops the slot and snapshots again on restart.
3. Stream ``pgoutput`` from the slot's confirmed position. Each change is produced as it is
   decoded; outbox inserts are routed to ``events.<aggregate_type>``.
4. Confirm a position to the server (``flush_lsn``) only for whole transactions whose messages the
   broker acknowledged (``producer.flush`` with no delivery error). A crash between produce and
   confirm replays those transactions: duplicates, never gaps.
"""

from __future__ import annotations

import json
import select
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import structlog
from confluent_kafka import KafkaError, Producer
from psycopg2.extras import LogicalReplicationConnection

from lakeport.capture import envelopes, pgoutput, snapshot
from lakeport.capture.envelopes import Position
from lakeport.capture.errors import CaptureError
from lakeport.settings import KafkaSettings, SourceSettings

log = structlog.get_logger("lakeport.capture")
_SESSION = "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex"


@dataclass
class CaptureStats:
    snapshot_rows: int = 0
    changes: int = 0
    outbox_events: int = 0
    transactions: int = 0
    confirmed_lsn: str = "0/0"
    topics: set[str] = field(default_factory=set)


class Publisher:
    def __init__(self, source: SourceSettings, kafka: KafkaSettings, *, stop: threading.Event | None = None) -> None:
        self.source, self.stop = source, stop or threading.Event()
        self.slot, self.publication = source.slot_name, source.publication_name
        self.state_file = Path(source.state_dir) / f"{source.name}.json"
        produce = {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4"}
        self.producer = Producer(kafka.to_librdkafka(**produce))
        self.delivery_error: KafkaError | None = None
        self.stats = CaptureStats()
        self.relations: dict[int, pgoutput.Relation] = {}
        self.outbox = ".".join(snapshot.qualified(source.outbox_table)) if source.outbox_table else None
        self.log = log.bind(source=source.name, slot=self.slot)

    # -- plumbing -------------------------------------------------------------------------------
    def _connect(self, **extra: Any) -> Any:
        return psycopg2.connect(**self.source.postgres.to_libpq(options=_SESSION, **extra))

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None and self.delivery_error is None:
            self.delivery_error = err

    def _send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, str | bytes | None]] | None = None
    ) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)
        self.stats.topics.add(topic)

    def _acknowledged(self, timeout: float = 30.0) -> None:
        """Block until the broker acknowledged every produced message; raise if one failed."""
        remaining = self.producer.flush(timeout)
        if self.delivery_error is not None or remaining:
            reason = self.delivery_error.str() if self.delivery_error else f"{remaining} messages unacknowledged"
            raise CaptureError(f"the broker did not acknowledge: {reason}", source=self.source.name, slot=self.slot)

    def _state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _save_state(self, **values: Any) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self._state(), **values}))
        tmp.replace(self.state_file)

    # -- 1 + 2: publication, slot, snapshot -----------------------------------------------------
    def prepare(self) -> None:
        conn = self._connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            tables = snapshot.captured_tables(cur, self.source.tables, self.outbox)
            self.tables = [snapshot.relation(cur, t) for t in tables]
            published = ", ".join(f'"{r.schema}"."{r.name}"' for r in self.tables)
            if self.outbox:
                schema, table = snapshot.qualified(self.outbox)
                published += f', "{schema}"."{table}"'
            cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,))
            verb = "ALTER PUBLICATION {} SET TABLE {}" if cur.fetchone() else "CREATE PUBLICATION {} FOR TABLE {}"
            cur.execute(verb.format(self.publication, published))
            cur.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (self.slot,))
            slot = cur.fetchone()
            done = self._state().get("snapshot_done_slot") == self.slot
            if slot is not None and not done:
                self.log.warning("snapshot_restarted", reason="the previous snapshot did not finish")
                cur.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
            elif slot is not None:
                self.stats.confirmed_lsn = slot[0]
        conn.close()
        if slot is None or not done:
            self._snapshot()

    def _snapshot(self) -> None:
        # The snapshot's time is the server's clock *before* the slot exists: every change the slot
        # streams commits after it, so a history version opened by the snapshot never starts
        # after the change that ends it (wall-clock time after the consistent point could).
        with self._connect() as clock, clock.cursor() as cur:
            cur.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
            now = int(cur.fetchone()[0])  # type: ignore[index]
        repl = self._connect(connection_factory=LogicalReplicationConnection)
        rcur = repl.cursor()
        rcur.execute(f"CREATE_REPLICATION_SLOT {self.slot} LOGICAL pgoutput EXPORT_SNAPSHOT")
        _, consistent, snapshot_name, _ = rcur.fetchone()
        conn = self._connect()
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_name,))
            cur.execute("SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (self.slot,))
            # Snapshot rows sort before every streamed change of the slot, even one of a transaction
            # that began before the consistent point; the truncate that precedes them sorts first.
            start = pgoutput.parse_lsn(cur.fetchone()[0])
        database = self.source.postgres.database
        for rel in self.tables:
            topic, key, value = envelopes.change_event(
                self.source.name, database, rel, "t", None, None, position=Position(start - 1, None, now), now_ms=now
            )
            self._send(topic, key, value)
            self.stats.changes += 1
        for rel in self.tables:
            for values in snapshot.rows(conn, rel):
                row = envelopes.convert_row(rel, values)
                position = Position(start, None, now, snapshot="true")
                topic, key, value = envelopes.change_event(
                    self.source.name, database, rel, "r", None, row, position=position, now_ms=now
                )
                self._send(topic, key, value)
                self.stats.snapshot_rows += 1
        self.log.info("snapshot_read", tables=len(self.tables), rows=self.stats.snapshot_rows)
        conn.rollback()
        conn.close()
        self._acknowledged(timeout=120)
        self._save_state(snapshot_done_slot=self.slot, snapshot_lsn=consistent)
        self.stats.confirmed_lsn = consistent
        repl.close()
        self.log.info("snapshot_published", rows=self.stats.snapshot_rows, lsn=consistent)

    # -- 3 + 4: stream and confirm ---------------------------------------------------------------
    def stream(self, *, once: bool = False) -> CaptureStats:
        """Publish changes until stopped (or, with ``once``, until caught up with the server)."""
        target = None
        if once:  # a logical decoding message marks "now": leave once its transaction came through
            conn = self._connect()
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_logical_emit_message(true, 'lakeport-capture', 'caught-up')::text")
                target = pgoutput.parse_lsn(cur.fetchone()[0])
            conn.close()
        repl, cur = self._start_replication()
        tx: pgoutput.Begin | None = None
        pending_lsn, pending_count, last_confirm, last_commit = 0, 0, time.monotonic(), 0
        try:
            while not self.stop.is_set():
                msg = cur.read_message()
                if msg is None:
                    if pending_lsn:
                        last_confirm, pending_lsn, pending_count = time.monotonic(), self._confirm(cur, pending_lsn), 0
                    cur.send_feedback(reply=True)
                    select.select([cur], [], [], 0.5)
                    continue
                event = pgoutput.parse(msg.payload)
                if isinstance(event, pgoutput.Begin):
                    tx = event
                elif isinstance(event, pgoutput.Relation):
                    self.relations[event.oid] = self._keyed(event)
                elif isinstance(event, pgoutput.Commit):
                    tx, last_commit = None, event.commit_lsn
                    pending_lsn, self.stats.transactions = event.end_lsn, self.stats.transactions + 1
                    if target and event.end_lsn >= target:
                        break  # caught up with "now" (confirmed below)
                elif tx is not None and event is not None:
                    position = Position(msg.data_start, tx.xid, tx.commit_ts_us // 1000, last_commit)
                    pending_count += self._publish(event, position)
                due = time.monotonic() - last_confirm >= self.source.confirm_every_seconds
                if pending_lsn and tx is None and (due or pending_count >= self.source.confirm_every_messages):
                    last_confirm, pending_lsn, pending_count = time.monotonic(), self._confirm(cur, pending_lsn), 0
            if pending_lsn:
                self._confirm(cur, pending_lsn)
        finally:
            repl.close()
        return self.stats

    def _start_replication(self, wait: float = 60.0) -> tuple[Any, Any]:
        """Open the slot's stream; a slot still held by a killed predecessor frees up shortly."""
        deadline = time.monotonic() + wait
        while True:
            repl = self._connect(connection_factory=LogicalReplicationConnection)
            cur = repl.cursor()
            try:
                options = {"proto_version": "1", "publication_names": self.publication, "messages": "true"}
                cur.start_replication(slot_name=self.slot, decode=False, options=options)
                return repl, cur
            except psycopg2.errors.ObjectInUse:
                repl.close()
                if time.monotonic() > deadline:
                    raise CaptureError(
                        "the slot stays in use by another process", source=self.source.name, slot=self.slot
                    ) from None
                self.log.info("slot_busy_retried")
                time.sleep(1.0)

    def _keyed(self, rel: pgoutput.Relation) -> pgoutput.Relation:
        """pgoutput flags the replica identity's columns (every column under ``FULL``, an index's
        under ``USING INDEX``); the key is the primary key, from the catalog, as Debezium's is."""
        with self._connect() as conn, conn.cursor() as cur:
            primary = snapshot.primary_key(cur, rel.oid)
        if not primary:  # no primary key: the replica identity is all there is
            return rel
        return replace(rel, columns=tuple(replace(c, is_key=c.name in primary) for c in rel.columns))

    def _publish(self, event: pgoutput.Change | pgoutput.Truncate, position: Position) -> int:
        now = int(time.time() * 1000)
        prefix, database = self.source.name, self.source.postgres.database
        if isinstance(event, pgoutput.Truncate):
            for oid in event.relations:
                rel = self.relations[oid]
                if f"{rel.schema}.{rel.name}" != self.outbox:
                    self._send(
                        *envelopes.change_event(prefix, database, rel, "t", None, None, position=position, now_ms=now)
                    )
            return len(event.relations)
        rel = self.relations[event.relation]
        old = envelopes.convert_row(rel, event.old) if event.old is not None else None
        new = envelopes.convert_row(rel, event.new) if event.new is not None else None
        if f"{rel.schema}.{rel.name}" == self.outbox:
            if event.kind == "I" and new is not None:
                routed = envelopes.outbox_event(new, events_prefix=self.source.events_prefix)
                self._send(routed[0], routed[1], routed[2], headers=list(routed[3]))
                self.stats.outbox_events += 1
            return 1
        events: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]
        if event.kind == "I":
            events = [("c", None, new)]
        elif event.kind == "D":
            events = [("d", old, None)]
        elif old is not None and envelopes.key_changed(rel, old, new):  # Debezium emits delete + create
            events = [("d", old, None), ("c", None, new)]
        else:
            events = [("u", old, new)]
        sent = [
            envelopes.change_event(prefix, database, rel, op, b, a, position=position, now_ms=now)
            for op, b, a in events
        ]
        if len(sent) == 2:  # a key change: each side names the other key in a header, as Debezium does
            (topic, old_key, gone), (_, new_key, born) = sent
            self._send(topic, old_key, gone, headers=[("__debezium.newkey", new_key)])
            self._send(topic, new_key, born, headers=[("__debezium.oldkey", old_key)])
        else:
            for topic, key, value in sent:
                self._send(topic, key, value)
        self.stats.changes += len(events)
        return len(events)

    def _confirm(self, cur: Any, lsn: int) -> int:
        self._acknowledged()
        cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, reply=True)
        self.stats.confirmed_lsn = pgoutput.lsn_text(lsn)
        self.log.debug("position_confirmed", lsn=self.stats.confirmed_lsn)
        return 0

    def run(self, *, once: bool = False) -> CaptureStats:
        self.prepare()
        return self.stream(once=once)


def install_signal_handlers(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
