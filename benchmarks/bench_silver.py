"""``make bench`` (silver part): applying CDC changes to a silver table by MERGE.

(a) 1,000,000 change events (30% updates, 5% deletes, over 200,000 keys) applied in one run to a
silver table that holds a snapshot of those keys;
(b) one incremental run of 1,000 new events (new orders and updates of recent ones) on a
1,000,000-row silver table: seconds, and how many of its files the MERGE rewrote.
Bronze tables are written directly (no Kafka) on a local-directory lake.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lake.silver import apply_changes

ROOT = Path(__file__).resolve().parent.parent


def _events(
    count: int, keys: int, *, seed: int, first_offset: int = 0, lsn: int = 1000, ops: str = "mixed"
) -> pa.Table:
    rnd = random.Random(seed)
    cols: dict[str, list] = {
        k: []
        for k in (
            "_topic",
            "_partition",
            "_offset",
            "_op",
            "_source_lsn",
            "_source_ts_ms",
            "id",
            "customer_id",
            "status",
            "amount",
        )
    }
    for i in range(count):
        if ops == "snapshot":
            op, key = "r", i + 1
        else:
            roll = rnd.random()
            op = "d" if roll < 0.05 else ("u" if roll < 0.35 else "c")
            key = rnd.randint(1, keys)
        for name, value in (
            ("_topic", "orders"),
            ("_partition", key % 6),
            ("_offset", first_offset + i),
            ("_op", op),
            ("_source_lsn", lsn + i),
            ("_source_ts_ms", lsn + i),
            ("id", key),
            ("customer_id", rnd.randint(1, 100_000)),
            ("status", rnd.choice(["Approved", "Shipped"])),
            ("amount", rnd.randint(100, 99_999) / 100),
        ):
            cols[name].append(value)
    return pa.table(cols)


def _append(uri: str, table: pa.Table) -> None:
    write_deltalake(uri, table, mode="append", configuration={"delta.enableChangeDataFeed": "true"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lakeport-bench-silver-") as tmp:
        bronze, silver = f"{tmp}/bronze/orders", f"{tmp}/silver/orders"
        _append(bronze, _events(200_000, 0, seed=99, first_offset=-200_000, lsn=1, ops="snapshot"))
        apply_changes("orders", bronze, silver, key=["id"])  # the initial snapshot of 200k keys
        for part in range(10):
            _append(
                bronze,
                _events(
                    args.events // 10,
                    200_000,
                    seed=part,
                    first_offset=part * args.events // 10,
                    lsn=1000 + part * args.events // 10,
                ),
            )
        full = apply_changes("orders", bronze, silver, key=["id"])
        print(f"(a) {full.changes:,} events → {DeltaTable(silver).count():,} rows in {full.seconds:.1f}s", flush=True)

        bronze2, silver2 = f"{tmp}/bronze/big", f"{tmp}/silver/big"
        _append(bronze2, _events(1_000_000, 0, seed=1, ops="snapshot"))
        apply_changes("big", bronze2, silver2, key=["id"])
        files_before = len(DeltaTable(silver2).file_uris())
        rnd = random.Random(7)
        small = _events(1_000, 0, seed=9, first_offset=2_000_000, lsn=5_000_000, ops="snapshot").to_pylist()
        for row in small:  # half brand-new orders, half updates of the most recent ones
            row["id"] = 1_000_000 + row["id"] if rnd.random() < 0.5 else rnd.randint(995_000, 1_000_000)
            row["_op"] = "u"
        _append(bronze2, pa.Table.from_pylist(small))
        t0 = time.perf_counter()
        inc = apply_changes("big", bronze2, silver2, key=["id"])
        inc_s = time.perf_counter() - t0
        print(
            f"(b) 1,000 events on a 1,000,000-row table: {inc_s:.2f}s, rewrote {inc.files_rewritten} of "
            f"{files_before} files",
            flush=True,
        )
    results = {
        "silver_apply_events": full.changes,
        "silver_apply_seconds": round(full.seconds, 2),
        "silver_apply_events_per_s": round(full.changes / full.seconds),
        "silver_incremental_1k_seconds": round(inc_s, 2),
        "silver_incremental_files_rewritten": inc.files_rewritten,
        "silver_table_files": files_before,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
