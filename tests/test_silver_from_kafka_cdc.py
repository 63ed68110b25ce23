"""CDC events through Kafka → bronze → `lakeport silver` → silver holds exactly the current rows,
queryable as silver.<table>."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import debezium, make_topic, run_cli, send, unique, write_config

from lakeport.dev.stack import StackState

pytestmark = pytest.mark.stack


def test_silver_equals_the_replayed_source(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic = unique("silver.public.customers")
    make_topic(local_stack, topic, 2)
    state: dict[int, str] = {}
    events, keys, lsn = [], [], 1000
    for i in range(200):
        lsn += 1
        events.append(debezium("r", {"id": i, "email": f"{i}@old.io"}, lsn=lsn))
        keys.append(json.dumps({"id": i}).encode())
        state[i] = f"{i}@old.io"
    for i in range(0, 200, 3):
        lsn += 1
        events.append(debezium("u", {"id": i, "email": f"{i}@new.io"}, before={"id": i}, lsn=lsn))
        keys.append(json.dumps({"id": i}).encode())
        state[i] = f"{i}@new.io"
    for i in range(0, 200, 10):
        lsn += 1
        events.append(debezium("d", None, before={"id": i}, lsn=lsn))
        keys.append(json.dumps({"id": i}).encode())
        state.pop(i)
    send(local_stack, topic, events, keys=keys)
    config = write_config(
        tmp_path / "c.yaml",
        local_stack,
        lake_uri=s3_lake,
        tables=[{"name": "customers", "topics": [topic], "format": "debezium-json", "key": ["id"], "history": True}],
    )
    run_cli(["ingest", "--once", "--config", str(config)])
    result, history = json.loads(run_cli(["silver", "--json", "--config", str(config)]).stdout)
    assert result["changes"] == len(events) and result["keys"] == 200
    assert history["kind"] == "history" and history["versions_opened"] == 200 + len(range(0, 200, 3))
    rows = json.loads(
        run_cli(
            ["sql", "SELECT id, email FROM silver.customers ORDER BY id", "--format", "json", "--config", str(config)]
        ).stdout
    )
    assert {r["id"]: r["email"] for r in rows} == state
    again, _ = json.loads(run_cli(["silver", "--json", "--config", str(config)]).stdout)
    assert again["version"] is None and again["changes"] == 0
    # history: exactly one current version per live key, and it matches silver
    current = json.loads(
        run_cli(
            [
                "sql",
                "SELECT id, email FROM silver.customers_history WHERE is_current",
                "--format",
                "json",
                "--config",
                str(config),
            ]
        ).stdout
    )
    assert {r["id"]: r["email"] for r in current} == state and len(current) == len(state)
