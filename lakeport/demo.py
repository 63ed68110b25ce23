"""``make demo``: the whole CDC path on the embedded default stack, then a look at what landed.

PostgreSQL (e-commerce transactions, outbox events) → ``lakeport capture`` (pgoutput → Debezium
envelopes) → Kafka → ``lakeport ingest`` (bronze) → ``lakeport silver`` (current state, history)
→ ``lakeport reconcile`` (the lake equals the database).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from capture.publisher import Publisher
from ingestion.worker import Worker
from lake import connect
from lake.reconcile import reconcile
from lake.refresh import refresh_silver
from lakeport import stack
from lakeport.config import Settings
from lakeport.oltp import apply_schema, run_workload
from quality.gx_context import docs_index
from quality.run import check


def run(settings: Settings, *, home: Path, transactions: int, keep: bool, console: Console) -> bool:
    """Run the demo; True when the lake reconciles with the source database."""
    started = stack.load_state(home.resolve()) is None
    kafka_port, s3_port = stack.ports_for(settings)
    console.rule("[bold]1. local stack")
    state = stack.up(
        home, kafka_port=kafka_port, s3_port=s3_port, postgres_port=stack.postgres_port_for(settings), fresh=started
    )
    console.print(f"broker {state.kafka_bootstrap}, S3 {state.s3_endpoint}, PostgreSQL 127.0.0.1:{state.postgres_port}")
    try:
        source = settings.source(None).model_copy(update={"state_dir": str(home / "capture")})
        conn = source.postgres.to_libpq()
        console.rule("[bold]2. e-commerce transactions in PostgreSQL, captured from a new replication slot")
        apply_schema(conn)
        publisher = Publisher(source, settings.kafka)
        publisher.prepare()  # the slot (and snapshot) first: every later change and outbox event is streamed
        stats = run_workload(conn, transactions=transactions, seed=7)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_kind.items()))
        console.print(f"ran {stats.transactions:,} transactions in {stats.seconds:.1f}s ({kinds})")
        console.rule("[bold]3. lakeport capture --once (pgoutput → Debezium change events + outbox events)")
        captured = publisher.stream(once=True)
        console.print(
            f"published {captured.snapshot_rows:,} snapshot rows, {captured.changes:,} changes and "
            f"{captured.outbox_events:,} domain events to {len(captured.topics)} topics"
        )
        console.rule("[bold]4. lakeport ingest --once (Kafka → bronze Delta tables on S3)")
        t0 = time.monotonic()
        landed = Worker(settings, once=True).run()
        console.print(
            f"landed {landed.rows:,} rows in {landed.commits} Delta commits, "
            f"{landed.dead_letters} dead letters, {time.monotonic() - t0:.1f}s"
        )
        console.rule("[bold]5. lakeport silver (current state by MERGE, SCD2 history)")
        results = refresh_silver(settings)
        console.print(f"applied {sum(r['changes'] for r in results if r['kind'] == 'current'):,} changes")
        console.rule("[bold]6. lakeport reconcile (silver vs PostgreSQL, row by row)")
        reports = reconcile(settings)
        equal = all(r.ok for r in reports)
        for r in reports:
            mark = "[green]equal[/green]" if r.ok else "[red]DIFFERENT[/red]"
            console.print(f"  silver.{r.table:<12} {r.lake_rows:>6,} rows  vs  {r.source_table:<20} {mark}")
        console.rule("[bold]7. lakeport check (Great Expectations suites → ops.quality_results)")
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
        console.rule("[bold]8. what landed (DuckDB over Delta on S3)")
        _show(settings, console)
        return equal
    finally:
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
        "a customer's address history (silver.addresses_history, SCD2)",
        "SELECT customer_id, city, valid_from, valid_to, is_current FROM silver.addresses_history "
        "WHERE customer_id = (SELECT customer_id FROM silver.addresses_history GROUP BY 1 "
        "ORDER BY count(*) DESC, 1 LIMIT 1) ORDER BY valid_from LIMIT 6",
    ),
]


def _show(settings: Settings, console: Console) -> None:
    con = connect(settings)
    counts = Table("table", "rows", title="tables")
    names = [f"{layer}.{t.name}" for t in settings.tables for layer in ("bronze", "silver")] + ["ops.dead_letters"]
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
