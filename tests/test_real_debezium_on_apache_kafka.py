"""The real thing end to end: the OLTP workload runs in PostgreSQL, Debezium 3's PostgreSQL
connector (in Kafka Connect, configured like ``infra/debezium/*.json``) captures it on Apache
Kafka 4 — snapshot, then streaming — and is killed with ``kill -9`` and restarted mid-workload, so
it replays. Lakeport lands bronze, applies silver and history, and ``lakeport reconcile`` finds
no difference. The workload includes unchanged TOASTed ``text``/``bytea``/``jsonb`` values, a
``TRUNCATE``, a table with ``REPLICA IDENTITY FULL`` and a primary-key change; the outbox router's
events land once each. Run with the JSON converter with and without schemas.

With schemas, ``lakeport capture`` reads the same database beside Debezium (its own slot, topics
and lake): both lakes' silver tables must be equal, value for value (capture/Debezium parity)."""

from __future__ import annotations

import base64
import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from confluent_kafka import Consumer, TopicPartition
from helpers import OLTP_KEYS, make_topic, read_table, run_cli, unique, wait_until, write_config

from lakeport.dev import jvm, postgres
from lakeport.dev.oltp import apply_schema, run_workload
from lakeport.dev.processes import Service, stop
from lakeport.dev.stack import StackState

pytestmark = [pytest.mark.stack, pytest.mark.slow]
KEYS = {
    **OLTP_KEYS,
    "attachments": ["id"],  # TOASTed text, bytea and jsonb; a primary-key change
    "audits": ["id"],  # REPLICA IDENTITY FULL; truncated mid-stream
}
HISTORY = {"customers", "orders", "attachments", "audits"}
EXTRA = """
CREATE TABLE attachments (id int PRIMARY KEY, note text, body bytea, meta jsonb, version int NOT NULL);
CREATE TABLE audits (id int PRIMARY KEY, what text NOT NULL, amount numeric(12, 2));
ALTER TABLE audits REPLICA IDENTITY FULL;
"""


def _config(tmp_path: Path, state: StackState, lake: str, db: str, prefix: str) -> Path:
    tables: list[dict[str, Any]] = [
        {"name": t, "topics": [f"{prefix}.public.{t}"], "format": "debezium-json", "key": k, "history": t in HISTORY}
        for t, k in KEYS.items()
    ]
    tables.append({"name": "domain_events", "topic_pattern": f"^{prefix}_events\\..*", "key": ["event_id"]})
    source = {"name": prefix, "postgres": {"port": state.postgres_port, "database": db,
                                           "password": postgres.DEV_PASSWORD}}  # fmt: skip
    return write_config(tmp_path / "lakeport.yaml", state, lake_uri=lake, tables=tables, sources=[source],
                        ingest={"once_wait_seconds": 20})  # fmt: skip


def _capture_config(tmp_path: Path, state: StackState, lake: str, db: str, name: str) -> Path:
    """``lakeport capture`` on the same database: source ``name``, topics ``<name>.public.<t>``."""
    tables: list[dict[str, Any]] = [
        {"name": t, "topics": [f"{name}.public.{t}"], "format": "debezium-json", "key": k, "history": t in HISTORY}
        for t, k in KEYS.items()
    ]
    tables.append({"name": "domain_events", "topic_pattern": f"^{name}_events\\..*", "key": ["event_id"]})
    source = {"name": name, "tables": [f"public.{t}" for t in KEYS], "events_prefix": f"{name}_events",
              "state_dir": str(tmp_path / "capture-state"),
              "postgres": {"port": state.postgres_port, "database": db, "password": postgres.DEV_PASSWORD}}  # fmt: skip
    return write_config(tmp_path / "capture.yaml", state, lake_uri=lake, tables=tables, sources=[source],
                        ingest={"once_wait_seconds": 20})  # fmt: skip


def _silver(lake: str, table: str, state: StackState) -> list[dict[str, Any]]:
    """A silver table's rows without Lakeport's own columns (``_…``), in key order."""
    rows = read_table(f"{lake}/silver/{table}", state).to_pylist()
    return sorted(({k: v for k, v in r.items() if not k.startswith("_")} for r in rows), key=repr)


def _differences(capture: list[dict[str, Any]], debezium: list[dict[str, Any]]) -> list[str]:
    """Readable differences: rows only on one side, and per differing row its differing columns."""
    out = [f"{len(capture)} rows by capture, {len(debezium)} by Debezium"]
    for a, b in zip(capture, debezium, strict=False):
        if a != b:
            cols = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            out.append(f"row {a.get('id')}: " + ", ".join(f"{c}: {str(a.get(c))[:40]!r} vs {str(b.get(c))[:40]!r}"
                                                         for c in cols))  # fmt: skip
    return out[:6]


