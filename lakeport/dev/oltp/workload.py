"""A reproducible e-commerce transaction workload against the OLTP schema (the CDC source).

Every choice comes from one ``random.Random`` and the database's own state, read in key order, and
timestamps come from a simulated clock, so the same seed on a fresh database writes the same rows.
A later run continues from what is there: identity sequences go on, the clock resumes after the
newest timestamp and the generator is re-seeded from (seed, that timestamp).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import psycopg2
from psycopg2.extensions import TransactionRollbackError
from psycopg2.extensions import cursor as Cursor

from lakeport.dev.oltp.shop import EPOCH, KINDS, SEED_CUSTOMERS, SEED_PRODUCTS, NothingFits, Shop

MAX_RETRIES = 20  # of one transaction PostgreSQL rolled back (deadlocks, serialization failures)


def apply_schema(conn_kwargs: dict[str, Any]) -> None:
    """Create the shop's tables if they do not exist (idempotent)."""
    sql = resources.files("lakeport.dev.oltp").joinpath("schema.sql").read_text(encoding="utf-8")
    conn = psycopg2.connect(**conn_kwargs)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@dataclass(frozen=True)
class WorkloadStats:
    transactions: int
    by_kind: dict[str, int]
    outbox_events: int
    seconds: float


def _resume_point(cur: Cursor) -> tuple[datetime | None, int, int]:
    """The newest timestamp anywhere, and how many products and customers there are."""
    cur.execute(
        "SELECT greatest((SELECT max(updated_at) FROM customers), (SELECT max(updated_at) FROM addresses),"
        " (SELECT max(created_at) FROM products), (SELECT max(updated_at) FROM prices),"
        " (SELECT max(updated_at) FROM inventory), (SELECT max(updated_at) FROM orders),"
        " (SELECT max(captured_at) FROM payments), (SELECT max(updated_at) FROM shipments),"
        " (SELECT max(created_at) FROM outbox)), (SELECT count(*) FROM products), (SELECT count(*) FROM customers)"
    )
    newest, products, customers = cur.fetchone() or (None, 0, 0)
    return newest, products, customers


def run_workload(
    conn_kwargs: dict[str, Any],
    *,
    transactions: int,
    seed: int = 7,
    rate: float | None = None,
    stop: threading.Event | None = None,
) -> WorkloadStats:
    """Run ``transactions`` committed transactions (the first on an empty shop seed products and customers)."""
    started = time.monotonic()
    by_kind: dict[str, int] = {}
    outbox_events = done = 0
    conn = psycopg2.connect(**conn_kwargs)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            newest, products, customers = _resume_point(cur)
        rng = random.Random(seed if newest is None else f"{seed}@{newest.isoformat()}")
        shop = Shop(conn.cursor(), rng, newest or EPOCH)
        plan = ["product_launch"] * max(0, SEED_PRODUCTS - products) + ["signup"] * max(0, SEED_CUSTOMERS - customers)
        kinds, weights = list(KINDS), list(KINDS.values())
        while done < transactions and not (stop is not None and stop.is_set()):
            if rate:
                time.sleep(max(0.0, started + done / rate - time.monotonic()))
            shop.tick()
            shop.events = 0
            kind = plan.pop(0) if plan else rng.choices(kinds, weights)[0]
            retries = 0
            while True:
                try:
                    getattr(shop, kind)()
                    break
                except NothingFits:  # e.g. no paid order to ship yet: roll again
                    conn.rollback()
                    shop.events, kind = 0, rng.choices(kinds, weights)[0]
                except TransactionRollbackError:  # a deadlock (e.g. with an ALTER TABLE): run it again, as apps do
                    conn.rollback()
                    shop.events, retries = 0, retries + 1
                    if retries > MAX_RETRIES or (stop is not None and stop.is_set()):
                        raise
            conn.commit()
            done += 1
            by_kind[kind] = by_kind.get(kind, 0) + 1
            outbox_events += shop.events
    finally:
        conn.close()
    return WorkloadStats(done, by_kind, outbox_events, time.monotonic() - started)
