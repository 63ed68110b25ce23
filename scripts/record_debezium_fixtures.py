"""Record what the real Debezium PostgreSQL connector emits, as test fixtures.

Starts a private PostgreSQL, Apache Kafka and Kafka Connect (the JVM tier: `make jvm-deps`), runs
the edge cases of tests/test_real_debezium_on_apache_kafka.py plus a little of the OLTP workload
through the connectors of infra/debezium/, with the JSON converter with and without schemas, and
writes every record (key and value as text) to tests/fixtures/debezium/<variant>.jsonl, with the
connector's version in each file's first line. Run: .venv/bin/python scripts/record_debezium_fixtures.py
[variant ...] (default: every variant)
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_real_debezium_on_apache_kafka import EXTRA, _edge_cases, wait_for_slots  # noqa: E402

from lakeport.dev import jvm, postgres  # noqa: E402
from lakeport.dev.oltp import apply_schema, run_workload  # noqa: E402
from lakeport.dev.oltp.zoo import ZOO, ZOO_LATER  # noqa: E402
from lakeport.dev.processes import free_port, stop  # noqa: E402

TABLES = ["public.orders", "public.customers", "public.attachments", "public.audits"]


def source_state(dsn: str, tables: list[str]) -> dict[str, object]:
    """Each captured table's final state in PostgreSQL: columns with their types, and every row
    in reconcile's canonical text form, keyed by the primary key."""
    import psycopg2

    from lakeport.lake.reconcile import _COLUMNS, canonical

    state: dict[str, object] = {}
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for table in tables:
            schema, name = table.split(".")
            cur.execute(_COLUMNS, (schema, name))
            columns = [(c, t) for c, t in cur.fetchall()]
            cur.execute(f"SELECT {', '.join(c for c, _ in columns)} FROM {table}")
            rows = [[canonical(v, t) for v, (_, t) in zip(row, columns, strict=True)] for row in cur.fetchall()]
            state[name] = {"columns": columns, "rows": sorted(rows)}
    return state


VARIANTS = {  # variant -> (the JSON converter's schemas, extra connector settings)
    "json-with-schemas": (True, {}),
    "json-without-schemas": (False, {}),
    # transaction metadata: a "transaction" block in each change event, and BEGIN/END records on
    # <prefix>.transaction; the heartbeat topic (every 10 s, as infra/debezium/shop-cdc.json) too
    "json-with-transaction-metadata": (True, {"provide.transaction.metadata": "true", "heartbeat.interval.ms": "2000"}),
    # Avro in Confluent's wire format through Apicurio's converter and the stack's registry (values
    # and keys stored base64; the schemas by id in the header)
    "avro": (True, {"avro": "true"}),
    # a table of every type at its edges (ZOO), snapshot and streamed
    "types": (True, {"zoo": "true"}),
}


def record(variant: str, home: Path, pg_port: int, kafka: str, registry: int) -> None:
    schemas, extra = VARIANTS[variant]
    avro, zoo = extra.get("avro") == "true", extra.get("zoo") == "true"
    tables = [*TABLES, "public.zoo"] if zoo else TABLES
    db = f"fx_{variant.replace('-', '_')}"
    postgres.create_database(pg_port, db)
    dsn = postgres.dsn(pg_port, database=db)
    apply_schema({"dsn": dsn})
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(EXTRA + (ZOO if zoo else ""))
    run_workload({"dsn": dsn}, transactions=60, seed=1)
    prefix = f"fx{variant.replace('-', '')}"
    connectors = jvm.debezium_connectors(prefix, port=pg_port, database=db, user=postgres.DEV_USER,
                                         password=postgres.DEV_PASSWORD, tables=tables, schemas=schemas)  # fmt: skip
    connectors[0].update(jvm.avro_converters(registry) if avro else {k: v for k, v in extra.items() if k != "zoo"})
    service = jvm.start_connect(home / variant, bootstrap=kafka, connectors=connectors,
                                deadline=time.monotonic() + 120)  # fmt: skip
    try:
        wait_for_slots(dsn, prefix)
        run_workload({"dsn": dsn}, transactions=60, seed=2)
        _edge_cases(dsn, random.Random(5))
        if zoo:
            with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
                cur.execute(ZOO_LATER)
        time.sleep(8)
    finally:
        stop(service)
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": prefix, "auto.offset.reset": "earliest"})
    topics = sorted(t for t in consumer.list_topics(timeout=5).topics
                    if t.startswith(prefix) or t == f"__debezium-heartbeat.{prefix}")  # fmt: skip
    consumer.subscribe(topics)
    records, quiet = [], time.monotonic() + 10
    while time.monotonic() < quiet:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        quiet = time.monotonic() + 3
        key, value = msg.key(), msg.value()
        headers = [[k, v.decode()] for k, v in msg.headers() or [] if not k.startswith("__debezium.context.")]
        text = (lambda b: base64.b64encode(b).decode()) if avro and not msg.topic().startswith(f"{prefix}_events") \
            else (lambda b: b.decode())  # fmt: skip
        records.append({"topic": msg.topic().replace(prefix, "shop", 1), "partition": msg.partition(),
                        "offset": msg.offset(), "key": text(key) if key else None,
                        "value": text(value) if value is not None else None, "headers": headers})  # fmt: skip
    consumer.close()
    header = {"debezium": "3.6.1.Final", "kafka": "4.3.1", "connectors": "infra/debezium/*.json",
              "value.converter.schemas.enable": schemas, "records": len(records), "extra": extra,
              "source": source_state(dsn, tables)}  # fmt: skip
    if avro:  # every schema the records name, so that tests need no registry
        ids = {int.from_bytes(base64.b64decode(r[f])[1:5], "big") for r in records for f in ("key", "value")
               if r[f] and not r["topic"].startswith("shop_events")}  # fmt: skip
        header["avro_schemas"] = {str(i): registry_schema(registry, i) for i in sorted(ids)}
        header["encoding"] = "key and value: base64 of Confluent's wire format (0, 4-byte schema id, Avro)"
    out = ROOT / "tests" / "fixtures" / "debezium" / f"{variant}.jsonl"
    out.write_text("\n".join(json.dumps(r) for r in [header, *records]) + "\n")
    print(f"{out}: {len(records)} records from {len(topics)} topics")


def registry_schema(port: int, schema_id: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/apis/ccompat/v7/schemas/ids/{schema_id}") as response:
        return str(json.loads(response.read())["schema"])


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="lakeport-fixtures-"))
    deadline = time.monotonic() + 180
    services = []
    try:
        pg_port, kafka_port = free_port(), free_port()
        services.append(postgres.start(home, pg_port, deadline))
        services.append(jvm.start_kafka(home, kafka_port, deadline))
        registry = free_port()
        services.append(jvm.start_registry(home, registry, deadline))
        for variant in sys.argv[1:] or VARIANTS:
            record(variant, home, pg_port, f"127.0.0.1:{kafka_port}", registry)
    finally:
        for service in reversed(services):
            stop(service)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
