"""``make bench``: raw consume ceiling vs a naive loop vs ``lakeport ingest --once``, one run.

All three read the same 1,000,000 Debezium change events (~750 B, 6 partitions) from the same
broker; the naive loop and lakeport write Delta tables to the same local S3. Results go to
``bench/results.json`` and a table on stdout. Figures vary ±25 % with the machine's load; compare
the ratios measured in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition
from deltalake import DeltaTable, write_deltalake

from lakeport.dev import stack
from lakeport.dev.kafka_tools import create_topics, produce
from lakeport.dev.synthetic_events import bench_events

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "bench.public.orders"
PARTITIONS = 6


def _consumer(bootstrap: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{time.time_ns()}",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 5,
            "queued.max.messages.kbytes": 65536,
            "enable.partition.eof": False,
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    return consumer


def raw_consume(bootstrap: str, total: int) -> dict[str, float]:
    consumer = _consumer(bootstrap)
    seen = nbytes = 0
    start = time.perf_counter()
    while seen < total:
        for msg in consumer.consume(10000, 1.0):
            if msg.error() is None:
                seen += 1
                nbytes += len(msg.value())
    elapsed = time.perf_counter() - start
    consumer.close()
    return {"msgs_per_s": seen / elapsed, "mb_per_s": nbytes / elapsed / 1e6, "seconds": elapsed}


def naive(bootstrap: str, total: int, uri: str, storage: dict[str, str], *, flatten: bool = False) -> dict[str, float]:
    """What a data engineer would write first: consume, ``json.loads`` each, ``from_pylist``,
    ``write_deltalake`` every 50k — the change events land as they are (nested).

    ``flatten=True`` is a tuned variant, reported for reference: it picks the row image and two
    source fields into a flat dict before ``from_pylist``, which halves the Arrow conversion.
    """
    consumer = _consumer(bootstrap)
    seen = nbytes = 0
    rows: list[dict] = []
    start = time.perf_counter()
    while seen < total:
        for msg in consumer.consume(10000, 1.0):
            if msg.error() is not None:
                continue
            value = msg.value()
            seen += 1
            nbytes += len(value)
            event = json.loads(value)
            if flatten:
                image = event["before"] if event["op"] == "d" else event["after"]
                event = {**image, "_op": event["op"], "_source_lsn": event["source"]["lsn"]}
            event.update(_topic=msg.topic(), _partition=msg.partition(), _offset=msg.offset())
            rows.append(event)
            if len(rows) >= 50_000:
                write_deltalake(
                    uri, pa.Table.from_pylist(rows), mode="append", schema_mode="merge", storage_options=storage
                )
                rows = []
    if rows:
        write_deltalake(uri, pa.Table.from_pylist(rows), mode="append", schema_mode="merge", storage_options=storage)
    elapsed = time.perf_counter() - start
    consumer.close()
    landed = DeltaTable(uri, storage_options=storage).count()
    if landed != total:
        raise SystemExit(f"naive baseline landed {landed} rows, expected {total}")
    return {"msgs_per_s": seen / elapsed, "mb_per_s": nbytes / elapsed / 1e6, "seconds": elapsed}


def lakeport_once(state: stack.StackState, total: int, nbytes: int, workdir: Path) -> dict[str, float]:
    config = workdir / "lakeport.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": state.kafka_bootstrap, "group_id": "bench-lakeport"},
                "lake": {"uri": f"s3://{state.bucket}/bench-lakeport", "storage_options": state.storage_options()},
                "tables": [{"name": "orders", "topics": [TOPIC], "format": "debezium-json", "key": ["id"]}],
            }
        )
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = workdir / "lakeport-ingest.log"
    start = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "lakeport"), "ingest", "--once", "--config", str(config), "--log-json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        # Sample the RSS of the running process: ru_maxrss of children also counts the parent's
        # pages that a forked child shares before exec, which is not lakeport's memory.
        peak_rss = 0
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak_rss = max(peak_rss, watched.memory_info().rss)
            time.sleep(0.05)
    wall = time.perf_counter() - start
    text = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"lakeport ingest failed:\n{text[-3000:]}")
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    finished = next(e for e in events if e.get("event") == "ingest_finished")
    peak_rss_mb = peak_rss / 2**20
    rows = DeltaTable(
        f"s3://{state.bucket}/bench-lakeport/bronze/orders", storage_options=state.storage_options()
    ).count()
    if rows != total:
        raise SystemExit(f"lakeport landed {rows} rows, expected {total}")
    busy = finished["seconds_from_first_message"]
    return {
        "msgs_per_s": total / busy,
        "mb_per_s": nbytes / busy / 1e6,
        "seconds": busy,
        "wall_seconds": wall,
        "peak_rss_mb": peak_rss_mb,
        "commits": finished["commits"],
    }


def measure(broker: str, messages: int) -> dict[str, object]:
    """One run of the three contenders on a fresh local stack with ``broker`` (tansu | apache)."""
    with tempfile.TemporaryDirectory(prefix="lakeport-bench-") as tmp:
        home = Path(tmp)
        state = stack.up(home / "stack", kafka="apache" if broker == "apache" else "tansu", timeout=120)
        try:
            create_topics({"bootstrap.servers": state.kafka_bootstrap}, {TOPIC: PARTITIONS})
            events = list(bench_events(messages))
            nbytes = sum(len(v) for _, v in events)
            t0 = time.perf_counter()
            produce({"bootstrap.servers": state.kafka_bootstrap}, ((TOPIC, k, v) for k, v in events))
            produce_s = time.perf_counter() - t0
            del events
            print(f"[{broker}] produced {messages:,} events ({nbytes / messages:.0f} B avg) in {produce_s:.1f}s",
                  flush=True)  # fmt: skip
            raw = raw_consume(state.kafka_bootstrap, messages)
            print(f"[{broker}] raw consume     {raw['msgs_per_s']:>10,.0f} msg/s", flush=True)
            base = naive(state.kafka_bootstrap, messages, f"s3://{state.bucket}/bench-naive/orders",
                         state.storage_options())  # fmt: skip
            print(f"[{broker}] naive baseline  {base['msgs_per_s']:>10,.0f} msg/s", flush=True)
            flat = naive(state.kafka_bootstrap, messages, f"s3://{state.bucket}/bench-naive-flat/orders",
                         state.storage_options(), flatten=True)  # fmt: skip
            print(f"[{broker}] naive, flattened{flat['msgs_per_s']:>10,.0f} msg/s (reference)", flush=True)
            ours = lakeport_once(state, messages, nbytes, home)
            print(f"[{broker}] lakeport        {ours['msgs_per_s']:>10,.0f} msg/s", flush=True)
        finally:
            stack.down(home / "stack")
    return {
        "messages": messages,
        "partitions": PARTITIONS,
        "avg_message_bytes": round(nbytes / messages),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "raw_msgs_per_s": round(raw["msgs_per_s"]),
        "raw_mb_per_s": round(raw["mb_per_s"], 1),
        "naive_msgs_per_s": round(base["msgs_per_s"]),
        "naive_mb_per_s": round(base["mb_per_s"], 1),
        "naive_flattened_msgs_per_s": round(flat["msgs_per_s"]),
        "lakeport_msgs_per_s": round(ours["msgs_per_s"]),
        "lakeport_mb_per_s": round(ours["mb_per_s"], 1),
        "lakeport_wall_seconds_incl_startup": round(ours["wall_seconds"], 2),
        "lakeport_commits": ours["commits"],
        "lakeport_peak_rss_mb": round(ours["peak_rss_mb"]),
        "lakeport_vs_raw": round(ours["msgs_per_s"] / raw["msgs_per_s"], 3),
        "lakeport_vs_naive": round(ours["msgs_per_s"] / base["msgs_per_s"], 2),
        "lakeport_vs_naive_flattened": round(ours["msgs_per_s"] / flat["msgs_per_s"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--kafka", default="tansu",
                        help="tansu, apache, or tansu,apache: each in turn, in one run (Apache Kafka under "
                             "the key apache_kafka of the results)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args()
    brokers = [b.strip() for b in args.kafka.split(",") if b.strip()]
    if not brokers or set(brokers) - {"tansu", "apache"}:
        parser.error("--kafka takes tansu, apache or tansu,apache")
    results: dict[str, object] = {}
    for broker in brokers:
        measured = measure(broker, args.messages)
        if broker == "tansu":
            results.update(measured)
        else:
            results["apache_kafka"] = measured
        print(
            f"[{broker}] targets: lakeport >= 0.35 x raw ({measured['lakeport_vs_raw']}), >= 4 x naive "
            f"({measured['lakeport_vs_naive']}), peak RSS <= 600 MB ({measured['lakeport_peak_rss_mb']})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
