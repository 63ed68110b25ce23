"""The ``lakeport`` command line: one typer app, thin commands over the library."""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lakeport import log as logging
from lakeport.config import ConfigError, Settings, load_settings
from lakeport.runtime import tune_memory

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Land Kafka topics in a Delta Lake, exactly once.",
)
dev = typer.Typer(no_args_is_help=True, help="The local stack: Kafka-API broker (Tansu) and S3 (SeaweedFS).")
demo = typer.Typer(no_args_is_help=True, help="The e-commerce demo.")
app.add_typer(dev, name="dev")
app.add_typer(demo, name="demo")
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="lakeport.yaml (default: $LAKEPORT_CONFIG or ./lakeport.yaml)"),
]
HomeOpt = Annotated[Path, typer.Option("--home", help="state directory of the local stack", envvar="LAKEPORT_HOME")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def settings_from(config: Path | None) -> Settings:
    """Build settings once, at the edge; a bad config exits 2 with the file and field named."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {logging.redact(str(exc))}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    secrets = [
        v.get_secret_value()
        for v in [*settings.kafka.properties.values(), *settings.lake.storage_options.values()]
        if hasattr(v, "get_secret_value")
    ] + [s.postgres.password.get_secret_value() for s in settings.sources]
    secrets += [*settings.alerts.secrets(), settings.security.hash_salt.get_secret_value()]
    logging.register_secrets(secrets)
    return settings


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode()
    return str(value)


def _print_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=_jsonable) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)


@dev.command("up")
def dev_up(
    config: ConfigOpt = None,
    home: HomeOpt = Path(".lakeport"),
    kafka_port: Annotated[int | None, typer.Option(help="default: the port in the config's bootstrap_servers")] = None,
    s3_port: Annotated[int | None, typer.Option(help="default: the port in the config's AWS_ENDPOINT_URL")] = None,
    postgres_port: Annotated[int | None, typer.Option(help="default: the first source's port in the config")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="start with empty S3 and PostgreSQL")] = False,
) -> None:
    """Start the broker, S3 and PostgreSQL on loopback (the ports the config expects); wait until they answer."""
    from lakeport import stack
    from lakeport.postgres import DEV_DATABASE

    settings = settings_from(config)
    want_kafka, want_s3 = stack.ports_for(settings)
    try:
        state = stack.up(
            home,
            kafka_port=kafka_port or want_kafka,
            s3_port=s3_port or want_s3,
            postgres_port=postgres_port or stack.postgres_port_for(settings),
            fresh=fresh,
        )
    except stack.StackError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    out.print(
        f"kafka    {state.kafka_bootstrap}\ns3       {state.s3_endpoint} (bucket {state.bucket})\n"
        f"postgres 127.0.0.1:{state.postgres_port} (database {DEV_DATABASE})\nstate    {state.home}"
    )


@dev.command("down")
def dev_down(home: HomeOpt = Path(".lakeport")) -> None:
    """Stop the services this state directory started (by pid)."""
    from lakeport import stack

    stopped = stack.down(home)
    out.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@dev.command("status")
def dev_status(home: HomeOpt = Path(".lakeport"), as_json: JsonOpt = False) -> None:
    """Report the local stack's services; exit 1 if it is not fully running."""
    from lakeport import stack

    report = stack.status(home)
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        for s in report["services"]:  # type: ignore[attr-defined]
            out.print(f"{s['name']:6} pid {s['pid']:>7}  127.0.0.1:{s['port']:<6} {'up' if s['running'] else 'DOWN'}")
        if not report["services"]:
            out.print("not running")
    raise typer.Exit(0 if report["running"] else 1)


@app.command()
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
    from ingestion.errors import IngestError
    from ingestion.metrics import Metrics
    from ingestion.worker import Worker

    logging.configure(json=log_json)
    settings = settings_from(config)
    if from_timestamp:
        from datetime import UTC, datetime

        try:
            start = datetime.fromisoformat(from_timestamp.replace("Z", "+00:00"))
        except ValueError:
            raise typer.BadParameter(f"--from-timestamp: not an ISO time: {from_timestamp!r}") from None
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"from_timestamp": start})})
    tune_memory()
    try:
        stats = Worker(settings, once=once, metrics=Metrics(metrics_port, host=metrics_host)).run()
    except IngestError as exc:
        err.print(f"[red]error:[/red] {logging.redact(str(exc))}")
        raise typer.Exit(1) from None
    out.print(f"landed {stats.rows} rows, {stats.dead_letters} dead letters, {stats.commits} commits")


