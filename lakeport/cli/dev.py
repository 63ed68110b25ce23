"""``lakeport dev``, ``dagster`` and ``demo``: the local stack, Dagster's UI over it, and the demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from lakeport.cli.options import ConfigOpt, HomeOpt, JsonOpt, err, out, settings_from
from lakeport.settings import log as logging


def dev_up(
    config: ConfigOpt = None,
    home: HomeOpt = Path(".lakeport"),
    kafka_port: Annotated[int | None, typer.Option(help="default: the port in the config's bootstrap_servers")] = None,
    s3_port: Annotated[int | None, typer.Option(help="default: the port in the config's AWS_ENDPOINT_URL")] = None,
    postgres_port: Annotated[int | None, typer.Option(help="default: the first source's port in the config")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="start with empty S3 and PostgreSQL")] = False,
    kafka: Annotated[
        str, typer.Option("--kafka", help="tansu (fast, no JVM) or apache (Apache Kafka 4: make jvm-deps)")
    ] = "tansu",
    registry_port: Annotated[
        int | None, typer.Option(help="also a Schema Registry here (Apicurio, Confluent-compatible API; Java 21+)")
    ] = None,
) -> None:
    """Start the broker, S3 and PostgreSQL on loopback (the ports the config expects); wait until they answer."""
    from lakeport.dev import stack
    from lakeport.dev.postgres import DEV_DATABASE

    if kafka not in ("tansu", "apache"):
        raise typer.BadParameter(f"--kafka must be tansu or apache, not {kafka!r}")
    settings = settings_from(config)
    want_kafka, want_s3 = stack.ports_for(settings)
    try:
        state = stack.up(
            home,
            kafka_port=kafka_port or want_kafka,
            s3_port=s3_port or want_s3,
            postgres_port=postgres_port or stack.postgres_port_for(settings),
            fresh=fresh,
            kafka="apache" if kafka == "apache" else "tansu",  # checked above
            registry_port=registry_port,
        )
    except stack.StackError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    out.print(
        f"kafka    {state.kafka_bootstrap}\ns3       {state.s3_endpoint} (bucket {state.bucket})\n"
        f"postgres 127.0.0.1:{state.postgres_port} (database {DEV_DATABASE})\nstate    {state.home}"
        + (f"\nregistry {state.registry_url}" if state.registry_url else "")
    )


def dev_down(home: HomeOpt = Path(".lakeport")) -> None:
    """Stop the services this state directory started (by pid)."""
    from lakeport.dev import stack

    stopped = stack.down(home)
    out.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


def dev_status(home: HomeOpt = Path(".lakeport"), as_json: JsonOpt = False) -> None:
    """Report the local stack's services; exit 1 if it is not fully running."""
    from lakeport.dev import stack

    report = stack.status(home)
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        for s in report["services"]:  # type: ignore[attr-defined]
            out.print(f"{s['name']:8} pid {s['pid']:>7}  127.0.0.1:{s['port']:<6} {'up' if s['running'] else 'DOWN'}")
        if not report["services"]:
            out.print("not running")
    raise typer.Exit(0 if report["running"] else 1)


def dagster(
    config: ConfigOpt = None,
    home: HomeOpt = Path(".lakeport"),
    port: Annotated[int, typer.Option(help="webserver port on 127.0.0.1")] = 3000,
) -> None:
    """Run `dagster dev` (UI, daemon, code server) over this config's lake until Ctrl-C."""
    import signal

    from lakeport.dev import dagster_dev
    from lakeport.dev.processes import StackError

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


def demo_run(
    config: ConfigOpt = None,
    home: HomeOpt = Path(".lakeport"),
    transactions: Annotated[int, typer.Option(help="database transactions the workload runs")] = 1500,
    keep: Annotated[bool, typer.Option("--keep", help="leave the stack running")] = False,
    kafka: Annotated[
        str, typer.Option("--kafka", help="tansu (fast, no JVM) or apache (Apache Kafka 4: make jvm-deps)")
    ] = "tansu",
    debezium: Annotated[
        bool, typer.Option("--debezium", help="the real Debezium connector in Kafka Connect captures (--kafka apache)")
    ] = False,
) -> None:
    """Start the stack, run e-commerce transactions in PostgreSQL, capture, ingest, build silver,
    reconcile, show what landed, stop the stack."""
    from lakeport.dev import demo as runner

    if kafka not in ("tansu", "apache"):
        err.print(f"--kafka must be tansu or apache, not {kafka!r}")
        raise typer.Exit(2)
    if debezium and kafka != "apache":
        err.print("--debezium needs --kafka apache: Kafka Connect runs beside Apache Kafka")
        raise typer.Exit(2)
    logging.configure(level="WARNING")
    settings = settings_from(config or Path("lakeport.yaml"))
    equal = runner.run(settings, home=home, transactions=transactions, keep=keep, console=out,
                       kafka=kafka, debezium=debezium)  # type: ignore[arg-type]  # fmt: skip
    raise typer.Exit(0 if equal else 1)


def demo_workload(
    config: ConfigOpt = None,
    source: Annotated[str | None, typer.Option(help="the source database in the config (default: the first)")] = None,
    transactions: Annotated[int, typer.Option(help="how many transactions to run")] = 1000,
    seed: Annotated[int, typer.Option(help="random seed: the same seed on a fresh database, the same data")] = 7,
    rate: Annotated[float | None, typer.Option(help="at most this many transactions per second")] = None,
) -> None:
    """Run e-commerce transactions (sign-ups, orders, payments, shipments, cancellations, deletes)."""
    from lakeport.dev.oltp import apply_schema, run_workload

    conn = settings_from(config).source(source).postgres.to_libpq()
    apply_schema(conn)
    stats = run_workload(conn, transactions=transactions, seed=seed, rate=rate)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_kind.items()))
    out.print(f"ran {stats.transactions} transactions ({kinds}); {stats.outbox_events} outbox events")
