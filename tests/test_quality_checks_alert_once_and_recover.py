"""Bad data sent through Kafka — a negative amount, an orphan order, duplicate and null event ids, a
record that is not JSON —
fails exactly the expectations it should, with the right counts and keys in ops.quality_results;
a webhook receiver gets one alert per failure, none for repeats, and exactly one recovery per
alert once the data is fixed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import WebhookReceiver, debezium, make_topic, read_table, run_cli, send, unique, write_config

from lakeport.dev.stack import StackState
from lakeport.ingestion.worker import Worker
from lakeport.lake.refresh import refresh_silver
from lakeport.quality.run import check
from lakeport.settings import Settings, load_settings

pytestmark = pytest.mark.stack

STATUSES = ["Approved", "Processing", "Shipped", "InTransit", "Received", "Cancelled"]


def _config(tmp_path: Path, stack: StackState, lake: str, prefix: str, hook: str) -> Path:
    orders_rules = [
        {"expect": "between", "column": "total", "min": 0, "name": "total_not_negative"},
        {"expect": "in_set", "column": "status", "values": STATUSES, "severity": "warn"},
        {"expect": "references", "column": "customer_id", "table": "customers", "name": "customer_exists"},
        {"expect": "columns", "types": {"id": "integer", "total": "float", "status": "string"}},
    ]
    tables = [
        {"name": "customers", "topics": [f"{prefix}.public.customers"], "format": "debezium-json", "key": ["id"]},
        {"name": "orders", "topics": [f"{prefix}.public.orders"], "format": "debezium-json", "key": ["id"],
         "quality": orders_rules},
        {"name": "domain_events", "topics": [f"{prefix}_events"], "format": "json", "key": ["event_id"]},
    ]  # fmt: skip
    extra = {
        "quality": {"docs_dir": str(tmp_path / "quality")},
        "alerts": {"notifiers": [{"type": "log"}, {"type": "webhook", "url": hook}]},
        "gold": {"models": []},  # these test events are not the shop's
    }
    return write_config(tmp_path / "lakeport.yaml", stack, tables=tables, lake_uri=lake, extra=extra,
                        ingest={"once_wait_seconds": 5})  # fmt: skip


def _land(settings: Settings) -> None:
    Worker(settings, once=True).run()
    refresh_silver(settings)


def _order(i: int, customer: int, total: float, status: str = "Approved", lsn: int = 0) -> bytes:
    return debezium("c", {"id": i, "customer_id": customer, "total": total, "status": status}, lsn=lsn or i,
                    table="orders")  # fmt: skip


def _event(event_id: str | None, n: int) -> bytes:
    return json.dumps({"event_id": event_id, "event_type": "OrderPlaced", "order_id": n}).encode()


def _failing(rows: list[dict[str, Any]], run_id: str) -> dict[tuple[str, str], int]:
    return {(r["suite"], r["expectation"]): r["unexpected_count"] for r in rows
            if r["run_id"] == run_id and not r["success"]}  # fmt: skip


def test_bad_data_fails_exact_expectations_alerts_once_and_recovers(
    local_stack: StackState, s3_lake: str, tmp_path: Path
) -> None:
    prefix = unique("q")
    for topic in (f"{prefix}.public.customers", f"{prefix}.public.orders", f"{prefix}_events"):
        make_topic(local_stack, topic, 1)
    send(local_stack, f"{prefix}.public.customers",
         [debezium("c", {"id": i, "email": f"c{i}@example.com"}, lsn=i) for i in (1, 2, 3)])  # fmt: skip
    send(local_stack, f"{prefix}.public.orders",
         [_order(10, 1, 25.0), _order(11, 2, -3.5), _order(12, 99, 10.0), _order(13, 3, 7.0, "Shipped")])  # fmt: skip
    events = [_event(f"e{i}", i) for i in range(6)] + [_event("e2", 2), _event(None, 7)]  # e2 twice, one null
    events.append(b'{"event_id": "e9", "truncated')  # not JSON: a dead letter
    send(local_stack, f"{prefix}_events", events)

    with WebhookReceiver() as hook:
        config = _config(tmp_path, local_stack, s3_lake, prefix, hook.url)
        settings = load_settings(config)
        _land(settings)

        # 1. the CLI runs every suite, keeps the results and pages once per failing expectation
        done = run_cli(["check", "--config", str(config), "--json"], check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["passed"] is False
        results = read_table(f"{s3_lake}/ops/quality_results", local_stack).to_pylist()
        (run_id,) = {r["run_id"] for r in results}
        assert _failing(results, run_id) == {
            ("silver.orders", "total_not_negative"): 1,
            ("silver.orders", "customer_exists"): 1,
            ("bronze.domain_events", "key_unique"): 2,
            ("bronze.domain_events", "key_not_null"): 1,
            ("bronze.domain_events", "no_new_dead_letters"): 1,
        }
        by_name = {(r["suite"], r["expectation"]): r for r in results}
        assert json.loads(by_name["silver.orders", "total_not_negative"]["sample_keys"]) == ["id=11: -3.5"]
        assert json.loads(by_name["silver.orders", "customer_exists"]["sample_keys"]) == ["id=12: 99"]
        assert by_name["bronze.domain_events", "rows_match_offsets"]["success"]  # 9 offsets: 8 rows + 1 dead letter
        assert by_name["bronze.domain_events", "rows_match_offsets"]["observed_value"] == "8"
        assert by_name["bronze.domain_events", "rows_match_offsets"]["rows_checked"] == 8
        assert by_name["silver.orders", "in_set_status"]["success"]
        assert by_name["silver.orders", "schema"]["success"]
        assert by_name["silver.orders", "key_unique"]["success"]
        assert by_name["silver.orders", "key_unique"]["version"] == read_version(s3_lake, "silver/orders", local_stack)

        firing = [b["lakeport"] for b in hook.bodies]
        assert sorted(a["key"] for a in firing) == sorted(
            f"quality:{suite}:{name}" for suite, name in _failing(results, run_id)
        )
        assert all(a["status"] == "firing" for a in firing)
        negative = next(a for a in firing if a["key"].endswith("total_not_negative"))
        assert (
            negative["table"] == "silver.orders"
            and negative["rows"] == 1
            and negative["sample_keys"] == ["id=11: -3.5"]
        )
        assert "lakeport sql" in negative["link"] and "[ERROR]" in hook.bodies[0]["text"]

        # 2. still failing, nothing new: no second page
        again = check(settings)
        assert {r.suite: len(r.errors) for r in again} == {"bronze.customers": 0, "silver.customers": 0,
                                                           "bronze.orders": 0, "silver.orders": 2,
                                                           "bronze.domain_events": 0,
                                                           "silver.domain_events": 0}  # fmt: skip
        assert len(hook.bodies) == 5

        # 3. fix the data at the source: the order's amount, the missing customer, clean events
        repaired = {"id": 11, "customer_id": 2, "total": 3.5, "status": "Approved"}
        send(local_stack, f"{prefix}.public.orders", [debezium("u", repaired, lsn=100, table="orders")])
        send(local_stack, f"{prefix}.public.customers", [debezium("c", {"id": 99, "email": "c99@example.com"}, lsn=99)])
        send(local_stack, f"{prefix}_events", [_event(f"e{i}", i) for i in range(10, 13)])
        _land(settings)
        fixed = check(settings)
        assert all(r.passed for r in fixed), [(r.suite, r.errors) for r in fixed]
        recovered = [b["lakeport"] for b in hook.bodies[5:]]
        assert sorted(a["key"] for a in recovered) == sorted(a["key"] for a in firing)  # exactly one each
        assert all(
            a["status"] == "resolved" and "[RESOLVED]" in b["text"]
            for a, b in zip(recovered, hook.bodies[5:], strict=True)
        )

        # 4. passing stays quiet
        check(settings)
        assert len(hook.bodies) == 10
    alerts = read_table(f"{s3_lake}/ops/alerts", local_stack).to_pylist()
    assert sorted(r["status"] for r in alerts) == ["firing"] * 5 + ["resolved"] * 5
    assert (tmp_path / "quality" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()


def read_version(lake: str, path: str, stack: StackState) -> int:
    from deltalake import DeltaTable

    return DeltaTable(f"{lake}/{path}", storage_options=stack.storage_options()).version()
