"""Injected faults on the real stack. Each scenario ends the same way: every produced message is
in exactly one of its bronze table or ops.dead_letters, no (topic, partition, offset) twice.
Run them alone with `pytest -m faults`."""

from __future__ import annotations

import json
import random
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import (
    LAKEPORT,
    landed_rows,
    make_topic,
    read_table,
    run_cli,
    send,
    start_worker,
    unique,
    wait_until,
    write_config,
)

from lakeport.dev.processes import pause, resume
from lakeport.dev.stack import StackState

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.faults]


def assert_exactly_once(table_uri: str, stack: StackState, topic: str, produced: int, letters_uri: str) -> None:
    rows = read_table(table_uri, stack)
    positions = list(zip(rows["_partition"].to_pylist(), rows["_offset"].to_pylist(), strict=True))
    try:
        dead = [r for r in read_table(letters_uri, stack).to_pylist() if r["_topic"] == topic]
    except Exception:  # no dead letters table: nothing went there
        dead = []
    positions += [(r["_partition"], r["_offset"]) for r in dead]
    assert len(positions) == len(set(positions)), "a message landed twice"
    assert len(positions) == produced, f"{produced - len(positions)} messages missing"


def _config(tmp_path: Path, stack: StackState, lake: str, topic: str, **ingest: object) -> Path:
    settings = {"flush_rows": 2000, "flush_seconds": 0.5, "retry_backoff_seconds": 0.5, **ingest}
    config = write_config(tmp_path / "lakeport.yaml", stack, lake_uri=lake, ingest=settings,
                          tables=[{"name": "t", "topics": [topic], "format": "json"}],
                          kafka_properties={"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"})  # fmt: skip
    return config


def _events(start: int, stop: int) -> list[bytes]:
    return [json.dumps({"n": i, "order_id": i % 977, "status": "Shipped"}).encode() for i in range(start, stop)]


def _stop(worker: subprocess.Popen[bytes]) -> int:
    worker.send_signal(signal.SIGTERM)
    return worker.wait(timeout=120)


