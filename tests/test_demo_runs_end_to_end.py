"""`make demo` (lakeport demo run): its own stack, e-commerce transactions in PostgreSQL, capture,
ingest, silver, reconcile, a look at the lake, and the stack stopped afterwards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import run_cli

from lakeport.dev.stack import free_port

pytestmark = [pytest.mark.stack, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
CDC_TABLES = ("customers", "addresses", "products", "prices", "inventory", "orders", "order_items", "payments")


def number(text: str, pattern: str) -> int:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the demo's output"
    return int(match.group(1).replace(",", ""))


def test_demo_reconciles_shows_what_landed_and_stops_its_stack(tmp_path: Path) -> None:
    env = {
        "LAKEPORT_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "LAKEPORT_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "LAKEPORT_PG_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    home = tmp_path / "demo"
    args = ["demo", "run", "--home", str(home), "--transactions", "800", "--config", str(ROOT / "lakeport.yaml")]
    out = run_cli(args, env=env, timeout=300).stdout
    assert number(out, r"ran ([\d,]+) transactions") == 800
    published = sum(
        number(out, rf"published.*?([\d,]+) {what}") for what in ("snapshot rows", "changes and", "domain events")
    )
    assert number(out, r"landed ([\d,]+) rows") == published > 800
    assert "0 dead letters" in out
    for table in CDC_TABLES:
        assert re.search(rf"silver\.{table}\s+[\d,]+ rows\s+vs\s+public\.{table}\s+equal", out), table
    assert "DIFFERENT" not in out
    assert "OrderPlaced" in out and "PaymentCaptured" in out and "ShipmentStatusChanged" in out
    assert "stopped the local stack" in out and not (home / "stack.json").exists()