@app.command()
def capture(
    config: ConfigOpt = None,
    source: Annotated[str | None, typer.Option(help="the source in the config (default: the first)")] = None,
    once: Annotated[bool, typer.Option("--once", help="publish what the database has now, then exit")] = False,
    log_json: Annotated[bool, typer.Option("--log-json")] = False,
) -> None:
    """Publish a PostgreSQL database's changes (pgoutput) to Kafka as Debezium change events."""
    import threading

    from capture.errors import CaptureError
    from capture.publisher import Publisher, install_signal_handlers

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


@app.command()
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Per table: Delta version, rows, files; per partition: lake offset vs high watermark."""
    from ingestion import status as report

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
        )
        for s in statuses
    ]
    _print_rows(["table", "version", "rows", "files", "lag", "partitions (lake/high)"], rows, "table")


@app.command()
def dagster(
    config: ConfigOpt = None,
    home: HomeOpt = Path(".lakeport"),
    port: Annotated[int, typer.Option(help="webserver port on 127.0.0.1")] = 3000,
) -> None:
    """Run `dagster dev` (UI, daemon, code server) over this config's lake until Ctrl-C."""
    import signal

    from lakeport import dagster_dev
    from lakeport.processes import StackError

    path = (config or Path("lakeport.yaml")).resolve()
    settings_from(path)  # a bad config fails here, naming the field, not inside the code server
    try:
        service = dagster_dev.start(home=home, config=path, port=port)
    except StackError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    out.print(f"Dagster UI: http://127.0.0.1:{port}  (state {home / 'dagster'}, log {service.log}); Ctrl-C stops it")
    try:
        # Blocked only now: dagster dev must not inherit a mask that hides SIGTERM from it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        dagster_dev.stop_dagster(service)
    out.print("dagster dev stopped")


@demo.command("run")
def demo_run(
    config: ConfigOpt = None,
    home: HomeOpt = Path(".lakeport"),
    transactions: Annotated[int, typer.Option(help="database transactions the workload runs")] = 1500,
    keep: Annotated[bool, typer.Option("--keep", help="leave the stack running")] = False,
) -> None:
    """Start the stack, run e-commerce transactions in PostgreSQL, capture, ingest, build silver,
    reconcile, show what landed, stop the stack."""
    from lakeport import demo as runner

    logging.configure(level="WARNING")
    settings = settings_from(config or Path("lakeport.yaml"))
    equal = runner.run(settings, home=home, transactions=transactions, keep=keep, console=out)
    raise typer.Exit(0 if equal else 1)


@demo.command("workload")
def demo_workload(
    config: ConfigOpt = None,
    source: Annotated[str | None, typer.Option(help="the source database in the config (default: the first)")] = None,
    transactions: Annotated[int, typer.Option(help="how many transactions to run")] = 1000,
    seed: Annotated[int, typer.Option(help="random seed: the same seed on a fresh database, the same data")] = 7,
    rate: Annotated[float | None, typer.Option(help="at most this many transactions per second")] = None,
) -> None:
    """Run e-commerce transactions (sign-ups, orders, payments, shipments, cancellations, deletes)."""
    from lakeport.oltp import apply_schema, run_workload

    conn = settings_from(config).source(source).postgres.to_libpq()
    apply_schema(conn)
    stats = run_workload(conn, transactions=transactions, seed=seed, rate=rate)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_kind.items()))
    out.print(f"ran {stats.transactions} transactions ({kinds}); {stats.outbox_events} outbox events")


from lakeport import cli_lake  # noqa: E402,F401  (registers the lake commands on `app`)


def main() -> None:
    """The console script. After the command, flush and leave without interpreter teardown: the
    Rust (delta-rs) and Arrow thread pools can abort the process while being torn down at exit
    ("terminate called without an active exception") after the command itself succeeded."""
    import os

    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
