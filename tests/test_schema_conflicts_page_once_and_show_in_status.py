"""A source type change that cannot land (text where the column is a number; a fraction in a
bigint column whose stored values a double would round) pages through the configured alerting,
once per table and kind of conflict, naming the column and both types, and ``lakeport status``
shows the table BLOCKED on a schema change with the count. The records wait in
``ops.dead_letters`` (stage ``schema``); the rest of the batch lands. On the real broker, through
the CLI, as an operator meets it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import WebhookReceiver, make_topic, read_table, run_cli, send, unique, write_config

from lakeport.dev.stack import StackState

pytestmark = [pytest.mark.stack]
BIG = 2**62 + 1  # a bigint no double holds


def test_schema_conflicts_page_once_per_kind_and_block_the_table_in_status(
    local_stack: StackState, tmp_path: Path
) -> None:
    topic = unique("conflicts.")
    make_topic(local_stack, topic, 1)
    lake = str(tmp_path / "lake")
    with WebhookReceiver() as hook:
        config = write_config(tmp_path / "lakeport.yaml", local_stack, lake_uri=lake,
                              tables=[{"name": "items", "topics": [topic], "format": "json"}],
                              ingest={"once_wait_seconds": 5},
                              extra={"alerts": {"notifiers": [{"type": "webhook", "url": hook.url}]}})  # fmt: skip
        send(local_stack, topic, [json.dumps({"id": i, "qty": i, "big": BIG}).encode() for i in range(3)])
        run_cli(["ingest", "--once", "--config", str(config)], timeout=120)
        send(local_stack, topic, [json.dumps(r).encode() for r in (
            {"id": 3, "qty": "00123"}, {"id": 4, "qty": "00124"},  # ALTER … TYPE text: never read as numbers
            {"id": 5, "big": 1.5},  # a fraction: a double would round the stored 2**62 + 1
            {"id": 6, "qty": 5, "big": 7.0},  # fits the columns exactly: lands
        )])  # fmt: skip
        run_cli(["ingest", "--once", "--config", str(config)], timeout=120)
        alerts = [b["lakeport"] for b in hook.bodies]
    assert sorted(read_table(f"{lake}/bronze/items")["id"].to_pylist()) == [0, 1, 2, 6]
    letters = read_table(f"{lake}/ops/dead_letters").to_pylist()
    assert sorted((r["_offset"], r["stage"]) for r in letters) == [(3, "schema"), (4, "schema"), (5, "schema")]
    assert len(alerts) == 2, alerts  # one per kind of conflict, not one per record
    text, rounding = sorted(alerts, key=lambda a: "would change stored values" in a["title"])
    assert text["table"] == "items" and "'qty'" in text["title"] and "int64" in text["title"], text
    assert "string" in text["title"] and text["rows"] == 2
    assert "big int64 -> double" in rounding["title"] and rounding["rows"] == 1, rounding
    assert "dead-letters replay --table items" in text["detail"]

    status = json.loads(run_cli(["status", "--config", str(config), "--json"]).stdout)
    (items,) = [s for s in status if s["table"] == "items"]
    assert items["schema_blocked"] == 3 and items["lag"] == 0
    shown = run_cli(["status", "--config", str(config)], env={"COLUMNS": "300"}).stdout
    assert "BLOCKED on a schema change: 3 records" in shown
