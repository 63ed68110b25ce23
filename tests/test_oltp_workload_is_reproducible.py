"""The OLTP workload (the CDC source) writes the same rows for the same seed, exercises every kind of
transaction, keeps its outbox in step with the business tables, and a second run continues the first."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import psycopg2
import pytest

from lakeport.dev import postgres
from lakeport.dev.oltp import WorkloadStats, apply_schema, run_workload

pytestmark = pytest.mark.stack

TABLES = {  # table -> primary key
    "customers": "id", "addresses": "id", "products": "id", "prices": "product_id", "inventory": "product_id",
    "orders": "id", "order_items": "order_id, line_no", "payments": "id", "shipments": "id", "outbox": "id",
}  # fmt: skip
STATUSES = {"Approved", "Processing", "Shipped", "InTransit", "Received", "Cancelled"}
AGGREGATES = {"customer", "product", "order", "payment", "shipment"}
_names = itertools.count()
TOTALS_OFF = """SELECT count(*) FROM orders o
    WHERE total <> (SELECT sum(quantity * unit_price) FROM order_items i WHERE i.order_id = o.id)"""
CANCELLED_BUT_CAPTURED = """SELECT count(*) FROM orders o WHERE status = 'Cancelled'
    AND EXISTS (SELECT FROM payments p WHERE p.order_id = o.id AND p.status = 'Captured')"""


def fresh_db(local_stack: Any) -> dict[str, Any]:
    name = f"oltp_{next(_names)}"
    postgres.create_database(local_stack.postgres_port, name)
    conn_kwargs = {"dsn": postgres.dsn(local_stack.postgres_port, database=name)}
    apply_schema(conn_kwargs)
    apply_schema(conn_kwargs)  # idempotent
    return conn_kwargs


def query(conn_kwargs: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(**conn_kwargs)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def scalar(conn_kwargs: dict[str, Any], sql: str) -> Any:
    return query(conn_kwargs, sql)[0][0]


def fingerprint(conn_kwargs: dict[str, Any]) -> dict[str, str]:
    """md5 over every table's rows (as text) in primary-key order."""
    parts = [
        f"SELECT '{t}', md5(coalesce(string_agg(x::text, '|' ORDER BY {pk}), '')) FROM {t} x"
        for t, pk in TABLES.items()
    ]
    return dict(query(conn_kwargs, " UNION ALL ".join(parts)))


def test_same_seed_same_rows_other_seed_other_rows(local_stack: Any) -> None:
    a, b, c = fresh_db(local_stack), fresh_db(local_stack), fresh_db(local_stack)
    stats_a = run_workload(a, transactions=250, seed=7)
    stats_b = run_workload(b, transactions=250, seed=7)
    run_workload(c, transactions=250, seed=8)
    assert stats_a.by_kind == stats_b.by_kind and stats_a.outbox_events == stats_b.outbox_events
    same = fingerprint(a)
    assert scalar(a, "SELECT count(*) FROM orders") > 0
    assert fingerprint(b) == same
    other = fingerprint(c)
    assert all(other[t] != same[t] for t in ("customers", "orders", "outbox")), other


def test_every_kind_status_and_outbox_event(local_stack: Any) -> None:
    db = fresh_db(local_stack)
    stats = run_workload(db, transactions=600, seed=11)
    assert isinstance(stats, WorkloadStats) and stats.transactions == 600
    assert sum(stats.by_kind.values()) == 600
    kinds = {"signup", "address_change", "profile_update", "product_launch", "price_change", "restock", "place_order"}
    kinds |= {"pay", "shipment_progress", "cancellation", "delete_order", "delete_customer"}
    assert set(stats.by_kind) == kinds, stats.by_kind
    # orders went through every status (as their events tell), and some rest in Received and Cancelled
    reached = query(db, "SELECT DISTINCT payload->>'status' FROM outbox WHERE type = 'ShipmentStatusChanged'")
    assert {s for (s,) in reached} == STATUSES - {"Approved", "Cancelled"}
    assert {s for (s,) in query(db, "SELECT DISTINCT status FROM orders")} >= {"Approved", "Received", "Cancelled"}

    # deletes happened: fewer rows than ids issued (identity columns never reuse an id)
    for table in ("customers", "addresses", "orders"):
        count, issued = query(db, f"SELECT count(*), max(id) FROM {table}")[0]
        assert count < issued, table
    # the transactional outbox: one row per event, flat objects of scalars, money with two decimals
    assert scalar(db, "SELECT count(*) FROM outbox") == stats.outbox_events
    assert {a for (a,) in query(db, "SELECT DISTINCT aggregate_type FROM outbox")} == AGGREGATES
    nested = "SELECT count(*) FROM outbox, jsonb_each(payload) WHERE jsonb_typeof(value) IN ('object', 'array')"
    assert scalar(db, nested) == 0
    assert scalar(db, "SELECT bool_and(jsonb_typeof(payload) = 'object') FROM outbox")
    money = "SELECT count(*) FROM outbox WHERE type = 'OrderPlaced' AND payload->>'total' !~ '^[0-9]+[.][0-9]{2}$'"
    assert scalar(db, money) == 0
    # consistent money and stock
    assert scalar(db, TOTALS_OFF) == 0
    assert (
        scalar(db, "SELECT count(*) FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.amount <> o.total") == 0
    )
    assert scalar(db, CANCELLED_BUT_CAPTURED) == 0
    # some customers' notes are stored out of line (TOAST)
    toast = scalar(db, "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'customers'::regclass")
    assert scalar(db, f"SELECT count(DISTINCT chunk_id) FROM {toast}") > 0
    assert scalar(db, "SELECT min(octet_length(notes)) FROM customers") >= 3000


