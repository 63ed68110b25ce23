"""The ingest loop: poll → decode → guard → buffer → write+commit.

Commit order for one batch (the only place it is written down):

1. Decode records as they are polled (in the loop's thread, while the writer thread commits the
   previous batch) and guard them (input limits, column rules); bad records become dead-letter
   rows. Buffer until a flush is due.
2. Re-read both Delta logs. Rows and dead letters at or below the offsets recorded there (app
   transactions) were landed already — by a previous life of this worker or by another one — and
   are dropped, which makes every step below idempotent.
3. Append the dead letters to ``ops.dead_letters`` with one app transaction per partition.
4. Append the rows to the table with one app transaction per partition (``version`` = last offset
   of the batch), also when no row is left, so the position moves past all-bad runs.
5. Only then commit ``last + 1`` to Kafka, for lag monitoring. Positions are never read from Kafka:
   on assignment a worker seeks to the offsets in the table's Delta log.

A crash between any two steps re-reads the batch and lands each record exactly once.
"""

from __future__ import annotations

import gc
import json
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import pyarrow as pa
import structlog

from lakeport.ingestion import dead_letters, offsets
from lakeport.ingestion.batch import Buffer, FlushPolicy, group
from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.errors import AbandonedError, TerminalError, TransientError
from lakeport.ingestion.guard import GuardOptions, guard
from lakeport.ingestion.metrics import Metrics
from lakeport.ingestion.records import Batch, CommitResult, DeadLetter, Decoded, RawMessage
from lakeport.ingestion.source import TP, KafkaSource
from lakeport.ingestion.writer import DeltaWriter, SchemaRejected, WriteOptions
from lakeport.settings import Settings, TableConfig

log = structlog.get_logger("lakeport.ingest")
T = TypeVar("T")
# Bronze tables record their change feed so downstream (silver) reads only new rows per version.
BRONZE_PROPERTIES = (("delta.enableChangeDataFeed", "true"),)
# Low-cardinality columns worth a Parquet dictionary; the row images mostly are not.
DICTIONARY_COLUMNS = (
    "_topic",
    "_partition",
    "_op",
    "_source_db",
    "_source_schema",
    "_source_table",
    "_source_snapshot",
)


