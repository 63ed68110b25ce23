"""The shop's transactions against the OLTP schema, one method per kind, each in the caller's open
transaction: every choice comes from one ``random.Random`` and the database's state read in key order,
and timestamps from a simulated clock (see ``workload``)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SEED_PRODUCTS, SEED_CUSTOMERS = 20, 30
FLOW = ["Approved", "Processing", "Shipped", "InTransit", "Received"]
STEP = timedelta(minutes=30)  # an order stays at least this long (simulated) in each shipping status
OPEN = ("Approved", "Processing", "Shipped", "InTransit")
FIRST = ["Ana", "Bruno", "Chloe", "Dario", "Eva", "Femi", "Greta", "Hugo", "Ines", "Jonas", "Klara", "Luca"]
LAST = ["Silva", "Meyer", "Dubois", "Rossi", "Jansen", "Nowak", "Garcia", "Costa", "Weber", "Moreau"]
CITIES = [("Lisbon", "PT"), ("Porto", "PT"), ("Berlin", "DE"), ("Hamburg", "DE"), ("Lyon", "FR"), ("Paris", "FR")]
CITIES += [("Madrid", "ES"), ("Turin", "IT"), ("Utrecht", "NL"), ("Gdansk", "PL")]
STREETS = ["Main St", "Harbour Rd", "Mill Lane", "Station Sq", "Park Ave", "Church St", "Bridge Rd"]
CATEGORIES = ["books", "garden", "kitchen", "toys", "audio", "outdoor", "office", "pets"]
ADJECTIVES = ["Classic", "Compact", "Deluxe", "Eco", "Pro", "Smart", "Travel", "Vintage"]
TIERS = ["none", "bronze", "silver", "gold"]
METHODS = ["card", "card", "paypal", "bank_transfer"]
CARRIERS = ["DHL", "UPS", "PostNL", "CTT", "Colissimo"]
STOCK_AND_PRICE = """SELECT i.on_hand - i.reserved, p.amount FROM inventory i JOIN prices p USING (product_id)
    WHERE product_id = %s FOR UPDATE"""
KINDS = {  # kind -> relative weight; a kind with nothing to act on (no paid order to ship...) is re-drawn
    "signup": 6, "address_change": 4, "profile_update": 6, "product_launch": 1, "price_change": 4,
    "restock": 3, "place_order": 14, "pay": 12, "shipment_progress": 36, "cancellation": 2,
    "delete_order": 1, "delete_customer": 1,
}  # fmt: skip


class NothingFits(LookupError):
    """No row to act on for this kind of transaction (raised before it wrote anything)."""


class Shop:
    """The shop's transactions, one method per kind, all in the caller's open transaction."""

    def __init__(self, cur: Cursor, rng: random.Random, clock: datetime) -> None:
        self.cur, self.rng, self.now, self.events = cur, rng, clock, 0

    def tick(self) -> None:
        self.now += timedelta(seconds=self.rng.randint(1, 90), milliseconds=self.rng.randint(0, 999))

    def q(self, sql: str, *params: Any) -> Any:
        """Run one statement; its first row if it returns any (the value itself for a single column)."""
        self.cur.execute(sql, params)
        row = self.cur.fetchone() if self.cur.description else None
        return row[0] if row is not None and len(row) == 1 else row

    def insert(self, table: str, returning: str = "", **row: Any) -> Any:
        values = ", ".join(["%s"] * len(row))
        suffix = f" RETURNING {returning}" if returning else ""
        return self.q(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({values}){suffix}", *row.values())

    def pick(self, table: str, where: str = "TRUE", *params: Any, key: str = "id") -> Any:
        """A pseudo-random key of a row matching ``where``: the first at or after a random point of the key range."""
        found = self.q(
            f"SELECT {key} FROM {table} t WHERE {where} AND {key} >= "
            f"(SELECT floor(max({key}) * %s) FROM {table}) ORDER BY {key} LIMIT 1",
            *params,
            self.rng.random(),
        )
        if found is None:
            found = self.q(f"SELECT {key} FROM {table} t WHERE {where} ORDER BY {key} LIMIT 1", *params)
        if found is None:
            raise NothingFits(table)
        return found

    def emit(self, aggregate_type: str, aggregate_id: int, type_: str, **payload: Any) -> None:
        """An outbox row in the current transaction: a flat JSON object, money as '12.30' strings."""
        event_id = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        flat = {k: f"{v:.2f}" if isinstance(v, Decimal) else v for k, v in payload.items()}
        self.insert(
            "outbox", id=str(event_id), aggregate_type=aggregate_type, aggregate_id=str(aggregate_id),
            type=type_, payload=Json(flat), created_at=self.now,
        )  # fmt: skip
        self.events += 1

    def address(self, customer_id: int, kind: str) -> None:
        city, country = self.rng.choice(CITIES)
        street = f"{self.rng.randint(1, 240)} {self.rng.choice(STREETS)}"
        postcode = f"{self.rng.randint(1000, 99999):05d}"
        self.insert(
            "addresses", customer_id=customer_id, kind=kind, street=street, city=city, postcode=postcode,
            country=country, valid_since=self.now.date(), updated_at=self.now,
        )  # fmt: skip

    def signup(self) -> None:
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}.{rng.getrandbits(40):010x}@example.com".lower()
        notes = rng.randbytes(rng.randint(1500, 3000)).hex() if rng.random() < 0.3 else None  # 3-6 KB: TOASTed
        customer_id = self.insert(
            "customers", "id", email=email, full_name=f"{first} {last}", phone=f"+{rng.randint(10**10, 10**11 - 1)}",
            loyalty_tier="none", notes=notes, created_at=self.now, updated_at=self.now,
        )  # fmt: skip
        self.address(customer_id, "shipping")
        if rng.random() < 0.5:
            self.address(customer_id, "billing")
        self.emit("customer", customer_id, "CustomerRegistered", customer_id=customer_id, email=email)

    def address_change(self) -> None:
        address_id = self.pick("addresses")
        if self.rng.random() < 0.6:  # a correction in place
            street = f"{self.rng.randint(1, 240)} {self.rng.choice(STREETS)}"
            sql = "UPDATE addresses SET street = %s, valid_since = %s, updated_at = %s WHERE id = %s"
            self.q(sql, street, self.now.date(), self.now, address_id)
        else:  # moved: the old address goes, a new one replaces it
            self.address(*self.q("DELETE FROM addresses WHERE id = %s RETURNING customer_id, kind", address_id))

    def profile_update(self) -> None:  # never touches notes: in the WAL it is an unchanged TOASTed value
        customer_id = self.pick("customers")
        phone, tier = f"+{self.rng.randint(10**10, 10**11 - 1)}", self.rng.choice(TIERS)
        sql = "UPDATE customers SET phone = %s, loyalty_tier = %s, updated_at = %s WHERE id = %s"
        self.q(sql, phone, tier, self.now, customer_id)

    def product_launch(self) -> None:
        rng, category = self.rng, self.rng.choice(CATEGORIES)
        name = f"{rng.choice(ADJECTIVES)} {category} item"
        product_id = self.insert(
            "products", "id", sku=f"SKU-{rng.getrandbits(32):08X}", name=name, category=category, active=True,
            created_at=self.now,
        )  # fmt: skip
        amount = Decimal(rng.randint(199, 19999)) / 100
        self.insert("prices", product_id=product_id, amount=amount, currency="EUR", updated_at=self.now)
        on_hand = rng.randint(20, 200)
        self.insert("inventory", product_id=product_id, on_hand=on_hand, reserved=0, updated_at=self.now)

    def price_change(self) -> None:
        product_id = self.pick("prices", key="product_id")
        old = self.q("SELECT amount FROM prices WHERE product_id = %s", product_id)
        new = max(Decimal("0.99"), (old * self.rng.randint(80, 125) / 100).quantize(Decimal("0.01")))
        self.q("UPDATE prices SET amount = %s, updated_at = %s WHERE product_id = %s", new, self.now, product_id)
        self.emit(
            "product", product_id, "PriceChanged", product_id=product_id, old_amount=old, amount=new, currency="EUR"
        )

    def restock(self) -> None:
        product_id = self.pick("inventory", "on_hand - reserved < 40", key="product_id")
        sql = "UPDATE inventory SET on_hand = on_hand + %s, updated_at = %s WHERE product_id = %s"
        self.q(sql, self.rng.randint(50, 300), self.now, product_id)

    def place_order(self) -> None:
        customer_id = self.pick("customers")
        lines: dict[int, tuple[int, Decimal]] = {}  # product -> quantity, unit price
        for _ in range(self.rng.randint(1, 4)):
            product_id, wanted = self.pick("inventory", "on_hand > reserved", key="product_id"), self.rng.randint(1, 3)
            if product_id not in lines:
                available, price = self.q(STOCK_AND_PRICE, product_id)
                lines[product_id] = (min(wanted, available), price)
        total = sum((quantity * price for quantity, price in lines.values()), Decimal(0))
        order_id = self.insert(
            "orders", "id", customer_id=customer_id, status="Approved", total=total, currency="EUR",
            created_at=self.now, updated_at=self.now,
        )  # fmt: skip
        for line_no, (product_id, (quantity, price)) in enumerate(lines.items(), start=1):
            self.insert(
                "order_items", order_id=order_id, line_no=line_no, product_id=product_id, quantity=quantity,
                unit_price=price,
            )  # fmt: skip
            sql = "UPDATE inventory SET reserved = reserved + %s, updated_at = %s WHERE product_id = %s"
            self.q(sql, quantity, self.now, product_id)
        self.emit(
            "order", order_id, "OrderPlaced", order_id=order_id, customer_id=customer_id, total=total, currency="EUR",
            items=len(lines),
        )  # fmt: skip

    def pay(self) -> None:
        order_id = self.pick(
            "orders", "status = 'Approved' AND NOT EXISTS (SELECT FROM payments p WHERE p.order_id = t.id)"
        )
        total, method = self.q("SELECT total FROM orders WHERE id = %s", order_id), self.rng.choice(METHODS)
        payment_id = self.insert(
            "payments", "id", order_id=order_id, amount=total, method=method, status="Captured", captured_at=self.now
        )
        self.emit(
            "payment", order_id, "PaymentCaptured", payment_id=payment_id, order_id=order_id, amount=total,
            currency="EUR", method=method,
        )  # fmt: skip

    def shipment_progress(self) -> None:
        paid = "EXISTS (SELECT FROM payments p WHERE p.order_id = t.id AND p.status = 'Captured')"
        movable = f"(status IN ('Processing', 'Shipped', 'InTransit') OR (status = 'Approved' AND {paid}))"
        order_id = self.pick("orders", f"{movable} AND updated_at <= %s", self.now - STEP)  # each step takes a while
        status = FLOW[FLOW.index(self.q("SELECT status FROM orders WHERE id = %s", order_id)) + 1]
        self.q("UPDATE orders SET status = %s, updated_at = %s WHERE id = %s", status, self.now, order_id)
        if status == "Processing":
            carrier = self.rng.choice(CARRIERS)
            shipment_id = self.insert(
                "shipments", "id", order_id=order_id, status=status, carrier=carrier, updated_at=self.now
            )
        else:
            tracking = f"{self.rng.getrandbits(48):012X}" if status == "Shipped" else None
            shipment_id, carrier = self.q(
                "UPDATE shipments SET status = %s, tracking_no = coalesce(%s, tracking_no), updated_at = %s"
                " WHERE order_id = %s RETURNING id, carrier",
                status, tracking, self.now, order_id,
            )  # fmt: skip
        if status == "Shipped":  # the goods leave the warehouse: the reservation becomes a withdrawal
            self.release(order_id, withdraw=True)
        self.emit(
            "shipment", order_id, "ShipmentStatusChanged", order_id=order_id, shipment_id=shipment_id, status=status,
            carrier=carrier,
        )  # fmt: skip

    def release(self, order_id: int, *, withdraw: bool) -> None:
        """Give back an order's reservations (withdraw: and take the goods off the shelf)."""
        self.q(
            "UPDATE inventory i SET reserved = reserved - oi.quantity,"
            f" on_hand = on_hand - oi.quantity * {int(withdraw)}, updated_at = %s"
            " FROM order_items oi WHERE oi.order_id = %s AND oi.product_id = i.product_id",
            self.now, order_id,
        )  # fmt: skip

    def cancellation(self) -> None:
        order_id = self.pick("orders", "status IN ('Approved', 'Processing')")
        sql = "UPDATE orders SET status = 'Cancelled', updated_at = %s WHERE id = %s RETURNING customer_id"
        customer_id = self.q(sql, self.now, order_id)
        self.q("UPDATE shipments SET status = 'Cancelled', updated_at = %s WHERE order_id = %s", self.now, order_id)
        self.release(order_id, withdraw=False)
        sql = "UPDATE payments SET status = 'Refunded' WHERE order_id = %s AND status = 'Captured' RETURNING amount"
        refund = self.q(sql, order_id) or Decimal(0)
        self.emit(
            "order", order_id, "OrderCancelled", order_id=order_id, customer_id=customer_id, refund_amount=refund,
            currency="EUR",
        )  # fmt: skip

    def delete_order(self) -> None:  # items, payment and shipment go with it (ON DELETE CASCADE)
        self.q("DELETE FROM orders WHERE id = %s", self.pick("orders", "status = 'Cancelled'"))

    def delete_customer(self) -> None:  # addresses and (closed) orders cascade
        no_open_orders = "NOT EXISTS (SELECT FROM orders o WHERE o.customer_id = t.id AND o.status IN %s)"
        self.q("DELETE FROM customers WHERE id = %s", self.pick("customers", no_open_orders, OPEN))
