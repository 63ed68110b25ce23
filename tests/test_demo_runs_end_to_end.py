"""`make demo` (lakeport demo run): its own stack, e-commerce traffic, ingest, a look at the lake,
and the stack stopped afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli

from lakeport.stack import free_port

pytestmark = [pytest.mark.stack, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


def test_demo_shows_what_landed_and_stops_its_stack(tmp_path: Path) -> None:
    kafka, s3 = free_port(), free_port()
    env = {
        "LAKEPORT_BOOTSTRAP": f"127.0.0.1:{kafka}",
        "LAKEPORT_S3_ENDPOINT": f"http://127.0.0.1:{s3}",
        "COLUMNS": "200",
    }
    home = tmp_path / "demo"
    proc = run_cli(
        ["demo", "run", "--home", str(home), "--orders", "300", "--config", str(ROOT / "lakeport.yaml")],
        env=env,
        timeout=300,
    )
    out = proc.stdout
    for table in ("bronze.customers", "bronze.products", "bronze.orders", "bronze.domain_events"):
        assert table in out
    assert "OrderPlaced" in out and "PaymentCaptured" in out and "ShipmentStatusChanged" in out
    assert "0 dead letters" in out
    produced = int(out.split("produced ")[1].split(" messages")[0].replace(",", ""))
    landed = int(out.split("landed ")[1].split(" rows")[0].replace(",", ""))
    assert produced == landed > 1000
    assert "stopped the local stack" in out and not (home / "stack.json").exists()
