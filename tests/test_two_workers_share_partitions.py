"""Two workers in one consumer group split the partitions and together land every message once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pyarrow.compute as pc
import pytest
from helpers import landed_rows, make_topic, read_table, start_worker, unique, wait_until, write_config

from lakeport.dev.kafka_tools import produce
from lakeport.dev.stack import StackState

pytestmark = [pytest.mark.stack, pytest.mark.slow]
MESSAGES = 30_000


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _assigned(path: Path) -> set[int]:
    latest: set[int] = set()
    for event in _events(path):
        if event.get("event") == "partitions_assigned":
            latest = {int(p.split("[")[1].split("]")[0]) for p in event["partitions"]}
        elif event.get("event") == "partitions_revoked":
            latest = set()
    return latest


def test_two_workers_split_and_land_once(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic = unique("pair.events")
    make_topic(local_stack, topic, 6)
    config = write_config(
        tmp_path / "c.yaml",
        local_stack,
        lake_uri=s3_lake,
        ingest={"flush_rows": 2000},
        tables=[{"name": "events", "topics": [topic], "format": "json"}],
        kafka_properties={"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"},
    )
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [start_worker(config, log, "--log-json") for log in logs]

    def split() -> bool:
        a, b = (_assigned(log) for log in logs)
        return bool(a and b and not a & b and a | b == set(range(6)))

    try:
        if not wait_until(split, timeout=90):
            pytest.fail(f"the group never split the partitions: {[_assigned(log) for log in logs]}")
        produce(
            {"bootstrap.servers": local_stack.kafka_bootstrap},
            ((topic, str(i).encode(), json.dumps({"n": i}).encode()) for i in range(MESSAGES)),
        )
        uri = f"{s3_lake}/bronze/events"
        wait_until(lambda: landed_rows(uri, local_stack) >= MESSAGES, timeout=90, interval=1)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=60) for w in workers]
    assert codes == [0, 0]  # SIGTERM drains and exits cleanly
    table = read_table(uri, local_stack)
    assert table.num_rows == MESSAGES
    assert sorted(table["n"].to_pylist()) == list(range(MESSAGES))
    keys = pc.binary_join_element_wise(table["_partition"].cast("string"), table["_offset"].cast("string"), "/")
    assert pc.count_distinct(keys).as_py() == MESSAGES
    landed = [sum(e["rows"] for e in _events(log) if e.get("event") == "batch_flushed") for log in logs]
    assert all(n > 0 for n in landed) and sum(landed) == MESSAGES
