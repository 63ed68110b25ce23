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
from helpers import LAKEPORT, make_topic, read_table, unique, write_config

from lakeport.kafka_tools import produce
from lakeport.stack import StackState
from lakeport.workload import bench_events

pytestmark = [pytest.mark.stack, pytest.mark.slow]
MESSAGES = 120_000
PARTITIONS = 6


def test_kill9_never_loses_or_duplicates(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic = unique("kill.public.orders")
    make_topic(local_stack, topic, PARTITIONS)
    produce({"bootstrap.servers": local_stack.kafka_bootstrap}, ((topic, k, v) for k, v in bench_events(MESSAGES)))
    config = write_config(
        tmp_path / "lakeport.yaml",
        local_stack,
        lake_uri=s3_lake,
        tables=[{"name": "orders", "topics": [topic], "format": "debezium-json", "key": ["id"]}],
        ingest={"flush_rows": 2500, "flush_seconds": 0.5},
        kafka_properties={"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"},
    )
    uri = f"{s3_lake}/bronze/orders"
    rnd = random.Random(os.getpid())
    landed_at_kill = []
    for attempt in range(6):
        log = (tmp_path / f"worker-{attempt}.log").open("w")
        proc = subprocess.Popen([LAKEPORT, "ingest", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
        time.sleep(rnd.uniform(3.0, 6.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()
        assert proc.returncode == -signal.SIGKILL
        try:
            landed_at_kill.append(read_table(uri, local_stack).num_rows)
        except Exception:
            landed_at_kill.append(0)
    print("landed at kills:", landed_at_kill)
    done = subprocess.run(
        [LAKEPORT, "ingest", "--once", "--config", str(config)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]

    table = read_table(uri, local_stack)
    keys = pc.binary_join_element_wise(
        table["_topic"], table["_partition"].cast("string"), table["_offset"].cast("string"), "/"
    )
    assert table.num_rows == MESSAGES, f"landed {table.num_rows} (at kills: {landed_at_kill})"
    assert pc.count_distinct(keys).as_py() == MESSAGES
    assert any(0 < n < MESSAGES for n in landed_at_kill), f"no kill hit mid-ingest: {landed_at_kill}"