def test_broker_frozen_for_30s(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic = unique("fault.broker")
    make_topic(local_stack, topic, 3)
    uri = f"{s3_lake}/bronze/t"
    worker = start_worker(_config(tmp_path, local_stack, s3_lake, topic), tmp_path / "worker.log")
    broker = next(s for s in local_stack.services if s.name == "kafka")
    try:
        send(local_stack, topic, _events(0, 6000))
        assert wait_until(lambda: landed_rows(uri, local_stack) >= 6000, timeout=90)
        pause(broker)
        try:
            time.sleep(30)
            assert worker.poll() is None, "the worker must ride out a broker outage"
        finally:
            resume(broker)
        send(local_stack, topic, _events(6000, 12000))
        assert wait_until(lambda: landed_rows(uri, local_stack) >= 12000, timeout=180, interval=1)
    finally:
        assert _stop(worker) == 0
    assert_exactly_once(uri, local_stack, topic, 12000, f"{s3_lake}/ops/dead_letters")


def test_rebalance_storm_of_three_workers(apache_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    """On Apache Kafka: Tansu 0.6's group coordinator stops assigning partitions to new members after
    a few SIGKILLed ones (it waits for them), which is a bug of that broker, not of ingest."""
    local_stack = apache_stack
    topic = unique("fault.storm")
    make_topic(local_stack, topic, 6)
    config = _config(tmp_path, local_stack, s3_lake, topic)
    uri = f"{s3_lake}/bronze/t"
    rnd = random.Random(7)
    produced, stop = [0], threading.Event()

    def produce() -> None:
        while not stop.is_set():
            send(local_stack, topic, _events(produced[0], produced[0] + 1500))
            produced[0] += 1500
            time.sleep(1.0)

    producer = threading.Thread(target=produce, daemon=True)
    workers = [start_worker(config, tmp_path / f"w{i}.log") for i in range(3)]
    producer.start()
    kills = 0
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:  # every few seconds one worker dies (kill -9 or SIGTERM)
            time.sleep(rnd.uniform(3, 7))
            i = rnd.randrange(3)
            workers[i].send_signal(signal.SIGKILL if rnd.random() < 0.6 else signal.SIGTERM)
            workers[i].wait(timeout=120)
            kills += 1
            workers[i] = start_worker(config, tmp_path / f"w{i}-{kills}.log")
    finally:
        stop.set()
        producer.join(timeout=30)
    try:
        wait_until(lambda: landed_rows(uri, local_stack) >= produced[0], timeout=30, interval=2)
    finally:
        for w in workers:
            _stop(w)
    during = landed_rows(uri, local_stack)
    # Whatever is left is drained by one more worker, in the storm's own group.
    drain = config
    run_cli(["ingest", "--once", "-c", str(drain)], timeout=300)
    assert kills >= 20 and during >= produced[0] * 0.3, (kills, during, produced[0])
    assert_exactly_once(uri, local_stack, topic, produced[0], f"{s3_lake}/ops/dead_letters")
    print(f"rebalance storm: {produced[0]} messages, {kills} worker deaths, {during} landed during the storm")


def test_full_disk_is_a_clear_retried_error(local_stack: StackState, tmp_path: Path) -> None:
    """The lake on a local disk that is 'full' for the worker (RLIMIT_FSIZE: writes past 16 KiB
    fail with EFBIG): it logs the error, retries, moves no offset; when space returns, all lands."""
    topic = unique("fault.disk")
    make_topic(local_stack, topic, 1)
    lake = tmp_path / "lake"
    config = _config(tmp_path, local_stack, str(lake), topic, retry_timeout_seconds=600)
    log = tmp_path / "worker.log"

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, resource.RLIM_INFINITY))  # soft: raisable later

    send(local_stack, topic, _events(0, 20000))
    with log.open("w") as out:
        worker = subprocess.Popen([LAKEPORT, "ingest", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                  preexec_fn=small_disk)  # fmt: skip
    uri = str(lake / "bronze" / "t")
    try:
        assert wait_until(lambda: "File too large" in log.read_text(), timeout=90), log.read_text()[-3000:]
        time.sleep(3)
        assert worker.poll() is None, "a full disk is retried, not fatal"
        assert landed_rows(uri, local_stack) == 0
        resource.prlimit(worker.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert wait_until(lambda: landed_rows(uri, local_stack) >= 20000, timeout=240, interval=1)
    finally:
        assert _stop(worker) == 0
    assert_exactly_once(uri, local_stack, topic, 20000, str(lake / "ops" / "dead_letters"))


def test_maintenance_runs_during_ingest_and_silver_merges(
    local_stack: StackState, s3_lake: str, tmp_path: Path
) -> None:
    """Compaction, vacuum and checkpoints of bronze and silver, in a loop, while a worker appends
    CDC events and silver MERGEs them: nothing lost, nothing twice, silver = last change per key."""
    from deltalake import DeltaTable
    from helpers import debezium

    from lakeport.lake import maintenance
    from lakeport.lake.refresh import refresh_silver
    from lakeport.settings import load_settings

    topic = unique("fault.maint") + ".public.customers"
    make_topic(local_stack, topic, 3)
    tables = [{"name": "customers", "topics": [topic], "format": "debezium-json", "key": ["id"]}]
    config = write_config(tmp_path / "lakeport.yaml", local_stack, lake_uri=s3_lake, tables=tables,
                          ingest={"flush_rows": 300, "flush_seconds": 0.3})  # fmt: skip
    settings = load_settings(config)
    opts = settings.lake.to_object_store()
    worker = start_worker(config, tmp_path / "worker.log")
    stop, errors, rounds = threading.Event(), [], {"maintenance": 0, "silver": 0}
    expected: dict[int, str] = {}

    def maintain() -> None:
        while not stop.is_set():
            try:
                for layer in ("bronze", "silver"):
                    uri = settings.lake.table_uri(layer, "customers")
                    if not DeltaTable.is_deltatable(uri, storage_options=opts):
                        continue
                    maintenance.compact(uri, storage_options=opts)
                    maintenance.vacuum(uri, storage_options=opts, retention_hours=168)
                    maintenance.checkpoint(uri, storage_options=opts)
                rounds["maintenance"] += 1
            except Exception as exc:  # collected: the test fails on any
                errors.append(f"maintenance: {exc!r}")
            time.sleep(0.5)

    def merge() -> None:
        while not stop.is_set():
            try:
                refresh_silver(settings)
                rounds["silver"] += 1
            except Exception as exc:
                errors.append(f"silver: {exc!r}")
            time.sleep(0.3)

    threads = [threading.Thread(target=maintain, daemon=True), threading.Thread(target=merge, daemon=True)]
    for t in threads:
        t.start()
    produced, lsn = 0, 0
    try:
        for wave in range(12):  # creates and updates over 600 keys, a wave every ~1.5 s
            events, keys = [], []
            for i in range(500):
                key = (wave * 500 + i) % 600
                lsn += 1
                email = f"c{key}-v{wave}-{i}@example.com"
                events.append(debezium("c" if wave == 0 else "u", {"id": key, "email": email}, lsn=lsn))
                keys.append(str(key).encode())
                expected[key] = email
            send(local_stack, topic, events, keys=keys)
            produced += len(events)
            time.sleep(1.5)
        uri = settings.lake.table_uri("bronze", "customers")
        assert wait_until(lambda: landed_rows(uri, local_stack) >= produced, timeout=120, interval=1)
    finally:
        assert _stop(worker) == 0
        time.sleep(2)
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert errors == [], errors[:5]
    assert rounds["maintenance"] >= 3 and rounds["silver"] >= 5
    refresh_silver(settings)
    assert_exactly_once(settings.lake.table_uri("bronze", "customers"), local_stack, topic, produced,
                        f"{s3_lake}/ops/dead_letters")  # fmt: skip
    silver = {
        r["id"]: r["email"] for r in read_table(settings.lake.table_uri("silver", "customers"), local_stack).to_pylist()
    }
    assert silver == expected
