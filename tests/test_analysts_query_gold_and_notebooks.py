"""The analyst's side, end to end on the demo lake (its own stack, PostgreSQL CDC, the real
lakeport.yaml): gold models equal what silver says when recomputed independently, gold quality
passes, Dagster materializes gold, time travel and the shell work, and every notebook runs."""

from __future__ import annotations

import json
import subprocess
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import nbformat
import pytest
from deltalake import DeltaTable
from helpers import LAKEPORT, run_cli

from lakeport.dagster_project.definitions import build
from lakeport.dev import notebooks
from lakeport.dev.stack import free_port
from lakeport.settings import Settings, load_settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "lakeport.yaml"
NOTEBOOK_OUT = ROOT / ".lakeport" / "notebooks"


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The demo, left running on free ports; yields (settings, env, home); stops its stack."""
    env = {
        "LAKEPORT_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "LAKEPORT_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "LAKEPORT_PG_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    home = tmp_path_factory.mktemp("analyst") / "demo"
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    try:
        run_cli(["demo", "run", "--keep", "--home", str(home), "--transactions", "600", "-c", str(CONFIG)], timeout=400)
        yield load_settings(CONFIG), env, home
    finally:
        run_cli(["dev", "down", "--home", str(home)], check=False)
        mp.undo()


def rows(settings: Settings, layer: str, name: str) -> list[dict[str, Any]]:
    uri = settings.lake.table_uri(layer, name)
    return DeltaTable(uri, storage_options=settings.lake.to_object_store()).to_pyarrow_table().to_pylist()


def sql_json(query: str, *args: str) -> list[dict[str, Any]]:
    out = run_cli(["sql", query, "-c", str(CONFIG), "--format", "json", *args]).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_gold_models_match_silver_recomputed_independently(demo_lake: Any) -> None:
    settings, _, _ = demo_lake
    customers, orders = rows(settings, "silver", "customers"), rows(settings, "silver", "orders")
    items, products = rows(settings, "silver", "order_items"), rows(settings, "silver", "products")
    assert len(customers) > 50 and len(orders) > 50

    live = [o for o in orders if o["status"] != "Cancelled"]
    value: dict[int, Decimal] = defaultdict(Decimal)
    for o in live:
        value[o["customer_id"]] += o["total"]
    count = Counter(o["customer_id"] for o in orders)
    c360 = {r["customer_id"]: r for r in rows(settings, "gold", "customer_360")}
    assert set(c360) == {c["id"] for c in customers}
    for cid, row in c360.items():
        assert row["orders"] == count.get(cid, 0), cid
        assert row["lifetime_value"] == value.get(cid, Decimal(0)), cid

    status = {o["id"]: o["status"] for o in orders}
    sold: dict[int, int] = defaultdict(int)
    for i in items:
        if status.get(i["order_id"], "Cancelled") != "Cancelled":
            sold[i["product_id"]] += i["quantity"]
    sale = {r["product_id"]: r for r in rows(settings, "gold", "sale_product")}
    assert set(sale) == {p["id"] for p in products}
    assert {pid: r["units_sold"] for pid, r in sale.items() if r["units_sold"]} == dict(sold)
    assert all(r["available"] == r["on_hand"] - r["reserved"] for r in sale.values() if r["on_hand"] is not None)

    kept = [i for i in items if status.get(i["order_id"], "Cancelled") != "Cancelled"]
    revenue = sum((i["quantity"] * i["unit_price"] for i in kept), Decimal(0))
    daily = rows(settings, "gold", "daily_sales")
    assert sum((r["revenue"] for r in daily), Decimal(0)) == revenue
    assert len({(r["day"], r["category"]) for r in daily}) == len(daily)

    events = rows(settings, "bronze", "domain_events")
    placed = {int(e["aggregate_id"]) for e in events if e["event_type"] == "OrderPlaced"}
    timeline = {r["order_id"]: r for r in rows(settings, "gold", "order_timeline")}
    assert placed <= set(timeline)
    for oid in placed:
        t = timeline[oid]
        assert t["created_at"] is not None
        if t["received_at"] is not None:
            assert t["created_at"] <= t["shipped_at"] <= t["received_at"] and t["seconds_to_receive"] >= 0


def test_gold_quality_passes_and_dagster_materializes_gold(demo_lake: Any) -> None:
    settings, _, _ = demo_lake
    done = run_cli(["check", "-c", str(CONFIG), "--layer", "gold", "--json", "--no-alert"])
    report = json.loads(done.stdout)
    suites = {s["suite"]: s for s in report["suites"]}
    assert set(suites) == {"gold.customer_360", "gold.daily_sales", "gold.order_timeline", "gold.sale_product"}
    assert report["passed"] and all(o["success"] for s in suites.values() for o in s["outcomes"])
    totals = [o for o in suites["gold.daily_sales"]["outcomes"] if o["expectation"] == "total_revenue_matches"]
    assert len(totals) == 1 and json.loads(totals[0]["observed"])["sum"] > 0

    before = DeltaTable(settings.lake.table_uri("gold", "customer_360"),
                        storage_options=settings.lake.to_object_store()).version()  # fmt: skip
    result = build(str(CONFIG)).resolve_job_def("refresh_silver").execute_in_process()
    assert result.success
    materialized = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    assert {"gold/customer_360", "gold/sale_product", "gold/daily_sales", "gold/order_timeline"} <= set(materialized)
    meta = materialized["gold/customer_360"].step_materialization_data.materialization.metadata
    assert meta["rows"].value == len(rows(settings, "silver", "customers"))
    assert meta["version"].value == before + 1


def test_time_travel_file_queries_and_the_shell(demo_lake: Any, tmp_path: Path) -> None:
    settings, _, _ = demo_lake
    uri = settings.lake.table_uri("bronze", "orders")
    opts = settings.lake.to_object_store()
    first = DeltaTable(uri, storage_options=opts, version=0).count()
    now = DeltaTable(uri, storage_options=opts).count()
    assert sql_json("SELECT count(*) AS n FROM bronze.orders", "--at-version", "bronze.orders=0") == [{"n": first}]
    query = tmp_path / "q.sql"
    query.write_text("SELECT count(*) AS n FROM bronze.orders")
    assert json.loads(run_cli(["sql", "-F", str(query), "-c", str(CONFIG), "-f", "json"]).stdout) == [{"n": now}]
    gone = run_cli(["sql", "SELECT count(*) FROM gold.customer_360", "-c", str(CONFIG), "--as-of", "2001-01-01"],
                   check=False)  # fmt: skip
    assert gone.returncode == 1 and "customer_360" in gone.stderr  # the lake did not exist in 2001
    bad = run_cli(["sql", "SELECT 1", "-c", str(CONFIG), "--at-version", "silver.nope=3"], check=False)
    assert bad.returncode == 2 and "silver.nope" in bad.stderr

    shell = subprocess.run(
        [LAKEPORT, "shell", "-c", str(CONFIG)],
        input="SELECT count(*) AS customers\n  FROM gold.customer_360;\nSELECT nope;\n.tables\n.quit\n",
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    assert str(len(rows(settings, "gold", "customer_360"))) in shell.stdout
    assert "error:" in shell.stderr and "nope" in shell.stderr  # a bad statement does not end the session
    assert "customer_360" in shell.stdout and "quality_results" in shell.stdout  # .tables


def test_every_notebook_runs_against_the_demo_lake(demo_lake: Any) -> None:
    runs = [
        notebooks.execute(nb, config=CONFIG, out_dir=NOTEBOOK_OUT) for nb in sorted(notebooks.NOTEBOOKS.glob("*.ipynb"))
    ]
    assert len(runs) >= 3
    assert [(r.name, r.error) for r in runs if r.error] == []
    for run in runs:
        executed = nbformat.read(run.output, as_version=4)
        code = [c for c in executed.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), run.name  # every cell ran
    ops = nbformat.read(NOTEBOOK_OUT / "03_operations.ipynb", as_version=4)
    images = [
        o for c in ops.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 2  # the lag and file-count plots were drawn
