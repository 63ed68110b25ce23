"""Compaction: a bronze-like table of many small files, queried by DuckDB before and after.

1,000,000 order rows written as 500 appends of 2,000 rows (one small file each, as frequent
ingest flushes produce) to a local-directory lake; then ``lake.maintenance.compact``. Measured: the
files before and after, compaction throughput (bytes of the small files / seconds) and a DuckDB
aggregate over ``delta_scan`` (best of 3, warm) before and after. Results are merged into
``bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakeport.lake.maintenance import compact, table_files
from lakeport.lake.query import _extension

ROOT = Path(__file__).resolve().parent.parent
STATUSES = np.array(["Approved", "Processing", "Shipped", "InTransit", "Received", "Cancelled"])
CURRENCIES = np.array(["EUR", "USD", "GBP"])
QUERY = "SELECT status, count(*), sum(amount) FROM delta_scan({path}) GROUP BY 1 ORDER BY 1"


def _orders(first: int, rows: int, rnd: np.random.Generator) -> pa.Table:
    ids = np.arange(first, first + rows, dtype=np.int64)
    created = datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1_000_000 + ids * 1_000_000
    return pa.table(
        {
            "id": ids,
            "customer_id": rnd.integers(1, 200_000, rows, dtype=np.int64),
            "status": pa.array(STATUSES[rnd.integers(0, len(STATUSES), rows)]),
            "amount": np.round(rnd.uniform(1, 2_000, rows), 2),
            "currency": pa.array(CURRENCIES[rnd.integers(0, len(CURRENCIES), rows)]),
            "items": rnd.integers(1, 12, rows, dtype=np.int32),
            "created_at": pa.array(created.astype(np.int64), pa.timestamp("us", tz="UTC")),
            "_topic": pa.array(["shop.public.orders"] * rows),
            "_partition": (ids % 6).astype(np.int32),
            "_offset": ids // 6,
        }
    )


def _query_seconds(path: str, runs: int = 3) -> tuple[float, list[tuple[Any, ...]]]:
    con = duckdb.connect()
    con.execute(f"LOAD '{_extension('duckdb_extension_delta')}'")
    sql = QUERY.format(path="'" + path.replace("'", "''") + "'")
    best, rows = float("inf"), []
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = con.execute(sql).fetchall()
        best = min(best, time.perf_counter() - t0)
    con.close()
    return best, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--rows-per-file", type=int, default=2_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args()
    rnd = np.random.default_rng(42)
    with tempfile.TemporaryDirectory(prefix="lakeport-bench-compaction-") as tmp:
        uri = f"{tmp}/bronze/orders"
        write_deltalake(uri, _orders(0, args.rows_per_file, rnd), mode="append")
        table = DeltaTable(uri)
        t0 = time.perf_counter()
        for i in range(1, args.files):
            write_deltalake(table, _orders(i * args.rows_per_file, args.rows_per_file, rnd), mode="append")
        files, size = table_files(uri)
        print(f"wrote {table.count():,} rows in {files} files ({size / 1e6:.1f} MB) in "
              f"{time.perf_counter() - t0:.1f}s", flush=True)  # fmt: skip
        before_s, before_rows = _query_seconds(uri)
        result = compact(uri)
        after_s, after_rows = _query_seconds(uri)
        rounded = [[(s, n, round(float(a), 2)) for s, n, a in rows] for rows in (before_rows, after_rows)]
        assert rounded[0] == rounded[1], "compaction changed the query result"  # float sums: any order
        assert DeltaTable(uri).count() == args.files * args.rows_per_file
    mb_per_s = result.bytes_before / result.seconds / 1e6
    results = {
        "compaction_rows": args.files * args.rows_per_file,
        "compaction_files_before": result.files_before,
        "compaction_files_after": result.files_after,
        "compaction_mb_before": round(result.bytes_before / 1e6, 1),
        "compaction_mb_after": round(result.bytes_after / 1e6, 1),
        "compaction_seconds": round(result.seconds, 2),
        "compaction_mb_per_s": round(mb_per_s, 1),
        "query_before_seconds": round(before_s, 4),
        "query_after_seconds": round(after_s, 4),
        "query_speedup": round(before_s / after_s, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    print(f"{'':24}{'before':>12}{'after':>12}")
    print(f"{'files':24}{result.files_before:>12,}{result.files_after:>12,}")
    print(f"{'MB':24}{result.bytes_before / 1e6:>12.1f}{result.bytes_after / 1e6:>12.1f}")
    print(f"{'DuckDB GROUP BY (s)':24}{before_s:>12.4f}{after_s:>12.4f}   speedup x{before_s / after_s:.1f}")
    print(f"compaction: {result.seconds:.2f}s, {mb_per_s:.1f} MB/s of small files read", flush=True)


if __name__ == "__main__":
    main()
