"""The Dagster code location: definitions load from the table config, every job resolves, and the
whole asset graph materializes in-process against the real stack with the lake contents right."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable
from helpers import debezium, make_topic, read_table, send, unique, write_config

from lakeport.dagster_project.definitions import build
from lakeport.dev.stack import StackState

ROOT = Path(__file__).resolve().parent.parent


def config_for(tmp_path: Path, state: StackState | None, lake: str, prefix: str) -> Path:
    tables = [
        {"name": "customers", "topics": [f"{prefix}.public.customers"], "format": "debezium-json", "key": ["id"],
         "history": True},
        {"name": "domain_events", "topics": [f"{prefix}_events"], "format": "json", "key": ["event_id"]},
    ]  # fmt: skip
    return write_config(
        tmp_path / "lakeport.yaml", state, tables=tables, lake_uri=lake, ingest={"once_wait_seconds": 5},
        extra={"gold": {"models": []}},  # these test events are not the shop's: no order_timeline
    )  # fmt: skip


def test_definitions_load_and_jobs_resolve(tmp_path: Path) -> None:
    config = config_for(tmp_path, None, str(tmp_path / "lake"), "shop")
    defs = build(str(config))
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"bronze/customers", "bronze/domain_events", "silver/customers", "silver/customers_history",
                    "silver/domain_events"}  # fmt: skip
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"ingest_and_silver", "refresh_silver", "compact_lake", "vacuum_lake", "checkpoint_lake"} <= jobs
    shop = build(str(ROOT / "lakeport.yaml")).resolve_asset_graph()  # the demo config: gold models too
    gold = {k.to_user_string() for k in shop.get_all_asset_keys() if k.path[0] == "gold"}
    assert gold == {"gold/customer_360", "gold/daily_sales", "gold/order_timeline", "gold/sale_product"}
    assert {k.to_user_string() for k in shop.get(dg.AssetKey(["gold", "customer_360"])).parent_keys} == {
        "silver/customers", "silver/addresses", "silver/orders", "silver/shipments"}  # fmt: skip
    sensors = {s.name for s in defs.get_repository_def().sensor_defs}
    assert sensors == {"bronze_versions", "run_failures", "run_recoveries"}
    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {
        ("bronze/customers", "fresh_and_caught_up"), ("bronze/customers", "quality"),
        ("bronze/domain_events", "fresh_and_caught_up"), ("bronze/domain_events", "quality"),
        ("silver/customers", "quality"), ("silver/domain_events", "quality"),
    }  # fmt: skip
    env = {**os.environ, "LAKEPORT_CONFIG": str(config)}
    dagster = str(Path(sys.executable).parent / "dagster")
    done = subprocess.run(
        [dagster, "definitions", "validate", "-m", "lakeport.dagster_project.definitions"],
        env=env, capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.stack
def test_asset_graph_materializes_the_lake(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    prefix = unique("dg")
    make_topic(local_stack, f"{prefix}.public.customers", 2)
    make_topic(local_stack, f"{prefix}_events", 1)
    changes = [debezium("c", {"id": i, "email": f"c{i}@example.com"}, lsn=100 + i) for i in range(1, 41)]
    changes += [debezium("u", {"id": 5, "email": "new@example.com"}, lsn=500)]
    changes += [debezium("d", None, before={"id": 7}, lsn=501)]
    send(local_stack, f"{prefix}.public.customers", changes, keys=[b"k"] * len(changes))
    events = [json.dumps({"event_id": f"e{i}", "event_type": "OrderPlaced", "order_id": i}).encode() for i in range(25)]
    send(local_stack, f"{prefix}_events", events)
    defs = build(str(config_for(tmp_path, local_stack, s3_lake, prefix)))

    result = defs.resolve_job_def("ingest_and_silver").execute_in_process()
    assert result.success
    silver = {r["id"]: r["email"] for r in read_table(f"{s3_lake}/silver/customers", local_stack).to_pylist()}
    assert len(silver) == 39 and 7 not in silver and silver[5] == "new@example.com"
    history = read_table(f"{s3_lake}/silver/customers_history", local_stack).to_pylist()
    assert sum(r["is_current"] for r in history) == 39 and len(history) == 41
    assert read_table(f"{s3_lake}/bronze/domain_events", local_stack).num_rows == 25

    materialized = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert materialized["bronze/customers"]["rows"].value == 42
    assert materialized["bronze/customers"]["rows_added"].value == 42
    assert sum(json.loads(json.dumps(materialized["bronze/customers"]["kafka_lag"].value)).values()) == 0
    assert materialized["silver/customers"]["rows"].value == 39
    assert materialized["silver/customers"]["changes"].value == 42
    checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        ("bronze/customers", "fresh_and_caught_up"): True, ("bronze/customers", "quality"): True,
        ("bronze/domain_events", "fresh_and_caught_up"): True, ("bronze/domain_events", "quality"): True,
        ("silver/customers", "quality"): True, ("silver/domain_events", "quality"): True,
    }  # fmt: skip
    quality = read_table(f"{s3_lake}/ops/quality_results", local_stack).to_pylist()
    assert {r["suite"] for r in quality} == {
        "bronze.customers",
        "bronze.domain_events",
        "silver.customers",
        "silver.domain_events",
    }
    assert all(r["success"] for r in quality)

    again = defs.resolve_job_def("ingest_and_silver").execute_in_process()  # nothing new: nothing changes
    assert again.success and read_table(f"{s3_lake}/silver/customers", local_stack).num_rows == 39

    compacted = defs.resolve_job_def("compact_lake").execute_in_process()
    observed = {
        e.asset_key.to_user_string(): e.event_specific_data.asset_observation.metadata  # type: ignore[union-attr]
        for e in compacted.all_events
        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    }
    assert observed["bronze/customers"]["files_after"].value <= observed["bronze/customers"]["files_before"].value
    assert read_table(f"{s3_lake}/bronze/customers", local_stack).num_rows == 42


@pytest.mark.stack
def test_error_severity_failure_blocks_silver(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    prefix = unique("dgq")
    make_topic(local_stack, f"{prefix}.public.customers", 1)
    rows = [{"id": 1, "email": "a@example.com"}, {"id": 2, "email": None}, {"id": 3, "email": "c@example.com"}]
    send(local_stack, f"{prefix}.public.customers", [debezium("c", r, lsn=r["id"]) for r in rows])
    rule = {"expect": "not_null", "column": "email", "layer": "bronze", "name": "email_present"}
    tables = [{"name": "customers", "topics": [f"{prefix}.public.customers"], "format": "debezium-json",
               "key": ["id"], "quality": [rule]}]  # fmt: skip
    config = write_config(tmp_path / "lakeport.yaml", local_stack, tables=tables, lake_uri=s3_lake,
                          ingest={"once_wait_seconds": 5})  # fmt: skip
    result = build(str(config)).resolve_job_def("ingest_and_silver").execute_in_process(raise_on_error=False)

    evaluations = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    failed = evaluations["bronze/customers", "quality"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["failed"].value == {
        "email_present": {
            "severity": "error",
            "unexpected": 1,
            "sample_keys": [f"_topic={prefix}.public.customers,_partition=0,_offset=1"],
        }
    }
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"bronze/customers"}  # silver did not run on bad bronze data
    assert read_table(f"{s3_lake}/bronze/customers", local_stack).num_rows == 3
    assert not DeltaTable.is_deltatable(f"{s3_lake}/silver/customers", storage_options=local_stack.storage_options())
