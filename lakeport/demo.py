"""``make demo``: the whole path on the embedded default stack, then a look at what landed."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ingestion.worker import Worker
from lake import connect
from lakeport import stack
from lakeport.config import Settings
from lakeport.kafka_tools import create_topics, produce
from lakeport.workload import EcommerceWorkload

TOPICS = {
    "shop.public.customers": 3,
    "shop.public.products": 1,
    "shop.public.orders": 6,
    "events.order": 3,
    "events.payment": 3,
    "events.shipment": 3,
}


def run(settings: Settings, *, home: Path, orders: int, keep: bool, console: Console) -> None:
    started = stack.load_state(home.resolve()) is None
    kafka_port, s3_port = stack.ports_for(settings)
    console.rule("[bold]1. local stack")
    state = stack.up(home, kafka_port=kafka_port, s3_port=s3_port)
    console.print(f"broker {state.kafka_bootstrap}, S3 {state.s3_endpoint}, bucket s3://{state.bucket}")
    try:
        console.rule("[bold]2. e-commerce traffic → Kafka")
        conf = settings.kafka.to_librdkafka()
        create_topics(conf, TOPICS)
        workload = EcommerceWorkload(customers=max(orders // 10, 10), products=50, orders=orders)
        t0 = time.monotonic()
        sent = produce(conf, workload.messages())
        console.print(
            f"produced {sent:,} messages in {time.monotonic() - t0:.1f}s "
            "(Debezium change events + OrderPlaced/PaymentCaptured/ShipmentStatusChanged)"
        )
        console.rule("[bold]3. lakeport ingest --once")
        t0 = time.monotonic()
        stats = Worker(settings, once=True).run()
        console.print(
            f"landed {stats.rows:,} rows in {stats.commits} Delta commits, "
            f"{stats.dead_letters} dead letters, {time.monotonic() - t0:.1f}s"
        )
        console.rule("[bold]4. what landed (DuckDB over Delta on S3)")
        _show(settings, console)
    finally:
        if started and not keep:
            stack.down(home)
            console.print("stopped the local stack")
        else:
            console.print(f"stack left running: `lakeport dev down --home {home}` stops it")


def _show(settings: Settings, console: Console) -> None:
    con = connect(settings)
    counts = Table("table", "rows", title="tables")
    for name in [f"bronze.{t.name}" for t in settings.tables] + ["ops.dead_letters"]:
        try:
            counts.add_row(name, f"{con.execute(f'SELECT count(*) FROM {name}').fetchone()[0]:,}")  # type: ignore[index]
        except Exception:
            counts.add_row(name, "(not created)")
    console.print(counts)
    for title, query in [
        (
            "orders by status (latest change per order)",
            "SELECT status, count(*) AS orders FROM (SELECT id, status, _op, "
            "row_number() OVER (PARTITION BY id ORDER BY _source_lsn DESC) rn FROM bronze.orders) "
            "WHERE rn = 1 AND _op <> 'd' GROUP BY status ORDER BY orders DESC",
        ),
        (
            "domain events by type",
            "SELECT event_type, _topic, count(*) AS events FROM bronze.domain_events GROUP BY ALL ORDER BY events DESC",
        ),
        (
            "a few change events",
            "SELECT _topic, _partition, _offset, _op, id, status, amount "
            "FROM bronze.orders ORDER BY _source_lsn LIMIT 5",
        ),
    ]:
        cur = con.execute(query)
        table = Table(*[d[0] for d in cur.description], title=title)
        for row in cur.fetchall():
            table.add_row(*(str(v) for v in row))
        console.print(table)
    console.print('try: .venv/bin/lakeport sql "SELECT * FROM bronze.customers LIMIT 5"  (with `make demo-keep`)')
