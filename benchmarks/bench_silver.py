"""``make bench`` (silver part): applying CDC changes to silver, its speed and its memory.

(a) 1,000,000 change events (30% updates, 5% deletes, over 200,000 keys), landed as 10 bronze
    versions, applied in one ``apply_changes`` to a silver table that holds a snapshot of those
    keys: events/s, and the peak RSS of the process that applied them.
(b) a backlog of 10,000,000 snapshot events (100 bronze versions of 100,000, as ingest lands
    them) applied by one run: peak RSS (the memory bound whatever the backlog), then one
    incremental run of 1,000 events (new rows and updates of recent ones) on the resulting
    10,000,000-row table: seconds, and how many of its files the MERGE rewrote.
Each apply runs in a child process, so its peak RSS is its own. Bronze tables are written directly
(no Kafka) on a local-directory lake. ``--large-events`` sets (b)'s size (``make bench`` uses
10M; a quick run can pass less).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

ROOT = Path(__file__).resolve().parent.parent


def events(count: int, keys: int, *, seed: int, first_offset: int = 0, lsn: int = 1000, ops: str = "mixed") -> pa.Table:
    rnd = np.random.default_rng(seed)
    if ops == "snapshot":
        op = np.full(count, "r", dtype=object)
        key = np.arange(1, count + 1, dtype=np.int64)
    else:
        roll = rnd.random(count)
        op = np.where(roll < 0.05, "d", np.where(roll < 0.35, "u", "c")).astype(object)
        key = rnd.integers(1, keys + 1, count, dtype=np.int64)
    position = np.arange(lsn, lsn + count, dtype=np.int64)
    return pa.table(
        {
            "_topic": pa.array(["orders"] * count),
            "_partition": pa.array((key % 6).astype(np.int32)),
            "_offset": pa.array(np.arange(first_offset, first_offset + count, dtype=np.int64)),
            "_op": pa.array(op, pa.string()),
            "_source_lsn": pa.array(position),
            "_source_ts_ms": pa.array(position),
            "id": pa.array(key),
            "customer_id": pa.array(rnd.integers(1, 100_000, count, dtype=np.int64)),
            "status": pa.array(np.where(rnd.random(count) < 0.5, "Approved", "Shipped").astype(object), pa.string()),
            "amount": pa.array(rnd.integers(100, 99_999, count) / 100),
        }
    )


def _append(uri: str, table: pa.Table) -> None:
    write_deltalake(uri, table, mode="append", configuration={"delta.enableChangeDataFeed": "true"})


def _apply_in_child(bronze: str, silver: str) -> dict[str, float]:
    """``apply_changes`` in a fresh process: its result and its peak RSS in MB."""
    code = (
        "import json, resource, sys\n"
        "from lakeport.settings.runtime import tune_memory\n"
        "tune_memory()  # as the CLI does\n"
        "from lakeport.lake.silver import apply_changes\n"
        "r = apply_changes('orders', sys.argv[1], sys.argv[2], key=['id'])\n"
        "print(json.dumps({'changes': r.changes, 'seconds': r.seconds, 'chunks': r.chunks,"
        " 'files_rewritten': r.files_rewritten,"
        " 'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, bronze, silver], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--large-events", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lakeport-bench-silver-") as tmp:
        bronze, silver = f"{tmp}/bronze/orders", f"{tmp}/silver/orders"
        _append(bronze, events(200_000, 0, seed=99, first_offset=-200_000, lsn=1, ops="snapshot"))
        _apply_in_child(bronze, silver)  # the initial snapshot of 200k keys
        step = args.events // 10
        for part in range(10):
            _append(bronze, events(step, 200_000, seed=part, first_offset=part * step, lsn=1000 + part * step))
        full = _apply_in_child(bronze, silver)
        rows = DeltaTable(silver).count()
        print(f"(a) {full['changes']:,} events → {rows:,} rows in {full['seconds']:.1f}s, "
              f"peak RSS {full['rss_mb']:.0f} MB, {full['chunks']} commits", flush=True)  # fmt: skip

        bronze2, silver2 = f"{tmp}/bronze/big", f"{tmp}/silver/big"
        step = 100_000
        for first in range(0, args.large_events, step):
            part = events(min(step, args.large_events - first), 0, seed=first, ops="snapshot")
            _append(bronze2, part.set_column(6, "id", pa.array(np.arange(first + 1, first + part.num_rows + 1))))
        large = _apply_in_child(bronze2, silver2)
        print(f"(b) backlog of {large['changes']:,} events: {large['seconds']:.1f}s, "
              f"peak RSS {large['rss_mb']:.0f} MB, {large['chunks']} commits", flush=True)  # fmt: skip
        files_before = len(DeltaTable(silver2).file_uris())
        rnd = np.random.default_rng(7)
        small = events(1_000, 0, seed=9, first_offset=args.large_events, lsn=50_000_000, ops="snapshot")
        fresh = rnd.random(1_000) < 0.5  # half brand-new orders, half updates of the most recent ones
        ids = np.where(
            fresh,
            args.large_events + np.arange(1, 1_001),
            rnd.integers(args.large_events - 5_000, args.large_events + 1, 1_000),
        )
        small = small.set_column(6, "id", pa.array(ids.astype(np.int64))).set_column(3, "_op", pa.array(["u"] * 1_000))
        _append(bronze2, small)
        t0 = time.perf_counter()
        inc = _apply_in_child(bronze2, silver2)
        inc_s = time.perf_counter() - t0
        print(f"(c) 1,000 events on a {args.large_events:,}-row table: {inc['seconds']:.2f}s "
              f"({inc_s:.2f}s with process start), rewrote {inc['files_rewritten']} of {files_before} files",
              flush=True)  # fmt: skip
    results = {
        "silver_apply_events": full["changes"],
        "silver_apply_seconds": round(full["seconds"], 2),
        "silver_apply_events_per_s": round(full["changes"] / full["seconds"]),
        "silver_backlog_1m_peak_rss_mb": round(full["rss_mb"]),
        f"silver_backlog_{args.large_events // 1_000_000}m_peak_rss_mb": round(large["rss_mb"]),
        f"silver_backlog_{args.large_events // 1_000_000}m_seconds": round(large["seconds"], 1),
        f"silver_incremental_1k_seconds_on_{args.large_events // 1_000_000}m": round(inc["seconds"], 2),
        "silver_incremental_files_rewritten": inc["files_rewritten"],
        "silver_table_files": files_before,
        "silver_bench_peak_rss_mb_self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
