"""The ingest loop: poll → decode → guard → buffer → land → commit offsets.

The loop's thread polls, decodes and guards; one writer thread lands each batch while the next is
decoded. The commit order of a batch is written down once, in :mod:`ingestion.landing`. Kafka's
committed offsets only follow the lake: on assignment a worker seeks to the offsets in the Delta
log (:mod:`ingestion.offsets`). Retries are :mod:`ingestion.retry`'s; when ``--once`` is done is
:mod:`ingestion.drain`'s.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import pyarrow as pa
import structlog

from lakeport.ingestion import arrow_types, offsets
from lakeport.ingestion.batch import Buffer, FlushPolicy, group
from lakeport.ingestion.conflicts import STAGE as SCHEMA_STAGE
from lakeport.ingestion.conflicts import SchemaAlerts
from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.drain import Drain
from lakeport.ingestion.errors import AbandonedError, TerminalError
from lakeport.ingestion.gaps import GapKeeper
from lakeport.ingestion.guard import GuardOptions, guard
from lakeport.ingestion.landing import Lander
from lakeport.ingestion.metrics import Metrics
from lakeport.ingestion.records import Batch, CommitResult, Decoded, RunStats
from lakeport.ingestion.retry import Retrier, RetryPolicy
from lakeport.ingestion.source import TP, KafkaSource
from lakeport.ingestion.writer import DeltaWriter, TableHandles
from lakeport.settings import Settings
from lakeport.settings.runtime import quiet_gc, stop_signals

log = structlog.get_logger("lakeport.ingest")


class Worker:
    def __init__(self, settings: Settings, *, once: bool = False, metrics: Metrics | None = None,
                 client_id: str = "lakeport") -> None:  # fmt: skip
        if not settings.tables:
            raise TerminalError("no tables configured: add at least one entry under 'tables'")
        self.settings, self.metrics, ing = settings, metrics or Metrics(None), settings.ingest
        self.buffer = Buffer(FlushPolicy(ing.flush_rows, ing.flush_bytes, ing.flush_seconds, 2 * ing.flush_bytes))
        self.tables = TableHandles(settings.lake.to_object_store())  # the loop's thread only
        self.lander = Lander(settings, DeltaWriter(settings.lake.to_object_store()))  # the writer thread only
        policy = RetryPolicy(backoff_seconds=ing.retry_backoff_seconds, timeout_seconds=ing.retry_timeout_seconds)
        self.retry = Retrier(policy, stopping=lambda: self._stop, on_retry=self.metrics.observe_retry)
        self._schemas: dict[str, pa.Schema] = {}  # per table: what batches not yet committed added
        self.stats = RunStats()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lakeport-writer")
        self._pending: Future[CommitResult] | None = None
        self._stop = self._abandoned = False
        subscriptions = sorted({s for t in settings.tables for s in t.subscriptions})
        conf = settings.kafka.to_librdkafka(**{"group.id": settings.kafka.group_id, "client.id": client_id})
        start_ms = None if ing.from_timestamp is None else int(ing.from_timestamp.timestamp() * 1000)
        self.gaps, self.conflicts = GapKeeper(settings), SchemaAlerts(settings)
        self.source = KafkaSource(conf, subscriptions, self._start_offsets, self._revoked, from_timestamp_ms=start_ms,
                                  on_gap=self._gap)  # fmt: skip
        self.drain = (
            Drain(self.source, positions=self._start_offsets, wait_seconds=ing.once_wait_seconds) if once else None
        )

    def run(self) -> RunStats:
        self.source.open()
        try:
            with quiet_gc(), stop_signals(self._request_stop):
                self._loop()
        except AbandonedError as exc:  # stopped while a read was being retried
            log.warning("batch_abandoned", error=str(exc), table=exc.table)
        finally:
            self._pool.shutdown(wait=True)
            self.source.close()
        log.info("ingest_finished", **{k: v for k, v in vars(self.stats).items() if k != "tables"})
        return self.stats

    def _loop(self) -> None:
        first: float | None = None
        while not self._stop:
            raws = self.source.poll(self.settings.ingest.poll_messages, 0.2)
            first = first or (time.monotonic() if raws else None)
            for batch in group(raws, self._route):
                self.buffer.add(self._decode(batch))
            for ready in self.buffer.ready():
                self._submit(ready)
            self._collect(wait=False)
            self.metrics.observe_lag(self.source)
            if self.drain is not None and self.drain.done():
                break
        for ready in self.buffer.drain():
            if self._stop and self._abandoned:
                break
            self._submit(ready)
        self._collect(wait=True)
        self.stats.seconds_from_first_message = round(time.monotonic() - first, 3) if first else 0.0

    def _request_stop(self, signum: int, _frame: object) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        self._stop = True

    def _route(self, topic: str) -> tuple[str, str]:
        """The table a topic lands in, and its format."""
        table = self.settings.route(topic)
        if table is None:  # subscriptions come from the tables, so this is a configuration bug
            raise TerminalError(f"topic {topic!r} matches no table")
        return table.name, table.format

    def _decode(self, batch: Batch) -> Decoded:
        """Decode against the table's schema plus what earlier batches added (not yet committed).
        Records that conflict with it are first decoded again against the schema re-read from the
        Delta log (another worker may have changed it); only what still conflicts is blamed."""
        uri = self.settings.lake.table_uri("bronze", batch.table)
        known = self._known(batch.table, self.retry(lambda: self.tables.schema(uri)))
        ing = self.settings.ingest
        decoded = decode(batch, options=DecodeOptions(batch.format, known, ing.max_message_bytes, ing.tombstones))
        if any(d.stage == SCHEMA_STAGE for d in decoded.dead_letters):
            handle = self.retry(lambda: self.tables.open(uri, refresh=True))
            newer = self._known(batch.table, pa.schema(handle.schema().to_arrow()) if handle else None)  # type: ignore[arg-type]
            if newer is not None and (known is None or not newer.equals(known)):
                known = newer
                decoded = decode(batch, options=DecodeOptions(batch.format, known, ing.max_message_bytes,
                                                              ing.tombstones))  # fmt: skip
            self.conflicts.report(batch.table, decoded.dead_letters)
        decoded = guard(batch, decoded, options=GuardOptions.of(self.settings, batch.table, known))
        if decoded.rows.num_columns:
            merged = [known, decoded.rows.schema] if known is not None else [decoded.rows.schema]
            self._schemas[batch.table] = arrow_types.unify(merged)
        return decoded

    def _known(self, table: str, stored: pa.Schema | None) -> pa.Schema | None:
        """The table's schema as the Delta log has it, plus columns earlier batches brought that
        it does not have yet. A type the log has wins: a widening an earlier batch brought may
        have been refused, and its integers must not be read as doubles."""
        earlier = self._schemas.get(table)
        if earlier is None or stored is None:
            return stored if earlier is None else earlier
        return pa.schema([*stored, *(f for f in earlier if f.name not in stored.names)])

    def _submit(self, decoded: Decoded) -> None:
        self._collect(wait=True)
        self._pending = self._pool.submit(self.retry, lambda: self.lander.land(decoded), what="commit", batch=decoded)

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
        if result.conflicts:
            self.conflicts.report(result.table, result.conflicts)
        self.stats.add(result)
        self.metrics.observe_commit(result)
        log.info("batch_flushed", table=result.table, version=result.version, rows=result.rows,
                 dead_letters=result.dead_letters, seconds=round(result.seconds, 3))  # fmt: skip

    # -- rebalance callbacks (called inside source.poll) ----------------------------------
    def _start_offsets(self, partitions: list[TP]) -> dict[TP, int | None]:
        """The next offset the lake needs, per partition, from the Delta logs (retried)."""
        by_uri: dict[str, list[TP]] = {}
        for tp in partitions:
            by_uri.setdefault(self.settings.lake.table_uri("bronze", self._route(tp[0])[0]), []).append(tp)
        out: dict[TP, int | None] = {}
        for uri, tps in by_uri.items():
            out.update(self.retry(partial(self._stored_offsets, uri, tps)))
        return out

    def _stored_offsets(self, uri: str, tps: list[TP]) -> dict[TP, int | None]:
        return offsets.next_offsets(self.tables.open(uri), tps)

    def _gap(self, tp: TP, needed: int, log_start: int) -> int:
        """Records deleted from Kafka before they landed (:mod:`ingestion.gaps`): recorded, alerted,
        then a terminal error (on_gap: fail) or counted and skipped (on_gap: skip)."""
        table = self._route(tp[0])[0]
        where = self.retry(lambda: self.gaps.found(table, tp[0], tp[1], needed=needed, log_start=log_start))
        self.metrics.gaps.labels(table).inc(log_start - needed)  # skipped: on_gap: fail raised above
        self.stats.gap_records = self.gaps.skipped
        return where

    def _revoked(self, partitions: list[TP]) -> None:
        self._collect(wait=True)  # an in-flight commit finishes before another worker may start
        dropped = self.buffer.drop(partitions)
        if dropped:
            log.info("buffer_dropped", rows=dropped, reason="partitions revoked")