def _edge_cases(dsn: str, rnd: random.Random) -> None:
    """Unchanged TOASTed values, a primary-key change, a truncate and a full replica identity."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for i in range(1, 6):
            meta = {f"k{j}": rnd.randbytes(8).hex() for j in range(400)}  # ~12 KB: stored out of line
            cur.execute("INSERT INTO attachments VALUES (%s, %s, %s, %s, 1)",
                        (i, rnd.randbytes(4000).hex(), rnd.randbytes(6000), json.dumps(meta)))  # fmt: skip
        cur.executemany("INSERT INTO audits VALUES (%s, %s, %s)", [(i, f"a{i}", i * 1.25) for i in range(1, 21)])
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE attachments SET version = version + 1")  # note, body, meta unchanged: not sent
        cur.execute("UPDATE attachments SET id = id + 1000, version = version + 1 WHERE id = 5")
        cur.execute("UPDATE audits SET what = what || '!' WHERE id % 3 = 0")
        cur.execute("DELETE FROM audits WHERE id % 5 = 0")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE audits")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO audits VALUES (%s, %s, %s)", [(i, f"b{i}", None) for i in range(21, 26)])
        cur.execute("UPDATE attachments SET version = version + 1 WHERE id = 2")


def wait_for_slots(dsn: str, prefix: str, *, timeout: float = 120) -> None:
    """Until both connectors stream: their replication slots exist and are in use (a change made
    before that is in no stream: the outbox connector takes no snapshot)."""
    slots = (f"{prefix}_cdc", f"{prefix}_outbox")

    def active() -> bool:
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = ANY(%s) AND active", (list(slots),)
            )
            return cur.fetchone()[0] == len(slots)  # type: ignore[index]

    assert wait_until(active, timeout=timeout), f"replication slots {slots} are not in use"


def _outbox(dsn: str) -> set[str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id::text FROM outbox")
        return {r[0] for r in cur.fetchall()}


def _seen(bootstrap: str, topic: str, marker: bytes) -> bool:
    """Whether any record of ``topic`` carries ``marker`` (read from the start, group-less)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("probe-"), "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None or meta.error is not None:
            return False
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in meta.partitions}
        left = {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + 15
        while left and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None and marker in (msg.value() or b""):
                    return True
                if msg.error() is None and msg.offset() + 1 >= ends[msg.partition()]:
                    left.discard(msg.partition())
        return False
    finally:
        consumer.close()


@pytest.mark.parametrize("schemas", [True, False], ids=["json-with-schemas", "json-without-schemas"])
def test_debezium_on_apache_kafka_lands_the_source_exactly(
    apache_stack: StackState, s3_lake: str, tmp_path: Path, schemas: bool
) -> None:
    db, prefix = unique("dbz_"), unique("dbz")
    postgres.create_database(apache_stack.postgres_port, db)
    dsn = postgres.dsn(apache_stack.postgres_port, database=db)
    apply_schema({"dsn": dsn})
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(EXTRA)
    for table in KEYS:
        make_topic(apache_stack, f"{prefix}.public.{table}", 3)
    config = _config(tmp_path, apache_stack, s3_lake, db, prefix)
    run_workload({"dsn": dsn}, transactions=200, seed=21)  # before the connector: the snapshot's share
    capture_lake, capture_config = f"{s3_lake}/by-capture", None
    if schemas:  # parity: lakeport capture snapshots now and streams the rest at the end
        capture_config = _capture_config(tmp_path, apache_stack, capture_lake, db, f"{prefix}cap")
        run_cli(["capture", "--once", "--config", str(capture_config)], timeout=180)
    connectors = jvm.debezium_connectors(
        prefix, port=apache_stack.postgres_port, database=db, user=postgres.DEV_USER,
        password=postgres.DEV_PASSWORD, tables=[f"public.{t}" for t in KEYS], schemas=schemas,
    )  # fmt: skip
    home = tmp_path / "connect-home"

    def connect() -> Service:
        return jvm.start_connect(home, bootstrap=apache_stack.kafka_bootstrap, connectors=connectors,
                                 deadline=time.monotonic() + 120)  # fmt: skip

    service = connect()
    wait_for_slots(dsn, prefix)
    before = _outbox(dsn)  # the outbox connector takes no snapshot: earlier events are never routed
    done = threading.Event()
    workload = threading.Thread(
        target=lambda: (run_workload({"dsn": dsn}, transactions=1200, seed=22, rate=120), done.set())
    )
    workload.start()
    try:
        _edge_cases(dsn, random.Random(5))
        time.sleep(3)
        os.kill(service.pid, 9)  # Debezium restarts from its last flushed offset and replays after it
        service = connect()
        workload.join(timeout=180)
        assert done.is_set(), "the workload did not finish"
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:  # a last commit in each stream
            cur.execute("INSERT INTO audits VALUES (999999, 'the-end', NULL)")
            cur.execute("INSERT INTO outbox VALUES (gen_random_uuid(), 'order', 'the-end', 'End', '{}', now())")
        assert wait_until(lambda: _seen(apache_stack.kafka_bootstrap, f"{prefix}.public.audits", b"the-end"),
                          timeout=120), "Debezium did not publish the last change"  # fmt: skip
        assert wait_until(lambda: _seen(apache_stack.kafka_bootstrap, f"{prefix}_events.order", b"the-end"),
                          timeout=120), "the outbox router did not publish the last event"  # fmt: skip
    finally:
        stop(service)
        workload.join(timeout=60)

    run_cli(["ingest", "--once", "--config", str(config)], timeout=300)
    run_cli(["silver", "--config", str(config)], timeout=300)
    result = run_cli(["reconcile", "--json", "--config", str(config)], timeout=180, check=False)
    reports = json.loads(result.stdout)
    assert {r["table"] for r in reports} == set(KEYS)
    bad = [r for r in reports if not r["ok"]]
    assert not bad, "\n".join(
        f"{r['table']}: {r['missing_count']} missing {r['missing'][:3]}, {r['extra_count']} extra {r['extra'][:3]}, "
        f"{r['different_count']} different {r['different'][:3]}, columns missing {r['missing_columns']}"
        for r in bad
    )
    assert result.returncode == 0 and sum(r["source_rows"] for r in reports) > 1000

    attachments = {r["id"]: r for r in read_table(f"{s3_lake}/silver/attachments", apache_stack).to_pylist()}
    assert sorted(attachments) == [1, 2, 3, 4, 1005]
    # unchanged TOASTed values kept (the moved row: its old key's); bytea lands as base64 text (see README)
    assert all(len(base64.b64decode(r["body"])) == 6000 and len(r["note"]) == 8000 and len(json.loads(r["meta"])) == 400
               for r in attachments.values())  # fmt: skip
    audits = read_table(f"{s3_lake}/silver/audits", apache_stack)["id"].to_pylist()
    assert sorted(audits) == [21, 22, 23, 24, 25, 999999]  # the truncate removed every older row
    for name in HISTORY:
        history = read_table(f"{s3_lake}/silver/{name}_history", apache_stack).to_pylist()
        current = [tuple(r[k] for k in KEYS[name]) for r in history if r["is_current"]]
        silver = read_table(f"{s3_lake}/silver/{name}", apache_stack)
        assert len(current) == len(set(current)) == silver.num_rows, name

    routed = _outbox(dsn) - before
    events = read_table(f"{s3_lake}/silver/domain_events", apache_stack)["event_id"].to_pylist()
    assert len(events) == len(set(events)) and set(events) == routed

    if capture_config is None:
        return
    for step in (["capture", "--once"], ["ingest", "--once"], ["silver"]):
        run_cli([*step, "--config", str(capture_config)], timeout=300)
    for table in [*KEYS, *(f"{t}_history" for t in HISTORY)]:
        if table.endswith("_history"):  # versions start at different instants; compare what they hold
            strip = ("valid_from", "valid_to")
            by_debezium = sorted(({k: v for k, v in r.items() if k not in strip} for r in
                                  _silver(s3_lake, table, apache_stack)), key=repr)  # fmt: skip
            by_capture = sorted(({k: v for k, v in r.items() if k not in strip} for r in
                                 _silver(capture_lake, table, apache_stack)), key=repr)  # fmt: skip
        else:
            by_debezium, by_capture = _silver(s3_lake, table, apache_stack), _silver(capture_lake, table, apache_stack)
        assert by_capture == by_debezium, (
            f"{table}: capture and Debezium differ: {_differences(by_capture, by_debezium)}"
        )
    captured = read_table(f"{capture_lake}/silver/domain_events", apache_stack)["event_id"].to_pylist()
    assert set(captured) >= routed and len(captured) == len(set(captured))  # capture also routes earlier events
