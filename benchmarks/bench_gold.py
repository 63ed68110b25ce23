"""Gold models and analyst queries at scale: 100,000 customers, 1,000,000 orders.

Synthetic silver tables (customers, addresses, products, prices, inventory, orders, order_items,
shipments) are written to a local-directory lake, orders in ingestion order (by time) so each file
covers a time range and Delta statistics let a date filter skip files. Measured: the full refresh
of ``gold.customer_360``, ``gold.sale_product`` and ``gold.daily_sales`` (``lake.gold.refresh_gold``),
and a typical analyst question — the top 10 products of the last 7 days — on silver (joins over
order_items and orders) and on gold (one lookup in ``gold.sale_product``), best of 3, same answer.
Results are merged into ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from lakeport.lake.gold import refresh_gold
from lakeport.lake.query import Lake
from lakeport.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = np.array(["books", "garden", "kitchen", "toys", "sports", "music", "fashion", "tools"])
CITIES = np.array(["Lyon", "Porto", "Turin"])
STATUSES = np.array(["Approved", "Processing", "Shipped", "InTransit", "Received", "Cancelled"])
SILVER_TOP = """
SELECT p.id AS product_id, p.name, sum(oi.quantity) AS units
FROM silver.order_items oi JOIN silver.orders o ON o.id = oi.order_id JOIN silver.products p ON p.id = oi.product_id
WHERE o.created_at >= now() - INTERVAL 7 DAY AND o.status <> 'Cancelled'
GROUP BY ALL ORDER BY units DESC, product_id LIMIT 10"""
GOLD_TOP = """
SELECT product_id, name, units_sold_7d AS units FROM gold.sale_product
ORDER BY units DESC, product_id LIMIT 10"""


def _money(values: np.ndarray) -> pa.Array:
    return pa.array([Decimal(f"{v:.2f}") for v in values], pa.decimal128(12, 2))


def _ts(seconds_ago: np.ndarray, now: datetime) -> pa.Array:
    micros = (now.timestamp() - seconds_ago) * 1_000_000
    return pa.array(micros.astype(np.int64), pa.timestamp("us", tz="UTC"))


def build_silver(lake: Path, *, customers: int, orders: int, products: int, seed: int = 11) -> dict[str, int]:
    rnd, now = np.random.default_rng(seed), datetime.now(UTC)
    write = lambda name, t, **kw: write_deltalake(str(lake / "silver" / name), t, mode="append", **kw)  # noqa: E731
    cid = np.arange(1, customers + 1)
    write("customers", pa.table({"id": cid, "email": [f"c{i}@example.com" for i in cid],
          "full_name": [f"Customer {i}" for i in cid], "phone": pa.nulls(customers, pa.string()),
          "loyalty_tier": pa.array(np.array(["bronze", "silver", "gold"])[cid % 3]),
          "created_at": _ts(rnd.uniform(0, 3e7, customers), now)}))  # fmt: skip
    aid = np.arange(1, customers + 1)
    write("addresses", pa.table({"id": aid, "customer_id": aid, "kind": ["shipping"] * customers,
          "street": [f"{i % 200} Main St" for i in aid], "city": pa.array(CITIES[aid % 3]),
          "postcode": ["01000"] * customers, "country": ["FR"] * customers,
          "updated_at": _ts(rnd.uniform(0, 3e7, customers), now)}))  # fmt: skip
    pid = np.arange(1, products + 1)
    write("products", pa.table({"id": pid, "sku": [f"SKU-{i}" for i in pid], "name": [f"Product {i}" for i in pid],
          "category": pa.array(CATEGORIES[pid % len(CATEGORIES)]), "active": [True] * products}))  # fmt: skip
    write("prices", pa.table({"product_id": pid, "amount": _money(rnd.uniform(2, 300, products)),
          "currency": ["EUR"] * products}))  # fmt: skip
    on_hand = rnd.integers(0, 500, products)
    write("inventory", pa.table({"product_id": pid, "on_hand": on_hand, "reserved": on_hand // 4}))
    # Orders in time order (oldest first), in 20 appends: each file covers a time range.
    ages = np.sort(rnd.uniform(0, 90 * 86400, orders))[::-1]
    oid = np.arange(1, orders + 1)
    lines = rnd.integers(1, 5, orders)
    for chunk in np.array_split(np.arange(orders), 20):
        write("orders", pa.table({"id": oid[chunk], "customer_id": rnd.integers(1, customers + 1, len(chunk)),
              "status": pa.array(STATUSES[rnd.integers(0, len(STATUSES), len(chunk))]),
              "total": _money(rnd.uniform(5, 900, len(chunk))), "currency": ["EUR"] * len(chunk),
              "created_at": _ts(ages[chunk], now)}))  # fmt: skip
        item_order = np.repeat(oid[chunk], lines[chunk])
        line_no = np.concatenate([np.arange(1, n + 1) for n in lines[chunk]])
        write("order_items", pa.table({"order_id": item_order, "line_no": line_no.astype(np.int32),
              "product_id": rnd.integers(1, products + 1, len(item_order)),
              "quantity": rnd.integers(1, 4, len(item_order)).astype(np.int32),
              "unit_price": _money(rnd.uniform(2, 300, len(item_order)))}))  # fmt: skip
    shipped = oid[rnd.random(orders) < 0.8]
    write("shipments", pa.table({"id": np.arange(1, len(shipped) + 1), "order_id": shipped,
          "status": pa.array(STATUSES[rnd.integers(0, len(STATUSES), len(shipped))])}))  # fmt: skip
    return {"customers": customers, "orders": orders, "order_items": int(lines.sum()), "products": products}


def settings_for(lake: Path) -> Settings:
    tables = [{"name": n, "topics": [f"shop.public.{n}"], "format": "debezium-json", "key": k}
              for n, k in [("customers", ["id"]), ("addresses", ["id"]), ("products", ["id"]),
                           ("prices", ["product_id"]), ("inventory", ["product_id"]), ("orders", ["id"]),
                           ("order_items", ["order_id", "line_no"]), ("shipments", ["id"])]]  # fmt: skip
    return Settings.model_validate(
        {
            "lake": {"uri": str(lake)},
            "tables": tables,
            "gold": {"models": ["customer_360", "sale_product", "daily_sales"]},
        }
    )


def _best(con: Any, sql: str, runs: int = 3) -> tuple[float, list[tuple[Any, ...]]]:
    best, rows = float("inf"), []
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = con.execute(sql).fetchall()
        best = min(best, time.perf_counter() - t0)
    return best, rows


def scanned_files(con: Any, query: str) -> str:
    """``read/total`` data files DuckDB's delta scan read for ``query`` (file skipping by Delta stats)."""
    plan = con.execute("EXPLAIN ANALYZE " + query).fetchall()[0][1]
    found = re.search(r"Scanning Files:\s*(\d+/\d+)", plan)
    return found.group(1) if found else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lakeport-bench-gold-") as tmp:
        lake = Path(tmp)
        t0 = time.perf_counter()
        sizes = build_silver(lake, customers=args.customers, orders=args.orders, products=args.products)
        print(f"silver written in {time.perf_counter() - t0:.1f}s: {sizes}")
        settings = settings_for(lake)
        refreshed = {r.model: r for r in refresh_gold(settings)}
        con = Lake(settings).con
        silver_s, silver_rows = _best(con, SILVER_TOP)
        gold_s, gold_rows = _best(con, GOLD_TOP)
        same = [(r[0], int(r[2])) for r in silver_rows] == [(r[0], int(r[2])) for r in gold_rows]
        last = args.orders - args.orders // 20
        by_key = scanned_files(con, f"SELECT count(*) FROM silver.orders WHERE id > {last}")
        since = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d %H:%M:%S+00")
        by_time = scanned_files(con, f"SELECT count(*) FROM silver.orders WHERE created_at >= TIMESTAMPTZ '{since}'")
    results = {
        "gold_customers": sizes["customers"],
        "gold_orders": sizes["orders"],
        "gold_order_items": sizes["order_items"],
        "gold_customer_360_refresh_seconds": refreshed["customer_360"].seconds,
        "gold_customer_360_rows": refreshed["customer_360"].rows,
        "gold_sale_product_refresh_seconds": refreshed["sale_product"].seconds,
        "gold_daily_sales_refresh_seconds": refreshed["daily_sales"].seconds,
        "top_products_7d_silver_seconds": round(silver_s, 4),
        "top_products_7d_gold_seconds": round(gold_s, 4),
        "top_products_7d_speedup": round(silver_s / gold_s, 1) if gold_s else None,
        "top_products_7d_same_answer": same,
        "orders_files_scanned_for_last_5pct_of_ids": by_key,
        "orders_files_scanned_for_last_7_days": by_time,
    }
    for k, v in results.items():
        print(f"{k:<40} {v}")
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
