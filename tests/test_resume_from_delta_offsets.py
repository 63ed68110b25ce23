"""Positions come from the Delta log, never from Kafka's committed offsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from helpers import make_topic, read_table, run_cli, send, unique, write_config

from lakeport.dev.stack import StackState

pytestmark = pytest.mark.stack


def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    consumer.close()


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    got = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    consumer.close()
    return {tp.partition: tp.offset for tp in got}


def test_kafka_offsets_are_ignored_delta_offsets_win(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic, group = unique("resume.t"), unique("resume-g")
    make_topic(local_stack, topic, 2)
    send(local_stack, topic, [json.dumps({"n": i}).encode() for i in range(200)])
    _commit(local_stack.kafka_bootstrap, group, topic, {0: 10**6, 1: 10**6})  # Kafka says "all done" — wrong
    config = write_config(
        tmp_path / "c.yaml",
        local_stack,
        lake_uri=s3_lake,
        group=group,
        tables=[{"name": "t", "topics": [topic], "format": "json"}],
    )
    run_cli(["ingest", "--once", "--config", str(config)])
    assert read_table(f"{s3_lake}/bronze/t", local_stack).num_rows == 200
    committed = _committed(local_stack.kafka_bootstrap, group, topic, 2)
    assert sum(committed.values()) == 200  # committed after the Delta commit, for lag tools

    _commit(local_stack.kafka_bootstrap, group, topic, {0: 0, 1: 0})  # Kafka says "start over" — also wrong
    send(local_stack, topic, [json.dumps({"n": i}).encode() for i in range(200, 250)])
    run_cli(["ingest", "--once", "--config", str(config)])
    table = read_table(f"{s3_lake}/bronze/t", local_stack)
    assert sorted(table["n"].to_pylist()) == list(range(250))
