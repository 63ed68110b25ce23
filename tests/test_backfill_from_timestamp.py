"""`lakeport ingest --from-timestamp`: a fresh table starts each partition at the first record at
or after that time (a backfill/replay); partitions that already have offsets in the lake resume
from the Delta log as always."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer
from helpers import make_topic, read_table, run_cli, unique, write_config

from lakeport.dev.stack import StackState

pytestmark = pytest.mark.stack


def _produce(stack: StackState, topic: str, ids: range, when: datetime) -> None:
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "enable.idempotence": True})
    for i in ids:
        value = json.dumps({"id": i}).encode()
        producer.produce(topic, value, key=str(i).encode(), partition=0, timestamp=int(when.timestamp() * 1000))
    assert producer.flush(30) == 0


def test_backfill_starts_at_the_timestamp_then_resumes_from_the_lake(
    broker_stack: StackState, s3_lake: str, tmp_path: Path
) -> None:
    topic = unique("replay")
    make_topic(broker_stack, topic, 1)
    _produce(broker_stack, topic, range(0, 10), datetime(2026, 1, 1, tzinfo=UTC))
    _produce(broker_stack, topic, range(10, 25), datetime(2026, 6, 1, tzinfo=UTC))
    tables = [{"name": "replayed", "topics": [topic]}]
    config = write_config(tmp_path / "lakeport.yaml", broker_stack, lake_uri=s3_lake, tables=tables,
                          ingest={"once_wait_seconds": 5})  # fmt: skip
    run_cli(["ingest", "--once", "-c", str(config), "--from-timestamp", "2026-03-01T00:00:00Z"])
    landed = read_table(f"{s3_lake}/bronze/replayed", broker_stack)
    assert sorted(landed["_offset"].to_pylist()) == list(range(10, 25))
    assert sorted(landed["id"].to_pylist()) == list(range(10, 25))

    _produce(broker_stack, topic, range(25, 30), datetime(2026, 2, 1, tzinfo=UTC))  # older stamp, newer offset
    run_cli(["ingest", "--once", "-c", str(config), "--from-timestamp", "2026-03-01T00:00:00Z"])
    landed = read_table(f"{s3_lake}/bronze/replayed", broker_stack)
    assert sorted(landed["_offset"].to_pylist()) == list(range(10, 30))  # resumed from the Delta log


def test_a_bad_timestamp_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "lakeport.yaml", None, lake_uri=str(tmp_path / "lake"),
                          tables=[{"name": "t", "topics": ["t"]}])  # fmt: skip
    done = run_cli(["ingest", "--once", "-c", str(config), "--from-timestamp", "last tuesday"], check=False)
    assert done.returncode == 2 and "not an ISO time" in done.stderr
