"""Lake on a plain local-directory lake: views per layer, lakeport.tables, time travel by
version and by time, table history, and a gold model refreshed from silver (the same code runs
on S3 in test_analysts_query_gold_and_notebooks.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakeport.lake import Lake
from lakeport.lake.gold import models, refresh_gold
from lakeport.settings import Settings


def _settings(lake: Path, **extra: object) -> Settings:
    tables = [{"name": n, "topics": [f"shop.public.{n}"], "format": "debezium-json", "key": ["id"]}
              for n in ("customers", "orders", "shipments", "addresses")]  # fmt: skip
    return Settings.model_validate({"lake": {"uri": str(lake)}, "tables": tables, **extra})


def _customers(ids: list[int]) -> pa.Table:
    return pa.table({"id": ids, "email": [f"c{i}@x.org" for i in ids], "full_name": [f"C{i}" for i in ids],
                     "phone": pa.nulls(len(ids), pa.string()), "loyalty_tier": ["gold"] * len(ids),
                     "created_at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * len(ids))})  # fmt: skip


def _orders(rows: list[tuple[int, int, str, str]]) -> pa.Table:
    return pa.table({"id": [r[0] for r in rows], "customer_id": [r[1] for r in rows], "status": [r[2] for r in rows],
                     "total": pa.array([Decimal(r[3]) for r in rows], pa.decimal128(12, 2)),
                     "created_at": pa.array([datetime(2026, 1, 2, tzinfo=UTC)] * len(rows))})  # fmt: skip


def test_views_time_travel_and_gold_on_a_local_lake(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    silver = tmp_path / "silver"
    write_deltalake(str(silver / "customers"), _customers([1, 2]))
    write_deltalake(str(silver / "orders"), _orders([(10, 1, "Approved", "20.00"), (11, 2, "Cancelled", "5.00")]))
    write_deltalake(str(silver / "shipments"), pa.table({"id": [1], "order_id": [10], "status": ["InTransit"]}))
    address = {"id": [1], "customer_id": [1], "kind": ["shipping"], "street": ["1 Main St"], "city": ["Lyon"],
               "postcode": ["69001"], "country": ["FR"]}  # fmt: skip
    moved = pa.array([datetime(2026, 1, 1, tzinfo=UTC)])
    write_deltalake(str(silver / "addresses"), pa.table({**address, "updated_at": moved}))
    between = datetime.now(UTC)
    time.sleep(0.05)
    write_deltalake(str(silver / "customers"), _customers([3]), mode="append")  # version 1

    con = Lake(settings)
    tables = {(layer, name) for layer, name in con.execute("SELECT layer, name FROM lakeport.tables").fetchall()}
    assert {("silver", "customers"), ("silver", "orders")} <= tables and ("gold", "customer_360") not in tables
    assert con.execute("SELECT count(*) FROM silver.customers").fetchone() == (3,)
    assert con.execute(f"SELECT count(*) FROM {con.at_version('silver.customers', 0)}").fetchone() == (2,)
    assert con.execute(f"SELECT count(*) FROM {con.as_of('silver.customers', between)}").fetchone() == (2,)
    assert [v["version"] for v in con.versions("silver.customers")] == [1, 0]
    with pytest.raises(ValueError, match="did not exist"):
        con.as_of("silver.customers", datetime(2001, 1, 1, tzinfo=UTC))
    pinned = Lake(settings, versions={"silver.customers": 0})
    assert pinned.execute("SELECT count(*) FROM silver.customers").fetchone() == (2,)
    then = Lake(settings, as_of=between)
    assert then.execute("SELECT count(*) FROM silver.customers").fetchone() == (2,)

    assert [m.name for m in models(settings)] == ["customer_360"]  # the only model whose inputs are all here
    (result,) = refresh_gold(settings)
    assert (result.model, result.rows, result.version) == ("customer_360", 3, 0)
    query = "SELECT customer_id, orders, lifetime_value, open_shipments, city FROM gold.customer_360"
    with Lake(settings) as lake:
        rows = {r[0]: r[1:] for r in lake.sql(query).fetchall()}
    assert rows == {
        1: (1, Decimal("20.00"), 1, "Lyon"),
        2: (1, Decimal("0.00"), 0, None),
        3: (0, Decimal("0.00"), 0, None),
    }

    with pytest.raises(ValueError, match=r"gold\.models: no model file for nope"):
        models(_settings(tmp_path, gold={"models": ["nope"]}))
