"""What only Apache Kafka can show (Tansu has no transactions and no DeleteRecords):

- ``--once`` drains a partition whose tail is transaction markers (a transactional producer's
  commits and an aborted transaction), lands exactly the committed records, and exits;
- a retention gap made with ``AdminClient.delete_records``: the records before the new start of
  the log are gone from Kafka before the lake had them; ``on_gap: fail`` (the default) stops and
  ``on_gap: skip`` reads on, and both record the gap in ``ops.retention_gaps`` and alert.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from helpers import make_topic, read_table, run_cli, send, unique, write_config

from lakeport.dev.stack import StackState

pytestmark = [pytest.mark.stack]


def _transactions(stack: StackState, topic: str) -> None:
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "transactional.id": unique("tx-")})
    producer.init_transactions(30)
    for batch in range(3):  # committed: 3 x 10 records, each followed by a commit marker
        producer.begin_transaction()
        for i in range(10):
            n = batch * 10 + i
            producer.produce(topic, json.dumps({"n": n}).encode(), key=str(n).encode(), partition=n % 2)
        producer.commit_transaction(30)
    producer.begin_transaction()  # aborted: its records are never read, the tail is its abort marker
    for n in range(100, 105):
        producer.produce(topic, json.dumps({"n": n}).encode(), partition=n % 2)
    producer.flush(30)
    producer.abort_transaction(30)


def test_once_drains_a_tail_of_transaction_markers(apache_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic = unique("tx.orders")
    make_topic(apache_stack, topic, 2)
    _transactions(apache_stack, topic)
    config = write_config(tmp_path / "lakeport.yaml", apache_stack, lake_uri=s3_lake,
                          tables=[{"name": "t", "topics": [topic]}], ingest={"once_wait_seconds": 5})  # fmt: skip
    run_cli(["ingest", "--once", "-c", str(config)], timeout=120)  # returns: the markers count as drained
    landed = read_table(f"{s3_lake}/bronze/t", apache_stack)
    assert sorted(landed["n"].to_pylist()) == list(range(30))  # committed ones, once; nothing aborted
    consumer = Consumer({"bootstrap.servers": apache_stack.kafka_bootstrap, "group.id": unique("probe-")})
    try:
        for partition in (0, 1):  # each partition's log goes on past its last landed record: markers
            high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            last = max(o for o, p in zip(landed["_offset"].to_pylist(), landed["_partition"].to_pylist(),
                                         strict=True) if p == partition)  # fmt: skip
            assert high > last + 1
    finally:
        consumer.close()


def _trimmed(stack: StackState, s3_lake: str, tmp_path: Path, **ingest: object) -> tuple[str, Path]:
    """A topic whose offsets 20..29 Kafka deleted (``DeleteRecords``) after the lake had 0..19."""
    topic = unique("trimmed.orders")
    make_topic(stack, topic, 1)
    send(stack, topic, [json.dumps({"n": n}).encode() for n in range(20)])
    tables = [{"name": "t", "topics": [topic]}]
    config = write_config(tmp_path / "lakeport.yaml", stack, lake_uri=s3_lake, tables=tables,
                          ingest={"once_wait_seconds": 5, **ingest})  # fmt: skip
    run_cli(["ingest", "--once", "-c", str(config)], timeout=120)
    send(stack, topic, [json.dumps({"n": n}).encode() for n in range(20, 40)])
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(topic, 0, 30)]).values():
        future.result(timeout=30)  # offsets 20..29 are gone before the lake had them
    return topic, config


def _gaps(stack: StackState, s3_lake: str, topic: str) -> list[tuple[object, ...]]:
    rows = read_table(f"{s3_lake}/ops/retention_gaps", stack).to_pylist()
    return [(r["partition"], r["first_offset"], r["last_offset"], r["records"], r["table_name"], r["policy"])
            for r in rows if r["topic"] == topic]  # fmt: skip


def test_a_retention_gap_stops_ingest_by_default_and_is_recorded_and_alerted(
    apache_stack: StackState, s3_lake: str, tmp_path: Path
) -> None:
    topic, config = _trimmed(apache_stack, s3_lake, tmp_path)
    for _ in range(2):  # found again on every run until an operator decides; recorded and paged once
        result = run_cli(["ingest", "--once", "-c", str(config)], timeout=120, check=False)
        assert result.returncode == 1 and "retention_gap" in result.stderr
        assert f"{topic}[0] offsets 20..29 (10 records)" in " ".join(result.stderr.split())
        assert sorted(read_table(f"{s3_lake}/bronze/t", apache_stack)["n"].to_pylist()) == list(range(20))
    assert _gaps(apache_stack, s3_lake, topic) == [(0, 20, 29, 10, "t", "fail")]
    alerts = [a for a in read_table(f"{s3_lake}/ops/alerts", apache_stack).to_pylist()
              if a["key"] == f"retention_gap:{topic}[0]:20"]  # fmt: skip
    assert [a["status"] for a in alerts] == ["firing"] and alerts[0]["rows"] == 10


def test_on_gap_skip_lands_from_the_log_start_and_keeps_the_gap_on_record(
    apache_stack: StackState, s3_lake: str, tmp_path: Path
) -> None:
    topic, config = _trimmed(apache_stack, s3_lake, tmp_path, on_gap="skip")
    result = run_cli(["ingest", "--once", "-c", str(config)], timeout=120)
    assert "skipped 10 records Kafka deleted before they landed" in " ".join(result.stdout.split())
    landed = sorted(read_table(f"{s3_lake}/bronze/t", apache_stack)["n"].to_pylist())
    assert landed == [*range(20), *range(30, 40)]  # what Kafka still had, nothing invented
    assert _gaps(apache_stack, s3_lake, topic) == [(0, 20, 29, 10, "t", "skip")]
    again = run_cli(["ingest", "--once", "-c", str(config)], timeout=120)  # past the gap now: nothing new
    assert "skipped" not in again.stdout and len(_gaps(apache_stack, s3_lake, topic)) == 1
