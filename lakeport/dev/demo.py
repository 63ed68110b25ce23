"""``make demo``: the whole CDC path on the embedded default stack, then a look at what landed.

PostgreSQL (e-commerce transactions, outbox events) → ``lakeport capture`` (pgoutput → Debezium
envelopes) → Kafka → ``lakeport ingest`` (bronze) → ``lakeport silver`` (current state, history)
→ ``lakeport reconcile`` (the lake equals the database). ``make demo KAFKA=apache DEBEZIUM=1``:
Apache Kafka, and the real Debezium connector in Kafka Connect instead of ``lakeport capture``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.table import Table

from lakeport.dev import stack
from lakeport.dev.feeds import CaptureFeed, DebeziumFeed
from lakeport.dev.oltp import apply_schema, run_workload
from lakeport.dev.processes import StackError
from lakeport.ingestion.worker import Worker
from lakeport.lake import Lake
from lakeport.lake.gold import models, refresh_gold
from lakeport.lake.reconcile import reconcile
from lakeport.lake.refresh import refresh_silver
from lakeport.quality.gx_context import docs_index
from lakeport.quality.run import check
from lakeport.settings import Settings


def run(settings: Settings, *, home: Path, transactions: int, keep: bool, console: Console,
        kafka: Literal["tansu", "apache"] = "tansu", debezium: bool = False) -> bool:  # fmt: skip
    """Run the demo; True when the lake reconciles with the source database. ``debezium``: the real
    connector in Kafka Connect replaces ``lakeport capture`` (needs ``kafka="apache"``)."""
    if debezium and kafka != "apache":
        raise StackError("the Debezium demo runs on Apache Kafka: add KAFKA=apache (or --kafka apache)")
    started = stack.load_state(home.resolve()) is None
    kafka_port, s3_port = stack.ports_for(settings)
    console.rule(f"[bold]1. local stack ({'Apache Kafka' if kafka == 'apache' else 'Tansu'})")
    state = stack.up(home, kafka_port=kafka_port, s3_port=s3_port, postgres_port=stack.postgres_port_for(settings),
                     fresh=started, kafka=kafka)  # fmt: skip
    console.print(f"broker {state.kafka_bootstrap}, S3 {state.s3_endpoint}, PostgreSQL 127.0.0.1:{state.postgres_port}")
    feed: CaptureFeed | DebeziumFeed | None = None
    try:
        conn = settings.source(None).postgres.to_libpq()
        apply_schema(conn)
        if debezium:
            t0 = time.monotonic()
            feed = DebeziumFeed(settings, home=home, bootstrap=state.kafka_bootstrap)
            feed.start()
            console.print(f"Kafka Connect with Debezium's connectors running after {time.monotonic() - t0:.1f}s")
        else:
            feed = CaptureFeed(settings, home=home)
            feed.start()  # the slot (and snapshot) first: every later change and outbox event is streamed
        console.rule(f"[bold]2-5. transactions in PostgreSQL → {feed.name} → ingest (bronze) → silver, in two rounds")
        kinds: Counter[str] = Counter()
        tot: Counter[str] = Counter()  # totals over the rounds
        topics: set[str] = set()
        # Two rounds, so every table has an older Delta version to travel back to.
        for round_no, (n, seed) in enumerate([(transactions // 2, 7), (transactions - transactions // 2, 8)], 1):
            stats = run_workload(conn, transactions=n, seed=seed)
            published = feed.publish(f"round-{round_no}")
            t0 = time.monotonic()
            landed = Worker(settings, once=True).run()  # lakeport ingest --once
            ingest_ms = int((time.monotonic() - t0) * 1000)
            results = refresh_silver(settings)  # lakeport silver
            applied = sum(r["changes"] for r in results if r["kind"] == "current")
            console.print(
                f"round {round_no}: {stats.transactions:,} transactions → "
                f"{published.snapshot + published.changes + published.events:,} Kafka events → "
                f"{landed.rows:,} bronze rows → {applied:,} silver changes"
            )
            kinds.update(stats.by_kind)
            topics |= published.topics
            tot.update(done=stats.transactions, ms=int(stats.seconds * 1000), rows=landed.rows, applied=applied)
            tot.update(snapshot=published.snapshot, changes=published.changes, events=published.events)
            tot.update(commits=landed.commits, letters=landed.dead_letters, ingest_ms=ingest_ms)
        kind_text = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        console.print(f"ran {tot['done']:,} transactions in {tot['ms'] / 1000:.1f}s ({kind_text})")
        console.print(
            f"{feed.name} published {tot['snapshot']:,} snapshot rows, {tot['changes']:,} changes and "
            f"{tot['events']:,} domain events to {len(topics)} topics"
            + (" (Debezium's snapshot rows and tombstones count as changes)" if debezium else "")
        )
        console.print(
            f"landed {tot['rows']:,} rows in {tot['commits']} Delta commits, {tot['letters']} dead letters, "
            f"{tot['ingest_ms'] / 1000:.1f}s"
        )
        console.print(f"applied {tot['applied']:,} changes")
        console.rule("[bold]6. lakeport gold (SQL models in lake/models → gold Delta tables)")
        for g in refresh_gold(settings):
            console.print(f"  gold.{g.model:<15} {g.rows:>6,} rows  ({g.seconds:.2f}s)")
        console.rule("[bold]7. lakeport reconcile (silver vs PostgreSQL, row by row)")
        reports = reconcile(settings)
        equal = all(r.ok for r in reports)
        for r in reports:
            mark = "[green]equal[/green]" if r.ok else "[red]DIFFERENT[/red]"
            console.print(f"  silver.{r.table:<12} {r.lake_rows:>6,} rows  vs  {r.source_table:<20} {mark}")
        console.rule("[bold]8. lakeport check (Great Expectations suites → ops.quality_results)")
        quality = check(settings.model_copy(update={"quality": settings.quality.model_copy(
            update={"docs_dir": str(home / "quality")})}))  # fmt: skip
        outcomes = [o for r in quality for o in r.outcomes]
        failing = [f"{r.suite}:{o.expectation} ({o.unexpected_count})" for r in quality for o in r.outcomes
                   if not o.success]  # fmt: skip
        console.print(
            f"{len(quality)} suites, {len(outcomes)} expectations, {len(failing)} failing"
            + (f": {', '.join(failing)}" if failing else "")
            + f"; Data Docs: {docs_index(str(home / 'quality'))}"
        )
        console.rule("[bold]9. what landed (DuckDB over Delta on S3)")
        _show(settings, console)
        return equal
    finally:
        if feed is not None:
            feed.stop()
        if started and not keep:
            stack.down(home)
            console.print("stopped the local stack")
        else:
            console.print(f"stack left running: `lakeport dev down --home {home}` stops it")


QUERIES = [
    (
        "orders by status (silver.orders)",
        "SELECT status, count(*) AS orders FROM silver.orders GROUP BY 1 ORDER BY 2 DESC",
    ),
    (
        "domain events by type (bronze.domain_events, from the outbox)",
        "SELECT event_type, _topic, count(*) AS events FROM bronze.domain_events GROUP BY ALL ORDER BY events DESC",
    ),
    (
        "best customers (gold.customer_360)",
        "SELECT customer_id, full_name, city, orders, lifetime_value, open_shipments FROM gold.customer_360 "
        "ORDER BY lifetime_value DESC LIMIT 5",
    ),
    (
        "a customer's address history (silver.addresses_history, SCD2)",
        "SELECT customer_id, city, valid_from, valid_to, is_current FROM silver.addresses_history "
        "WHERE customer_id = (SELECT customer_id FROM silver.addresses_history GROUP BY 1 "
        "ORDER BY count(*) DESC, 1 LIMIT 1) ORDER BY valid_from LIMIT 6",
    ),
]


def _show(settings: Settings, console: Console) -> None:
    con = Lake(settings)
    counts = Table("table", "rows", title="tables")
    names = [f"{layer}.{t.name}" for t in settings.tables for layer in ("bronze", "silver")] + ["ops.dead_letters"]
    names += [f"gold.{m.name}" for m in models(settings)]
    for name in names:
        try:
            counts.add_row(name, f"{con.execute(f'SELECT count(*) FROM {name}').fetchone()[0]:,}")  # type: ignore[index]
        except Exception:
            continue  # not a CDC table: no silver
    console.print(counts)
    for title, query in QUERIES:
        cur = con.execute(query)
        table = Table(*[d[0] for d in cur.description], title=title)
        for row in cur.fetchall():
            table.add_row(*(str(v) for v in row))
        console.print(table)
    console.print('try: .venv/bin/lakeport sql "SELECT * FROM silver.customers LIMIT 5"  (after `make demo-keep`)')
    console.print(
        "the Dagster UI over this lake: `make dagster` (or `lakeport dagster`), then open "
        "http://127.0.0.1:3000/assets — assets, checks, schedules, maintenance jobs"
    )
