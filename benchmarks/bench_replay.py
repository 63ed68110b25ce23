"""``make bench``: dead-letter replay speed. Lands N oversized JSON records (~440 B) as dead letters
(``max_message_bytes`` 100), then replays them with the limit raised, on a local-directory lake:
records/s from reading ``ops.dead_letters`` to the last bronze commit, and peak RSS. Into
``bench/results.json``."""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.landing import Lander
from lakeport.ingestion.records import Batch, RawBatch
from lakeport.ingestion.replay import read_letters, replay_table
from lakeport.ingestion.writer import DeltaWriter
from lakeport.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _settings(lake: str, max_bytes: int) -> Settings:
    return Settings(lake={"uri": lake}, tables=[{"name": "orders", "topics": ["events"], "format": "json"}],
                    ingest={"max_message_bytes": max_bytes})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory(prefix="lakeport-bench-replay-") as lake:
        values: list[bytes | None] = [json.dumps({"n": i, "status": "Shipped", "note": "x" * 400}).encode()
                                      for i in range(n)]  # fmt: skip
        raw = RawBatch(topic="events", partition=0, offsets=list(range(n)), timestamps_ms=[0] * n,
                       keys=[None] * n, values=values)  # fmt: skip
        batch = Batch(table="orders", format="json", parts=(raw,), ranges={("events", 0): (0, n - 1)}, raw_bytes=0)
        Lander(_settings(lake, 100), DeltaWriter({})).land(decode(batch, options=DecodeOptions("json", None, 100)))
        fixed = _settings(lake, 1 << 20)
        t0 = time.perf_counter()
        result = replay_table(fixed, "orders", read_letters(fixed, table="orders"))
        seconds = time.perf_counter() - t0
        assert result.landed == n
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results = {"replay_records": n, "replay_seconds": round(seconds, 2),
               "replay_records_per_s": round(n / seconds), "replay_peak_rss_mb": round(rss_mb)}  # fmt: skip
    print(f"replayed {n:,} dead letters in {seconds:.2f}s: {n / seconds:,.0f} records/s, peak RSS {rss_mb:.0f} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
