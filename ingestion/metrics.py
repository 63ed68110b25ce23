"""Prometheus metrics of a worker: messages, bytes, dead letters, flush latency, lag."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from lakeport.ingestion.records import CommitResult


class Metrics:
    def __init__(self, port: int | None, *, host: str = "127.0.0.1", lag_interval: float = 5.0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "lakeport_messages_total",
            "Kafka messages landed or dead-lettered",
            ["table"],
            registry=r,
        )
        self.bytes = Counter("lakeport_bytes_total", "Raw Kafka value bytes consumed", ["table"], registry=r)
        self.rows = Counter("lakeport_rows_total", "Rows appended to the table", ["table"], registry=r)
        self.dead = Counter("lakeport_dead_letters_total", "Records sent to ops.dead_letters", ["table"], registry=r)
        self.retries = Counter("lakeport_retries_total", "Retried Delta commits", ["table"], registry=r)
        self.gaps = Counter("lakeport_retention_gap_records_total", "Records Kafka deleted before they landed",
                            ["table"], registry=r)  # fmt: skip
        self.flush = Histogram(
            "lakeport_flush_seconds",
            "Decode+write+commit time of a batch",
            ["table"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.version = Gauge("lakeport_delta_version", "Latest Delta version written", ["table"], registry=r)
        self.lag = Gauge(
            "lakeport_lag_messages",
            "High watermark minus position",
            ["topic", "partition"],
            registry=r,
        )
        self.up = Gauge("lakeport_up", "1 while the worker runs", registry=r)
        self.up.set(1)
        self._lag_interval, self._lag_at = lag_interval, 0.0
        if port is not None:
            start_http_server(port, addr=host, registry=r)

    def observe_commit(self, result: CommitResult) -> None:
        t = result.table
        self.messages.labels(t).inc(result.messages)
        self.bytes.labels(t).inc(result.raw_bytes)
        self.rows.labels(t).inc(result.rows)
        self.dead.labels(t).inc(result.dead_letters)
        self.flush.labels(t).observe(result.seconds)
        if result.version is not None:
            self.version.labels(t).set(result.version)

    def observe_retry(self, table: str) -> None:
        self.retries.labels(table).inc()

    def observe_lag(self, source: Any) -> None:
        """Lag from the client's cached watermarks, at most every ``lag_interval`` seconds."""
        now = time.monotonic()
        if now - self._lag_at < self._lag_interval:
            return
        self._lag_at = now
        for (topic, partition), progress in list(source.progress.items()):
            try:
                high = source.high_watermarks([(topic, partition)], cached=True)[(topic, partition)]
            except Exception:
                continue
            if high >= 0:
                self.lag.labels(topic, str(partition)).set(max(high - progress.position, 0))
