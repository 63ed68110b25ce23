"""`lakeport ingest --once` lands CDC and event topics in bronze Delta tables on S3, and the
status and sql commands report what landed."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from deltalake import DeltaTable
from helpers import debezium, make_topic, offsets_of, read_table, run_cli, send, unique, write_config

from lakeport.dev.stack import StackState

pytestmark = pytest.mark.stack


def test_once_lands_every_message_and_reports_it(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    cdc, events = unique("shop.public.customers"), unique("events.")
    make_topic(local_stack, cdc, 3)
    make_topic(local_stack, events + "order", 2)
    make_topic(local_stack, events + "payment", 1)
    cdc_values = [debezium("c", {"id": i, "email": f"c{i}@x.io"}, lsn=i) for i in range(300)]
    send(local_stack, cdc, cdc_values, keys=[json.dumps({"id": i}).encode() for i in range(300)])
    send(local_stack, events + "order", [json.dumps({"event_id": f"o{i}", "amount": i}).encode() for i in range(50)])
    send(
        local_stack,
        events + "payment",
        [json.dumps({"event_id": f"p{i}", "method": "card"}).encode() for i in range(20)],
    )
    config = write_config(
        tmp_path / "lakeport.yaml",
        local_stack,
        lake_uri=s3_lake,
        tables=[
            {"name": "customers", "topics": [cdc], "format": "debezium-json", "key": ["id"]},
            {"name": "events", "topic_pattern": "^" + events.replace(".", r"\.") + ".*", "format": "json"},
        ],
    )
    run_cli(["ingest", "--once", "--config", str(config)])

    customers = read_table(f"{s3_lake}/bronze/customers", local_stack)
    assert customers.num_rows == 300
    assert sorted(customers["id"].to_pylist()) == list(range(300))
    assert len(set(offsets_of(customers))) == 300
    meta = DeltaTable(f"{s3_lake}/bronze/customers", storage_options=local_stack.storage_options()).metadata()
    assert meta.configuration.get("delta.enableChangeDataFeed") == "true"  # silver reads the change feed
    events_table = read_table(f"{s3_lake}/bronze/events", local_stack)
    assert events_table.num_rows == 70
    assert sorted(set(events_table["_topic"].to_pylist())) == [events + "order", events + "payment"]

    report = json.loads(run_cli(["status", "--json", "--config", str(config)]).stdout)
    by_table = {r["table"]: r for r in report}
    assert by_table["customers"]["rows"] == 300 and by_table["events"]["rows"] == 70
    assert by_table["customers"]["lag"] == 0
    parts = {(p["topic"], p["partition"]): p for p in by_table["customers"]["partitions"]}
    assert len(parts) == 3 and sum(p["lake_offset"] for p in parts.values()) == 300

    rows = json.loads(
        run_cli(
            [
                "sql",
                "SELECT count(*) AS n, max(id) AS top FROM bronze.customers",
                "--format",
                "json",
                "--config",
                str(config),
            ]
        ).stdout
    )
    assert rows == [{"n": 300, "top": 299}]
    text = run_cli(
        [
            "sql",
            "SELECT event_id FROM bronze.events ORDER BY event_id LIMIT 2",
            "--format",
            "csv",
            "--config",
            str(config),
        ]
    ).stdout
    assert list(csv.reader(io.StringIO(text))) == [["event_id"], ["o0"], ["o1"]]

    # a second run finds nothing new and lands nothing twice
    run_cli(["ingest", "--once", "--config", str(config)])
    assert read_table(f"{s3_lake}/bronze/customers", local_stack).num_rows == 300


def test_local_directory_lake(local_stack: StackState, tmp_path: Path) -> None:
    topic = unique("local.t")
    make_topic(local_stack, topic, 2)
    send(local_stack, topic, [json.dumps({"n": i}).encode() for i in range(100)])
    lake = tmp_path / "lake"
    config = write_config(
        tmp_path / "c.yaml",
        local_stack,
        lake_uri=str(lake),
        tables=[{"name": "numbers", "topics": [topic], "format": "json"}],
    )
    run_cli(["ingest", "--once", "--config", str(config)])
    assert (lake / "bronze" / "numbers" / "_delta_log").is_dir()
    assert sorted(read_table(str(lake / "bronze" / "numbers"))["n"].to_pylist()) == list(range(100))
    rows = json.loads(
        run_cli(["sql", "SELECT sum(n) AS s FROM bronze.numbers", "--format", "json", "--config", str(config)]).stdout
    )
    assert rows == [{"s": sum(range(100))}]


def test_once_with_no_matching_topic_exits(local_stack: StackState, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        local_stack,
        lake_uri=str(tmp_path / "lake"),
        tables=[{"name": "nothing", "topic_pattern": unique(r"^no\.such\.") + ".*", "format": "json"}],
    )
    proc = run_cli(["ingest", "--once", "--config", str(config)], timeout=120)
    assert "landed 0 rows" in proc.stdout and "no_partitions_to_drain" in proc.stderr
