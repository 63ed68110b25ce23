"""``lakeport ingest``, ``capture`` and ``status``: Kafka into bronze, PostgreSQL into Kafka, and where
each table stands."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from lakeport.cli.options import ConfigOpt, JsonOpt, err, iso_time, out, print_rows, settings_from
from lakeport.settings import ConfigError
from lakeport.settings import log as logging
from lakeport.settings.runtime import tune_memory


def ingest(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="drain to the high watermarks seen at start, then exit")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="serve Prometheus metrics on HOST:PORT"),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="address of the metrics endpoint (0.0.0.0 in a container)")] = (
        "127.0.0.1"
    ),
    log_json: Annotated[bool, typer.Option("--log-json")] = False,
    from_timestamp: Annotated[
        str | None, typer.Option(help="backfill: partitions with no lake offsets start at this ISO time (UTC)")
    ] = None,
) -> None:
    """Run an ingest worker in the consumer group (any number may run side by side)."""
    from lakeport.ingestion.errors import IngestError
    from lakeport.ingestion.metrics import Metrics
    from lakeport.ingestion.worker import Worker

    logging.configure(json=log_json)
    settings = settings_from(config)
    if from_timestamp:
        start = iso_time(from_timestamp, option="--from-timestamp")
        settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"from_timestamp": start})})
    tune_memory()
    try:
        stats = Worker(settings, once=once, metrics=Metrics(metrics_port, host=metrics_host)).run()
    except IngestError as exc:
        err.print(f"[red]error:[/red] {logging.redact(str(exc))}")
        raise typer.Exit(1) from None
    out.print(f"landed {stats.rows} rows, {stats.dead_letters} dead letters, {stats.commits} commits"
              + (f"; skipped {stats.gap_records} records Kafka deleted before they landed (ops.retention_gaps)"
                 if stats.gap_records else ""))  # fmt: skip


def capture(
    config: ConfigOpt = None,
    source: Annotated[str | None, typer.Option(help="the source in the config (default: the first)")] = None,
    once: Annotated[bool, typer.Option("--once", help="publish what the database has now, then exit")] = False,
    log_json: Annotated[bool, typer.Option("--log-json")] = False,
) -> None:
    """Publish a PostgreSQL database's changes (pgoutput) to Kafka as Debezium change events."""
    import threading

    from lakeport.capture.errors import CaptureError
    from lakeport.capture.publisher import Publisher, install_signal_handlers

    logging.configure(json=log_json)
    settings = settings_from(config)
    stop = threading.Event()
    install_signal_handlers(stop)
    try:
        stats = Publisher(settings.source(source), settings.kafka, stop=stop).run(once=once)
    except (CaptureError, ConfigError) as exc:
        err.print(f"[red]error:[/red] {logging.redact(str(exc))}")
        raise typer.Exit(1) from None
    out.print(
        f"published {stats.snapshot_rows} snapshot rows, {stats.changes} changes, {stats.outbox_events} outbox "
        f"events from {stats.transactions} transactions; confirmed {stats.confirmed_lsn}"
    )


def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Per table: Delta version, rows, files; per partition: lake offset vs high watermark."""
    from lakeport.lake import status as report

    statuses = report.collect(settings_from(config))
    if as_json:
        sys.stdout.write(json.dumps(report.as_dicts(statuses)) + "\n")
        return
    rows = [
        (
            s.table,
            s.version,
            s.rows,
            s.files,
            s.lag,
            ", ".join(f"{p.topic}[{p.partition}] {p.lake_offset}/{p.high_watermark}" for p in s.partitions),
            f"BLOCKED on a schema change: {s.schema_blocked} records ({s.schema_conflict})"
            if s.schema_blocked
            else "ok",
        )
        for s in statuses
    ]
    print_rows(["table", "version", "rows", "files", "lag", "partitions (lake/high)", "state"], rows, "table")
