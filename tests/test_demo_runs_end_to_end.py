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


def _free_ports() -> dict[str, str]:
    """The demo's config reads its ports from these: free ones, so a running stack never collides."""
    return {
        "LAKEPORT_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "LAKEPORT_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "LAKEPORT_PG_PORT": str(free_port()),
        "COLUMNS": "200",
    }


def test_demo_reconciles_shows_what_landed_and_stops_its_stack(tmp_path: Path) -> None:
    env = _free_ports()
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


def test_demo_with_debezium_on_apache_kafka_reconciles_and_stops_its_stack(tmp_path: Path) -> None:
    """``make demo KAFKA=apache DEBEZIUM=1``: the real connector in Kafka Connect replaces ``lakeport capture``."""
    env = _free_ports()
    home = tmp_path / "demo"
    args = ["demo", "run", "--home", str(home), "--transactions", "300", "--config", str(ROOT / "lakeport.yaml"),
            "--kafka", "apache", "--debezium"]  # fmt: skip
    out = run_cli(args, env=env, timeout=420).stdout
    assert "Apache Kafka" in out and "Debezium published" in out
    assert number(out, r"ran ([\d,]+) transactions") == 300
    changes = number(out, r"published.*?([\d,]+) changes and")
    events = number(out, r"changes and ([\d,]+) domain events")
    assert number(out, r"landed ([\d,]+) rows") == changes + events and events > 0 and changes > 300
    assert "0 dead letters" in out
    for table in CDC_TABLES:
        assert re.search(rf"silver\.{table}\s+[\d,]+ rows\s+vs\s+public\.{table}\s+equal", out), table
    assert "DIFFERENT" not in out and "OrderPlaced" in out
    assert "stopped the local stack" in out and not (home / "stack.json").exists()


def test_demo_refuses_debezium_without_apache_kafka(tmp_path: Path) -> None:
    result = run_cli(["demo", "run", "--home", str(tmp_path), "--debezium"], check=False, timeout=60)
    assert result.returncode == 2 and "--debezium needs --kafka apache" in result.stderr
