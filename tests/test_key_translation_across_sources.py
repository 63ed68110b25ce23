"""Two source databases whose primary keys collide feed one silver table: keys become (source_db,
id), each gets a stable lake_id from the key map that is never reused, and reconcile checks each
source against its own rows."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg2
import pytest
from helpers import make_topic, read_table, run_cli, unique, write_config

from lakeport.dev import postgres
from lakeport.dev.stack import StackState

pytestmark = [pytest.mark.stack]


def execute(dsn: str, *statements: str) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def lake_ids(uri: str, state: StackState) -> dict[tuple[str, int], int]:
    rows = read_table(uri, state).to_pylist()
    return {(r["source_db"], r["id"]): r["lake_id"] for r in rows}


def test_colliding_keys_stay_apart_with_stable_lake_ids(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    dbs = [unique("eu_"), unique("us_")]
    sources, topics = [], []
    for db in dbs:
        postgres.create_database(local_stack.postgres_port, db)
        dsn = postgres.dsn(local_stack.postgres_port, database=db)
        execute(dsn, "CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL)")
        execute(dsn, f"INSERT INTO customers SELECT g, '{db}-' || g || '@example.com' FROM generate_series(1, 5) g")
        name = db.replace("_", "")
        topics.append(f"{name}.public.customers")
        make_topic(local_stack, topics[-1], 2)
        sources.append(
            {
                "name": name,
                "postgres": {"port": local_stack.postgres_port, "database": db, "password": postgres.DEV_PASSWORD},
                "outbox_table": None,
                "state_dir": str(tmp_path / "capture"),
            }
        )
    table = {"name": "customers", "topics": topics, "format": "debezium-json", "key": ["id"]}
    config = write_config(
        tmp_path / "lakeport.yaml",
        local_stack,
        lake_uri=s3_lake,
        tables=[{**table, "source_key": ["source_db"], "history": True}],
        sources=sources,
    )

    def cycle() -> list[dict]:
        for source in sources:
            run_cli(["capture", "--once", "--source", source["name"], "--config", str(config)])
        run_cli(["ingest", "--once", "--config", str(config)])
        run_cli(["silver", "--config", str(config)])
        proc = run_cli(["reconcile", "--json", "--config", str(config)], check=False)
        assert proc.stdout.startswith("["), proc.stderr[-3000:]
        return json.loads(proc.stdout)

    reports = cycle()
    assert [(r["source"], r["source_rows"], r["lake_rows"], r["ok"]) for r in reports] == [
        (s["name"], 5, 5, True) for s in sources
    ]
    silver_uri, map_uri = f"{s3_lake}/silver/customers", f"{s3_lake}/ops/customers_key_map"
    first = lake_ids(silver_uri, local_stack)
    assert len(first) == 10 and sorted(first.values()) == list(range(1, 11))  # 42@A is not 42@B

    # A delete, a re-insert of the same key, a new key and an update: ids stay, none is reused.
    eu, us = (postgres.dsn(local_stack.postgres_port, database=db) for db in dbs)
    execute(eu, "DELETE FROM customers WHERE id = 3", "INSERT INTO customers VALUES (6, 'new@example.com')")
    execute(us, "UPDATE customers SET email = 'moved@example.com' WHERE id = 2")
    assert all(r["ok"] for r in cycle())
    second = lake_ids(silver_uri, local_stack)
    assert (dbs[0], 3) not in second and second[(dbs[0], 6)] == 11
    assert all(second[k] == first[k] for k in second if k in first)
    execute(eu, "INSERT INTO customers VALUES (3, 'back@example.com')")
    assert all(r["ok"] for r in cycle())
    third = lake_ids(silver_uri, local_stack)
    assert third[(dbs[0], 3)] == first[(dbs[0], 3)]  # the same entity gets its id back
    key_map = read_table(map_uri, local_stack).to_pylist()
    assert len(key_map) == len({r["lake_id"] for r in key_map}) == 11

    history = read_table(f"{s3_lake}/silver/customers_history", local_stack).to_pylist()
    current = [(r["source_db"], r["id"]) for r in history if r["is_current"]]
    assert sorted(current) == sorted(third)
