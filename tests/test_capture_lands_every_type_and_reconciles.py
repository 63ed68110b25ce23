"""``lakeport capture`` on a table of every type at its edges (``lakeport.dev.oltp.zoo``: decimals
beyond 28 and 38 digits, scale above precision, a negative scale, numeric without precision,
time, timetz, intervals with months, bytea, uuid, jsonb, arrays, …), snapshot and streamed, through
ingest and silver: ``lakeport reconcile`` finds no difference, value for value. The same table
recorded from the real Debezium connector is checked in ``test_real_debezium_output_lands_exactly``."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg2
import pytest
from helpers import make_topic, read_table, run_cli, unique, write_config

from lakeport.dev import postgres
from lakeport.dev.oltp.zoo import ZOO, ZOO_LATER
from lakeport.dev.stack import StackState

pytestmark = [pytest.mark.stack]


def test_every_type_captured_lands_exactly_and_reconciles(local_stack: StackState, tmp_path: Path) -> None:
    db, prefix = unique("zoo_"), unique("zoo")
    postgres.create_database(local_stack.postgres_port, db)
    dsn = postgres.dsn(local_stack.postgres_port, database=db)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(ZOO)
    make_topic(local_stack, f"{prefix}.public.zoo", 1)
    pg = {"port": local_stack.postgres_port, "database": db, "password": postgres.DEV_PASSWORD}
    source = {"name": prefix, "tables": ["public.zoo"], "outbox_table": None,
              "state_dir": str(tmp_path / "capture"), "postgres": pg}  # fmt: skip
    tables = [{"name": "zoo", "topics": [f"{prefix}.public.zoo"], "format": "debezium-json", "key": ["id"],
               "history": True}]  # fmt: skip
    lake = str(tmp_path / "lake")
    config = write_config(tmp_path / "lakeport.yaml", local_stack, lake_uri=lake, tables=tables, sources=[source],
                          ingest={"once_wait_seconds": 5})  # fmt: skip
    run_cli(["capture", "--once", "--config", str(config)], timeout=120)  # the snapshot
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(ZOO_LATER)  # streamed: edges the other way, an update, a delete
        cur.execute("UPDATE zoo SET span = '1 year 2 mons -3 days 04:05:06.000007', tags = %s WHERE id = 3",
                    (r'{"a,b",NULL,"q\""}',))  # fmt: skip
    run_cli(["capture", "--once", "--config", str(config)], timeout=120)
    run_cli(["ingest", "--once", "--config", str(config)], timeout=120)
    run_cli(["silver", "--config", str(config)], timeout=120)
    assert read_table(f"{lake}/ops/dead_letters").num_rows == 0 if Path(f"{lake}/ops/dead_letters").exists() else True
    done = run_cli(["reconcile", "--config", str(config), "--json"], check=False)
    (report,) = json.loads(done.stdout)
    assert done.returncode == 0 and report["source_rows"] == 2, report
    assert (report["missing_count"], report["extra_count"], report["different_count"]) == (0, 0, 0), report
    assert report["different_columns"] == {}
    assert report["missing_columns"] == [], report
    silver = {r["id"]: r for r in read_table(f"{lake}/silver/zoo").to_pylist()}
    assert silver[3]["tags"] == ["a,b", None, 'q"'] and silver[1]["nums"] == [1, 2, 3]  # arrays, as Debezium sends