def test_second_run_continues_the_first(local_stack: Any) -> None:
    db = fresh_db(local_stack)
    first = run_workload(db, transactions=200, seed=7)
    assert first.by_kind["product_launch"] >= 20 and first.by_kind["signup"] >= 30  # the reference set
    end_of_first = scalar(db, "SELECT max(created_at) FROM outbox")
    ids_before = {t: scalar(db, f"SELECT coalesce(max(id), 0) FROM {t}") for t in ("customers", "orders", "payments")}
    second = run_workload(db, transactions=200, seed=7)  # the same seed again: must not collide
    assert second.transactions == 200
    assert "product_launch" not in second.by_kind or second.by_kind["product_launch"] < 20  # no second reference set
    assert scalar(db, "SELECT count(*) FROM outbox") == first.outbox_events + second.outbox_events
    assert (
        scalar(db, f"SELECT count(*) FROM outbox WHERE created_at > '{end_of_first.isoformat()}'")
        == second.outbox_events
    )
    for table, before in ids_before.items():
        assert scalar(db, f"SELECT max(id) FROM {table}") > before, table
    assert scalar(db, TOTALS_OFF) == 0

    # stop and rate
    stop = threading.Event()
    stop.set()
    assert run_workload(db, transactions=50, stop=stop).transactions == 0
    paced = run_workload(db, transactions=6, rate=50.0)
    assert paced.transactions == 6 and paced.seconds >= 5 / 50


def test_wal_shows_unchanged_toast_and_cascaded_deletes(local_stack: Any) -> None:
    """What a CDC reader sees (test_decoding): profile updates leave the TOASTed notes out, and a
    cascaded delete is logged row by row."""
    db = fresh_db(local_stack)
    slot = f"oltp_toast_{next(_names)}"
    query(db, f"SELECT 1 FROM pg_create_logical_replication_slot('{slot}', 'test_decoding')")
    try:
        run_workload(db, transactions=400, seed=3)
        changes = [d for (d,) in query(db, f"SELECT data FROM pg_logical_slot_peek_changes('{slot}', NULL, NULL)")]
    finally:
        query(db, f"SELECT 1 FROM pg_drop_replication_slot('{slot}')")
    updates = [c for c in changes if c.startswith("table public.customers: UPDATE")]
    assert any("notes[text]:unchanged-toast-datum" in c for c in updates)
    deleted = {c.split(":")[0] for c in changes if ": DELETE:" in c}
    assert {"table public.customers", "table public.addresses", "table public.orders"} <= deleted
    assert "table public.order_items" in deleted


def test_a_transaction_postgres_aborts_for_a_deadlock_runs_again(local_stack: Any) -> None:
    """A deadlock (e.g. with an ``ALTER TABLE`` mid-workload) rolls one transaction back: the shop runs it again,
    as apps do, instead of stopping. The trigger raises PostgreSQL's own deadlock error for the first three orders."""
    db = fresh_db(local_stack)
    conn = psycopg2.connect(**db)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("""
                CREATE SEQUENCE order_attempts;
                CREATE FUNCTION deadlock_thrice() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF nextval('order_attempts') <= 3 THEN
                    RAISE EXCEPTION 'deadlock detected' USING ERRCODE = 'deadlock_detected';
                  END IF;
                  RETURN NEW;
                END $$;
                CREATE TRIGGER deadlock_thrice BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION deadlock_thrice();
            """)
    finally:
        conn.close()
    stats = run_workload(db, transactions=250, seed=7)
    assert stats.transactions == 250 and stats.by_kind.get("place_order", 0) > 0
    assert scalar(db, "SELECT last_value FROM order_attempts") > 3  # the three aborts happened, and orders went on
    assert scalar(db, "SELECT count(*) FROM outbox") == stats.outbox_events  # nothing of an aborted try counted
    assert scalar(db, TOTALS_OFF) == 0
