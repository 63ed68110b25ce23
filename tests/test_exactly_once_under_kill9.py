"""kill -9 at random moments, restart, finish with --once: every message lands exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
from helpers import LAKEPORT, landed_rows, make_topic, read_table, start_worker, unique, wait_until, write_config

from lakeport.dev.kafka_tools import produce
from lakeport.dev.stack import StackState
from lakeport.dev.synthetic_events import bench_events

pytestmark = [pytest.mark.stack, pytest.mark.slow]
MESSAGES = 150_000
PARTITIONS = 6


def test_kill9_never_loses_or_duplicates(broker_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic = unique("kill.public.orders")
    make_topic(broker_stack, topic, PARTITIONS)
    produce({"bootstrap.servers": broker_stack.kafka_bootstrap}, ((topic, k, v) for k, v in bench_events(MESSAGES)))
    config = write_config(
        tmp_path / "lakeport.yaml",
        broker_stack,
        lake_uri=s3_lake,
        tables=[{"name": "orders", "topics": [topic], "format": "debezium-json", "key": ["id"]}],
        ingest={"flush_rows": 700, "flush_seconds": 0.5, "poll_messages": 700},
        kafka_properties={"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"},
    )
    uri = f"{s3_lake}/bronze/orders"
    rnd = random.Random(os.getpid())
    landed_at_kill = []
    for attempt, fraction in enumerate([0.1, 0.25, 0.4, 0.55, 0.7, 0.85]):
        proc = start_worker(config, tmp_path / f"worker-{attempt}.log")
        before = landed_at_kill[-1] if landed_at_kill else 0

        def past_mark(before: int = before, fraction: float = fraction) -> bool:
            now = landed_rows(uri, broker_stack)  # this worker is landing data and is past the mark
            return now > before and now >= fraction * MESSAGES

        wait_until(past_mark, timeout=90, interval=0.05)
        time.sleep(rnd.uniform(0.0, 0.6))  # somewhere inside the next decode/write/commit
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        landed_at_kill.append(landed_rows(uri, broker_stack))
    done = subprocess.run(
        [LAKEPORT, "ingest", "--once", "--config", str(config)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]

    table = read_table(uri, broker_stack)
    keys = pc.binary_join_element_wise(
        table["_topic"], table["_partition"].cast("string"), table["_offset"].cast("string"), "/"
    )
    assert table.num_rows == MESSAGES, f"landed {table.num_rows} (at kills: {landed_at_kill})"
    assert pc.count_distinct(keys).as_py() == MESSAGES
    print("landed at kills:", landed_at_kill)
    assert sum(0 < n < MESSAGES for n in landed_at_kill) >= 5, f"kills did not hit mid-ingest: {landed_at_kill}"
