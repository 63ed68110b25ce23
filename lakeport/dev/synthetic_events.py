"""Synthetic e-commerce traffic: Debezium change events and domain events, reproducible by seed.

Used by the ingest benchmark and the tests that need volume; the demo's source is the OLTP
workload in PostgreSQL (``lakeport.dev.oltp``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode
Message = tuple[str, bytes, bytes]  # topic, key, value

CITIES = [
    "Lisbon",
    "Porto",
    "Berlin",
    "Hamburg",
    "Lyon",
    "Paris",
    "Madrid",
    "Turin",
    "Utrecht",
    "Gdansk",
]
CATEGORIES = ["books", "garden", "kitchen", "toys", "audio", "outdoor", "office", "pets"]
SHIPMENT_FLOW = ["Approved", "Processing", "Shipped", "InTransit", "Received"]


def change_event(
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    table: str,
    lsn: int,
    ts_ms: int,
    tx_id: int,
    db: str = "shop",
    snapshot: str = "false",
) -> dict[str, Any]:
    """A Debezium PostgreSQL change event envelope (without the schema wrapper)."""
    return {
        "before": before,
        "after": after,
        "op": op,
        "ts_ms": ts_ms + 3,
        "source": {
            "version": "2.7.0.Final",
            "connector": "postgresql",
            "name": "shop",
            "ts_ms": ts_ms,
            "snapshot": snapshot,
            "db": db,
            "sequence": f'["{lsn - 8}","{lsn}"]',
            "schema": "public",
            "table": table,
            "txId": tx_id,
            "lsn": lsn,
            "xmin": None,
        },
        "transaction": None,
    }


@dataclass
class EcommerceWorkload:
    """Customers, products and orders changing over time, plus the domain events they raise."""

    seed: int = 7
    customers: int = 200
    products: int = 50
    orders: int = 1000
    prefix: str = "shop.public"

    def messages(self) -> Iterator[Message]:
        rnd = random.Random(self.seed)
        clock, lsn, tx = 1_767_225_600_000, 10_000_000, 5000
        customers: dict[int, dict[str, Any]] = {}
        prices: dict[int, str] = {}

        def cdc(table: str, key: int, op: str, before: Any, after: Any) -> Message:
            nonlocal lsn, tx, clock
            lsn, tx, clock = lsn + rnd.randint(40, 400), tx + 1, clock + rnd.randint(5, 900)
            event = change_event(op, before, after, table=table, lsn=lsn, ts_ms=clock, tx_id=tx)
            return f"{self.prefix}.{table}", _encode({"id": key}), _encode(event)

        def domain(kind: str, aggregate: str, key: int, **payload: Any) -> Message:
            event = {
                "event_id": f"{kind}-{key}-{lsn}",
                "event_type": kind,
                "aggregate_type": aggregate,
                "aggregate_id": str(key),
                "occurred_at": clock,
                **payload,
            }
            return f"events.{aggregate}", str(key).encode(), _encode(event)

        for pid in range(1, self.products + 1):
            prices[pid] = f"{rnd.randint(300, 25000) / 100:.2f}"
            row = {
                "id": pid,
                "sku": f"SKU-{pid:05d}",
                "name": f"Product {pid}",
                "category": rnd.choice(CATEGORIES),
                "price": prices[pid],
                "stock": rnd.randint(0, 500),
            }
            yield cdc("products", pid, "r", None, row)
        for cid in range(1, self.customers + 1):
            row = {
                "id": cid,
                "email": f"customer{cid}@example.com",
                "full_name": f"Customer {cid}",
                "city": rnd.choice(CITIES),
                "created_at": clock,
            }
            customers[cid] = row
            yield cdc("customers", cid, "c", None, row)
        for oid in range(1, self.orders + 1):
            cid, pid = rnd.randint(1, self.customers), rnd.randint(1, self.products)
            qty = rnd.randint(1, 4)
            order = {
                "id": oid,
                "customer_id": cid,
                "product_id": pid,
                "quantity": qty,
                "amount": f"{float(prices[pid]) * qty:.2f}",
                "status": "Approved",
                "updated_at": clock,
            }
            yield cdc("orders", oid, "c", None, order)
            yield domain("OrderPlaced", "order", oid, customer_id=cid, amount=order["amount"])
            if rnd.random() < 0.9:
                yield domain(
                    "PaymentCaptured",
                    "payment",
                    oid,
                    amount=order["amount"],
                    method=rnd.choice(["card", "paypal", "sepa"]),
                )
                for status in SHIPMENT_FLOW[1 : rnd.randint(2, len(SHIPMENT_FLOW))]:
                    new = {**order, "status": status, "updated_at": clock}
                    yield cdc("orders", oid, "u", order, new)
                    yield domain("ShipmentStatusChanged", "shipment", oid, status=status)
                    order = new
            elif rnd.random() < 0.5:
                yield cdc("orders", oid, "d", {"id": oid}, None)
            if rnd.random() < 0.1 and customers:
                cid = rnd.choice(list(customers))
                new = {**customers[cid], "city": rnd.choice(CITIES)}
                yield cdc("customers", cid, "u", customers[cid], new)
                customers[cid] = new


def bench_events(count: int, *, seed: int = 1, keys: int = 200_000) -> Iterator[tuple[bytes, bytes]]:
    """``count`` Debezium order change events of ~750 bytes (30% updates, 5% deletes)."""
    rnd = random.Random(seed)
    lsn, clock = 50_000_000, 1_767_225_600_000
    for i in range(count):
        key = rnd.randint(1, keys)
        roll = rnd.random()
        op = "d" if roll < 0.05 else ("u" if roll < 0.35 else "c")
        lsn += 64
        clock += 1
        row = {
            "id": key,
            "customer_id": rnd.randint(1, 100_000),
            "product_id": rnd.randint(1, 5000),
            "status": rnd.choice(SHIPMENT_FLOW),
            "quantity": rnd.randint(1, 5),
            "amount": f"{rnd.randint(100, 99999) / 100:.2f}",
            "currency": "EUR",
            "shipping_city": rnd.choice(CITIES),
            "note": "x" * rnd.randint(10, 40),
            "shipping_street": f"{rnd.randint(1, 999)} Avenida da Liberdade, apt {rnd.randint(1, 99)}",
            "customer_email": f"customer{rnd.randint(1, 100_000)}@example.com",
            "payment_method": rnd.choice(["card", "paypal", "sepa", "klarna"]),
            "created_at": clock - 86_400_000,
            "updated_at": clock,
            "version": i,
        }
        after = None if op == "d" else row
        before = {"id": key} if op == "d" else (row if op == "u" else None)
        event = change_event(op, before, after, table="orders", lsn=lsn, ts_ms=clock, tx_id=1000 + i)
        yield _encode({"id": key}), _encode(event)
