"""S3 down for 30 s mid-ingest (SeaweedFS stopped, then started again over the same data): the
worker waits and retries, no Kafka offset moves past what landed, and after S3 returns every
message lands exactly once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
from confluent_kafka import Consumer, TopicPartition
from helpers import landed_rows, make_topic, read_table, send, start_worker, unique, wait_until, write_config

from lakeport.dev.stack import StackState, start_s3, stop_s3

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.faults]


def _committed(state: StackState, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": state.kafka_bootstrap, "group.id": group})
    try:
        return sum(
            max(tp.offset, 0) for tp in consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
        )
    finally:
        consumer.close()


def _landed_once_s3_answers(uri: str, state: StackState) -> int:
    """The test's own polling read: SeaweedFS may answer 500 for a moment after it restarts."""
    try:
        return landed_rows(uri, state)
    except OSError:
        return 0


def test_s3_outage_is_retried_and_loses_nothing(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic = unique("outage.t")
    make_topic(local_stack, topic, 3)
    config = write_config(
        tmp_path / "c.yaml",
        local_stack,
        lake_uri=s3_lake,
        ingest={"flush_rows": 1000, "flush_seconds": 0.5, "retry_backoff_seconds": 0.5},
        tables=[{"name": "t", "topics": [topic], "format": "json"}],
    )
    raw = json.loads(config.read_text())
    raw["lake"]["storage_options"].update({"timeout": "3s", "connect_timeout": "2s"})
    config.write_text(json.dumps(raw))
    uri = f"{s3_lake}/bronze/t"
    log = tmp_path / "worker.log"
    worker = start_worker(config, log, "--log-json")
    home = Path(local_stack.home)
    try:
        send(local_stack, topic, [json.dumps({"n": i}).encode() for i in range(5000)])
        wait_until(lambda: landed_rows(uri, local_stack) >= 5000, timeout=60)
        assert landed_rows(uri, local_stack) == 5000
        stop_s3(home)
        try:
            send(local_stack, topic, [json.dumps({"n": i}).encode() for i in range(5000, 10000)])
            time.sleep(30)  # the worker keeps consuming; its Delta commit cannot finish
            assert worker.poll() is None, "the worker must not give up on a short outage"
            assert _committed(local_stack, raw["kafka"]["group_id"], topic) == 5000  # no offset moved
        finally:
            start_s3(home)
        wait_until(lambda: _landed_once_s3_answers(uri, local_stack) >= 10000, timeout=120, interval=1)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=120)
    assert code == 0
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert not any(e.get("level") == "error" for e in events)
    table = read_table(uri, local_stack)
    assert sorted(table["n"].to_pylist()) == list(range(10000))
    keys = pc.binary_join_element_wise(table["_partition"].cast("string"), table["_offset"].cast("string"), "/")
    assert pc.count_distinct(keys).as_py() == 10000
