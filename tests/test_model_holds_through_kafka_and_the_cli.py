"""The reference model's delivery adversary against the real stack: the model's source history
as Debezium JSON on a 3-partition topic (null-key truncates on any partition, replayed ranges),
landed by `lakeport ingest --once` and applied by `lakeport silver` at arbitrary points; after
every run silver and history on S3 equal the model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from cdc_model import Change, current, deliver, source_history, versions
from helpers import make_topic, read_table, run_cli, send, unique, write_config

from lakeport.dev.stack import StackState

pytestmark = pytest.mark.stack
TEXT = ("name", "_version", "doc")  # the JSON converter without schemas: text and numbers


def envelope(ch: Change) -> bytes:
    row = None if ch.row is None else {"id": ch.row["id"], **{c: ch.row[c] for c in TEXT}}
    source = {
        "connector": "postgresql",
        "db": ch.db,
        "schema": "public",
        "table": "t",
        "lsn": ch.pos,
        "ts_ms": ch.ts_ms,
    }
    event = {"before": row if ch.op == "d" else None, "after": None if ch.op in ("d", "t") else row, "op": ch.op,
             "ts_ms": ch.ts_ms, "source": source}  # fmt: skip
    return json.dumps(event).encode()


@pytest.mark.parametrize("seed", [3, 17])
def test_silver_and_history_equal_the_model_through_kafka_and_the_cli(
    local_stack: StackState, s3_lake: str, tmp_path: Path, seed: int
) -> None:
    rnd = random.Random(seed)
    stream = deliver(rnd, source_history(rnd, steps=40), partitions=3, replays=3)
    topic = unique("model.public.t")
    make_topic(local_stack, topic, 3)
    table = {"name": "t", "topics": [topic], "format": "debezium-json", "key": ["id"], "history": True}
    config = str(write_config(tmp_path / "c.yaml", local_stack, lake_uri=s3_lake, tables=[table]))
    cuts = sorted(rnd.sample(range(1, len(stream)), 3))
    sent: list[Change] = []
    for first, last in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        for d in stream[first:last]:
            key = None if d.change.key is None else json.dumps({"id": d.change.key}).encode()
            send(local_stack, topic, [envelope(d.change)], keys=[key], partition=d.partition)
            sent.append(d.change)
        run_cli(["ingest", "--once", "--config", config])
        results = json.loads(run_cli(["silver", "--json", "--config", config]).stdout)
        assert [r["error"] for r in results] == [None, None]
        silver = {r["id"]: {c: r[c] for c in TEXT} for r in read_table(f"{s3_lake}/silver/t", local_stack).to_pylist()}
        assert silver == {k[1]: {c: v[c] for c in TEXT} for k, v in current(sent).items()}
        stored = read_table(f"{s3_lake}/silver/t_history", local_stack).to_pylist()
        chain = {(k[1], k[2]): (*v[:3], *v[-3:]) for k, v in versions(sent).items()}
        got = {(r["id"], r["_source_lsn"]): (*(r[c] for c in TEXT), r["valid_from"], r["valid_to"], r["is_current"])
               for r in stored}  # fmt: skip
        assert len(got) == len(stored) and got == chain
