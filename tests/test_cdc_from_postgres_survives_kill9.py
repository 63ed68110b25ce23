"""A real PostgreSQL changes; its changes flow through `lakeport capture` → Kafka → `lakeport ingest`
→ `lakeport silver`; both processes are kill -9'd at random moments and restarted; at the end
`lakeport reconcile` reports zero differences, history has one current row per live key, and every
outbox event landed exactly once as a domain event."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from helpers import LAKEPORT, OLTP_KEYS, make_topic, read_table, run_cli, start_worker, unique, wait_until, write_config

from lakeport.dev import postgres
from lakeport.dev.oltp import apply_schema, run_workload
from lakeport.dev.stack import StackState

pytestmark = [pytest.mark.stack, pytest.mark.slow]
TABLES = OLTP_KEYS
HISTORY = {"customers", "addresses", "orders"}


def cdc_config(tmp_path: Path, state: StackState, lake: str, db: str, prefix: str) -> Path:
    tables: list[dict[str, Any]] = [
        {"name": t, "topics": [f"{prefix}.public.{t}"], "format": "debezium-json", "key": k, "history": t in HISTORY}
        for t, k in TABLES.items()
    ]
    tables.append({"name": "domain_events", "topic_pattern": f"^{prefix}_events\\..*", "key": ["event_id"]})
    source = {
        "name": prefix,
        "postgres": {"port": state.postgres_port, "database": db, "password": postgres.DEV_PASSWORD},
        "events_prefix": f"{prefix}_events",
        "state_dir": str(tmp_path / "capture"),
        "confirm_every_seconds": 0.2,
    }
    return write_config(
        tmp_path / "lakeport.yaml",
        state,
        lake_uri=lake,
        tables=tables,
        sources=[source],
        ingest={"flush_rows": 400, "flush_seconds": 0.3, "once_wait_seconds": 30},
        kafka_properties={"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"},
    )


def _exists(uri: str, state: StackState) -> bool:
    try:
        read_table(uri, state)
        return True
    except Exception:
        return False


def outbox_ids(conn_kwargs: dict[str, str]) -> set[str]:
    with psycopg2.connect(conn_kwargs["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT id::text FROM outbox")
        return {r[0] for r in cur.fetchall()}


def alter_mid_workload(dsn: str) -> None:
    """A wider type and a new column while the shop runs: one table lock per transaction, as a DBA would."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE inventory ALTER COLUMN on_hand TYPE bigint")
            cur.execute("ALTER TABLE customers ADD COLUMN nickname text")
            cur.execute("UPDATE customers SET nickname = 'n' || id WHERE id % 7 = 0")
    finally:
        conn.close()


def start_capture(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen([LAKEPORT, "capture", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT)


def test_lake_equals_postgres_after_kill9s(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    db, prefix = unique("cdc_"), unique("src")
    postgres.create_database(local_stack.postgres_port, db)
    conn_kwargs = {"dsn": postgres.dsn(local_stack.postgres_port, database=db)}
    apply_schema(conn_kwargs)
    for table in TABLES:
        make_topic(local_stack, f"{prefix}.public.{table}", 3)
    for aggregate in ("customer", "product", "order", "payment", "shipment"):
        make_topic(local_stack, f"{prefix}_events.{aggregate}", 2)
    config = cdc_config(tmp_path, local_stack, s3_lake, db, prefix)
    run_workload(conn_kwargs, transactions=300, seed=11)  # before the slot exists: the snapshot's share
    published_before = outbox_ids(conn_kwargs)  # outbox rows before capture began are never routed

    done = threading.Event()
    stats: list[Any] = []
    workload = threading.Thread(
        target=lambda: (stats.append(run_workload(conn_kwargs, transactions=2500, seed=12, rate=150)), done.set())
    )
    rnd = random.Random(7)
    capture = start_capture(config, tmp_path / "capture-0.log")
    ingest = start_worker(config, tmp_path / "ingest-0.log")
    assert wait_until(lambda: (tmp_path / "capture" / f"{prefix}.json").exists(), timeout=60), "no snapshot"
    workload.start()
    kills = {"capture": 0, "ingest": 0}
    try:
        for i in range(6):
            time.sleep(rnd.uniform(1.5, 3.0))
            victim = "capture" if i % 2 == 0 else "ingest"
            proc = capture if victim == "capture" else ingest
            assert proc.poll() is None, (tmp_path / f"{victim}-{i}.log").read_text()[-2000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills[victim] += 1
            if victim == "capture":
                capture = start_capture(config, tmp_path / f"capture-{i + 1}.log")
            else:
                ingest = start_worker(config, tmp_path / f"ingest-{i + 1}.log")
            if i == 2:  # a schema change mid-workload: a wider type and a new column
                alter_mid_workload(conn_kwargs["dsn"])
        workload.join(timeout=120)
        assert done.is_set(), "the workload did not finish"
    finally:
        for proc in (capture, ingest):
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    assert kills == {"capture": 3, "ingest": 3}

    run_cli(["capture", "--once", "--config", str(config)], timeout=120)
    run_cli(["ingest", "--once", "--config", str(config)], timeout=240)
    run_cli(["silver", "--config", str(config)], timeout=240)
    result = run_cli(["reconcile", "--json", "--config", str(config)], timeout=120, check=False)
    reports = json.loads(result.stdout)
    assert {r["table"] for r in reports} == set(TABLES)
    bad = [r for r in reports if not r["ok"]]
    assert not bad, json.dumps(bad, indent=1)[:3000]
    assert result.returncode == 0
    assert all(r["source_rows"] == r["lake_rows"] for r in reports)
    assert sum(r["source_rows"] for r in reports) > 1000

    for name in HISTORY:
        history = read_table(f"{s3_lake}/silver/{name}_history", local_stack).to_pylist()
        silver = read_table(f"{s3_lake}/silver/{name}", local_stack)
        current = [tuple(r[k] for k in TABLES[name]) for r in history if r["is_current"]]
        assert len(current) == len(set(current)) == silver.num_rows, name
        assert set(current) == set(zip(*(silver[k].to_pylist() for k in TABLES[name]), strict=True))

    outbox = outbox_ids(conn_kwargs) - published_before
    events = read_table(f"{s3_lake}/bronze/domain_events", local_stack)["event_id"].to_pylist()
    assert set(events) == outbox and len(outbox) == stats[0].outbox_events > 0
    deduplicated = read_table(f"{s3_lake}/silver/domain_events", local_stack)["event_id"].to_pylist()
    assert sorted(deduplicated) == sorted(outbox)  # every outbox event exactly once
    letters = read_table(f"{s3_lake}/ops/dead_letters", local_stack) if _exists(f"{s3_lake}/ops/dead_letters",
                                                                                   local_stack) else None  # fmt: skip
    assert letters is None or not [t for t in letters["_topic"].to_pylist() if t.startswith(prefix)]
    nicknames = read_table(f"{s3_lake}/silver/customers", local_stack)["nickname"].to_pylist()
    assert any(nicknames) and read_table(f"{s3_lake}/silver/inventory", local_stack).num_rows > 0