@dataclass
class RunStats:
    messages: int = 0
    rows: int = 0
    dead_letters: int = 0
    commits: int = 0
    skipped_duplicates: int = 0
    seconds_from_first_message: float = 0.0
    tables: dict[str, int] = field(default_factory=dict)


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        once: bool = False,
        metrics: Metrics | None = None,
        client_id: str = "lakeport",
    ) -> None:
        if not settings.tables:
            raise TerminalError("no tables configured: add at least one entry under 'tables'")
        self.settings, self.once, self.metrics = settings, once, metrics or Metrics(None)
        ing = settings.ingest
        self.buffer = Buffer(FlushPolicy(ing.flush_rows, ing.flush_bytes, ing.flush_seconds, 2 * ing.flush_bytes))
        self.writer = DeltaWriter(settings.lake.to_object_store())  # used by the writer thread only
        self.reader = DeltaWriter(settings.lake.to_object_store())  # used by the loop's thread only
        self._schemas: dict[str, pa.Schema] = {}
        self.stats = RunStats()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lakeport-writer")
        self._pending: Future[CommitResult] | None = None
        self._stop = False
        self._abandoned = False
        self._checked_at: float = 0.0
        self._started: float = 0.0
        self._once_deadline: float | None = None
        subscriptions = sorted({s for t in settings.tables for s in t.subscriptions})
        conf = settings.kafka.to_librdkafka(**{"group.id": settings.kafka.group_id, "client.id": client_id})
        start_ms = None if ing.from_timestamp is None else int(ing.from_timestamp.timestamp() * 1000)
        self.source = KafkaSource(conf, subscriptions, self._start_offsets, self._revoked, from_timestamp_ms=start_ms)

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> RunStats:
        # Records are freed by reference counting; the cyclic GC only burns CPU scanning them.
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(1_000_000, 100, 100)
        self.source.open()
        self._started = time.monotonic()
        main = threading.current_thread() is threading.main_thread()  # e.g. inside an orchestrator's thread
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
        try:
            first: float | None = None
            while not self._stop:
                raws = self.source.poll(self.settings.ingest.poll_messages, 0.2)
                if raws and first is None:
                    first = time.monotonic()
                for batch in group(raws, self._route):
                    self.buffer.add(self._decode(batch))
                for ready in self.buffer.ready():
                    self._submit(ready)
                self._collect(wait=False)
                self.metrics.observe_lag(self.source)
                if self.once and (self._nothing_to_drain() or (self.source.drained() and self._caught_up())):
                    break
            for ready in self.buffer.drain():
                if self._stop and self._abandoned:
                    break
                self._submit(ready)
            self._collect(wait=True)
        except AbandonedError as exc:  # stopped while a read was being retried
            log.warning("batch_abandoned", error=str(exc), table=exc.table)
        else:
            self.stats.seconds_from_first_message = round(time.monotonic() - first, 3) if first else 0.0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            gc.set_threshold(*thresholds)
            gc.unfreeze()
            self._pool.shutdown(wait=True)
            self.source.close()
        log.info("ingest_finished", **{k: v for k, v in vars(self.stats).items() if k != "tables"})
        return self.stats

    def _nothing_to_drain(self) -> bool:
        """For ``--once``: no partition was ever assigned because no subscribed topic exists."""
        if self.source.progress or time.monotonic() - self._started < 10.0:
            return False
        if self.source.subscribed_partitions():
            return False
        log.warning("no_partitions_to_drain", subscriptions=self.source.subscriptions)
        return True

    def _caught_up(self) -> bool:
        """For ``--once``: also partitions held by other (possibly dead) group members must have
        landed; otherwise keep polling until a rebalance hands them over or their owner lands them."""
        now = time.monotonic()
        if now - self._checked_at < 2.0:
            return False
        self._checked_at = now
        if self._once_deadline is None:
            self._once_deadline = now + self.settings.ingest.once_wait_seconds
        others = [tp for tp in self.source.subscribed_partitions() if tp not in self.source.progress]
        positions: dict[TP, int | None] = {}
        for tp in others:
            uri = self.settings.lake.table_uri("bronze", self._table_for(tp[0]).name)
            positions.update(offsets.next_offsets(self.reader.open(uri), [tp]))
        behind = self.source.has_data_from(positions) if positions else set()
        if behind and now > (self._once_deadline or now):
            log.warning("once_gave_up_waiting", partitions=[f"{t}[{p}]" for t, p in sorted(behind)])
            return True
        return not behind

    def _request_stop(self, signum: int, _frame: object) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        self._stop = True

    def _table_for(self, topic: str) -> TableConfig:
        table = self.settings.route(topic)
        if table is None:  # subscriptions come from the tables, so this is a configuration bug
            raise TerminalError(f"topic {topic!r} matches no table")
        return table

    # -- writing, one batch at a time in the writer thread --------------------------------
    def _route(self, topic: str) -> tuple[str, str]:
        table = self._table_for(topic)
        return table.name, table.format

    def _submit(self, decoded: Decoded) -> None:
        self._collect(wait=True)
        self._pending = self._pool.submit(self._land_with_retries, decoded)

    def _decode(self, batch: Batch) -> Decoded:
        """Decode against the table's schema plus what earlier batches added (not yet committed)."""
        uri = self.settings.lake.table_uri("bronze", batch.table)
        known = self._retry(lambda: self.reader.schema(uri))
        earlier = self._schemas.get(batch.table)
        if earlier is not None:
            known = earlier if known is None else pa.unify_schemas([known, earlier], promote_options="permissive")
        ing = self.settings.ingest
        decoded = decode(batch, options=DecodeOptions(batch.format, known, ing.max_message_bytes, ing.tombstones))
        decoded = guard(batch, decoded, options=self._guard_options(batch.table, known))
        if decoded.rows.num_columns:
            merged = [known, decoded.rows.schema] if known is not None else [decoded.rows.schema]
            self._schemas[batch.table] = pa.unify_schemas(merged, promote_options="permissive")
        return decoded

    def _guard_options(self, table: str, known: pa.Schema | None) -> GuardOptions:
        ing, sec = self.settings.ingest, self.settings.security
        return GuardOptions(
            rules=tuple(self.settings.table(table).column_rules),
            salt=sec.hash_salt.get_secret_value().encode(),
            max_nesting_depth=ing.max_nesting_depth,
            max_new_columns=ing.max_new_columns_per_batch,
            known_columns=frozenset(known.names) if known is not None else None,
            keep_raw_dead_letters=sec.keep_raw_dead_letters,
            unnest=tuple(self.settings.table(table).unnest),
        )

    def _collect(self, *, wait: bool) -> None:
        pending = self._pending
        if pending is None or (not wait and not pending.done()):
            return
        self._pending = None
        try:
            result = pending.result()  # re-raises a terminal failure of the writer thread
        except AbandonedError as exc:
            log.warning("batch_abandoned", error=str(exc), table=exc.table)
            self._abandoned = True
            self.buffer.drain()  # nothing more lands in this life: the next owner re-reads it all
            return
        self.source.commit(result.next_offsets)
        self.stats.messages += result.messages
        self.stats.rows += result.rows
        self.stats.dead_letters += result.dead_letters
        self.stats.skipped_duplicates += result.skipped_duplicates
        self.stats.commits += 1
        self.stats.tables[result.table] = self.stats.tables.get(result.table, 0) + result.rows
        self.metrics.observe_commit(result)
        log.info(
            "batch_flushed",
            table=result.table,
            version=result.version,
            rows=result.rows,
            dead_letters=result.dead_letters,
            seconds=round(result.seconds, 3),
        )

    def _land_with_retries(self, batch: Decoded) -> CommitResult:
        return self._retry(lambda: self._land(batch), what="commit", batch=batch)

    def _land(self, batch: Decoded) -> CommitResult:
        start, now = time.monotonic(), datetime.now(UTC)
        config = self.settings.table(batch.table)
        uri = self.settings.lake.table_uri("bronze", batch.table)
        table = self.writer.open(uri)
        landed = offsets.landed(table, batch.ranges)
        rows, skipped = offsets.drop_landed(batch.rows, landed, ranges=batch.ranges)
        todo = offsets.pending_ranges(batch.ranges, landed)
        letters, version = list(batch.dead_letters), None
        if todo:
            self._dead_letters(letters, todo, now, app="lakeport")
            ing = self.settings.ingest
            write = WriteOptions(
                tuple(config.partition_by),
                target_file_size=ing.target_file_size,
                compression=ing.compression,
                dictionary="all" if ing.parquet_dictionary == "all" else (*DICTIONARY_COLUMNS, *config.partition_by),
                configuration=BRONZE_PROPERTIES,
            )
            try:
                version = self._append(uri, rows, todo, write, batch.table)
            except SchemaRejected as exc:  # the table cannot take these rows: dead letters too
                rejected = _rejected(batch.table, rows, str(exc))
                self._dead_letters(rejected, todo, now, app="lakeport-rejected")
                letters += rejected
                rows = rows.slice(0, 0)
                version = self._append(uri, rows, todo, write, batch.table)
        next_offsets = {tp: last + 1 for tp, (_, last) in batch.ranges.items()}
        return CommitResult(
            batch.table,
            version,
            rows.num_rows,
            len(letters),
            skipped,
            batch.messages,
            batch.raw_bytes,
            time.monotonic() - start,
            next_offsets,
        )

    def _append(
        self,
        uri: str,
        rows: pa.Table,
        todo: dict[TP, tuple[int, int]],
        write: WriteOptions,
        table: str,
    ) -> int:
        return self.writer.append(
            uri, rows, transactions=offsets.transactions(todo), options=write, table_name=table
        ).version

    def _dead_letters(
        self, letters: list[DeadLetter], todo: dict[TP, tuple[int, int]], now: datetime, *, app: str
    ) -> None:
        """Append dead letters not yet in ``ops.dead_letters`` (watermarked per partition, like rows)."""
        uri = self.settings.lake.table_uri(dead_letters.LAYER, dead_letters.TABLE)
        mine = {(d.message.topic, d.message.partition) for d in letters} & set(todo)
        if not mine:
            return
        fresh = dead_letters.not_landed(letters, offsets.landed(self.writer.open(uri), mine, app=app))
        if fresh:
            rows = dead_letters.to_table(fresh, now=now)
            txns = offsets.transactions({tp: todo[tp] for tp in mine}, app=app)
            self.writer.append(uri, rows, transactions=txns, table_name="ops.dead_letters")

    # -- rebalance callbacks (called inside source.poll) ----------------------------------
    def _start_offsets(self, partitions: list[TP]) -> dict[TP, int | None]:
        by_uri: dict[str, list[TP]] = {}
        for tp in partitions:
            by_uri.setdefault(self.settings.lake.table_uri("bronze", self._table_for(tp[0]).name), []).append(tp)
        out: dict[TP, int | None] = {}
        for uri, tps in by_uri.items():
            out.update(self._retry(partial(self._stored_offsets, uri, tps)))
        return out

    def _stored_offsets(self, uri: str, tps: list[TP]) -> dict[TP, int | None]:
        return offsets.next_offsets(self.reader.open(uri), tps)

    def _revoked(self, partitions: list[TP]) -> None:
        self._collect(wait=True)  # an in-flight commit finishes before another worker may start
        dropped = self.buffer.drop(partitions)
        if dropped:
            log.info("buffer_dropped", rows=dropped, reason="partitions revoked")

    def _retry(self, fn: Callable[[], T], *, what: str = "read", batch: Decoded | None = None) -> T:
        """Call ``fn``, retrying transient failures with exponential backoff up to the configured
        time; then fail terminally, with the table and offsets that did not land."""
        ing = self.settings.ingest
        delay, deadline = ing.retry_backoff_seconds, time.monotonic() + ing.retry_timeout_seconds
        table = batch.table if batch else None
        while True:
            try:
                return fn()
            except TransientError as exc:
                if self._stop:  # SIGTERM during an outage: do not hold the shutdown for the retry budget
                    raise AbandonedError(f"stopped while retrying: {exc}", table=table) from None
                if time.monotonic() + delay > deadline:
                    raise TerminalError(
                        f"gave up after retrying: {exc}", table=table, offsets=batch.ranges if batch else None
                    ) from None
                log.warning(f"{what}_retried", table=table, error=str(exc), backoff=delay)
                if table:
                    self.metrics.retries.labels(table).inc()
                time.sleep(delay)
                delay = min(delay * 2, 10.0)


def _rejected(table: str, rows: pa.Table, error: str) -> list[DeadLetter]:
    """Rows the table refused, as dead letters; the value is the decoded row re-encoded as JSON
    (the raw bytes were not kept after decoding)."""
    out = []
    for row in rows.to_pylist():
        meta = RawMessage(
            row["_topic"],
            row["_partition"],
            row["_offset"],
            None,
            None if row["_key"] is None else str(row["_key"]).encode(),
            json.dumps({k: v for k, v in row.items() if not k.startswith("_")}, default=str).encode(),
        )
        out.append(DeadLetter(table, meta, error, "write"))
    return out
