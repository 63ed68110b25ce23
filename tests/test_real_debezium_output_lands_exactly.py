"""What the real Debezium 3 PostgreSQL connector sent (recorded by
``scripts/record_debezium_fixtures.py`` under ``tests/fixtures/debezium/``, with the JSON converter
with and without schemas) lands in silver equal to the source's final state, value for value:
unchanged TOASTed text, bytea and jsonb, a primary-key change of a row with TOASTed values, a
truncate, a table with REPLICA IDENTITY FULL, and the outbox router's events. No JVM needed: the
recorded records go through the real decode, landing and silver code on a local-directory lake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from helpers import ROOT, read_table

from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.landing import Lander
from lakeport.ingestion.records import Batch, RawBatch
from lakeport.ingestion.writer import DeltaWriter
from lakeport.lake.reconcile import canonical
from lakeport.lake.refresh import failed, refresh_silver
from lakeport.settings import Settings

FIXTURES = ROOT / "tests" / "fixtures" / "debezium"
KEYS = {"orders": ["id"], "customers": ["id"], "attachments": ["id"], "audits": ["id"]}


class _Recorded:
    """A recorded Kafka record as the client hands it over (only headers are asked for)."""

    def __init__(self, headers: list[list[str]]) -> None:
        self._headers = [(k, v.encode()) for k, v in headers]

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


def _replay(variant: str, lake: Path) -> tuple[dict[str, Any], Settings]:
    header, *records = [json.loads(line) for line in (FIXTURES / f"{variant}.jsonl").read_text().splitlines()]
    tables: list[dict[str, Any]] = [
        {"name": t, "topics": [f"shop.public.{t}"], "format": "debezium-json", "key": k, "history": True}
        for t, k in KEYS.items()
    ]
    tables.append({"name": "domain_events", "topic_pattern": "^shop_events\\..*", "key": ["event_id"]})
    settings = Settings(lake={"uri": str(lake)}, tables=tables)
    lander = Lander(settings, DeltaWriter({}))
    known: dict[str, pa.Schema] = {}
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        runs.setdefault((record["topic"], record["partition"]), []).append(record)
    for (topic, partition), run in sorted(runs.items()):
        for start in range(0, len(run), 7):  # several batches per partition, as the worker lands them
            part = run[start : start + 7]
            raw = RawBatch(
                topic=topic, partition=partition, offsets=[r["offset"] for r in part], timestamps_ms=[0] * len(part),
                keys=[r["key"].encode() if r["key"] else None for r in part],
                values=[None if r["value"] is None else r["value"].encode() for r in part],
                client_messages=[_Recorded(r["headers"]) for r in part],
            )  # fmt: skip
            table = settings.route(topic)
            assert table is not None
            batch = Batch(table=table.name, format=table.format, parts=(raw,),
                          ranges={(topic, partition): (raw.offsets[0], raw.offsets[-1])}, raw_bytes=0)  # fmt: skip
            decoded = decode(batch, options=DecodeOptions(table.format, known.get(table.name), 10**7, "record"))
            assert not decoded.dead_letters, [d.error for d in decoded.dead_letters]
            lander.land(decoded)
            handle = lander.writer.open(settings.lake.table_uri("bronze", table.name))
            assert handle is not None
            known[table.name] = pa.schema(handle.schema().to_arrow())
    assert not failed(refresh_silver(settings))
    return header, settings


@pytest.mark.parametrize("variant", ["json-with-schemas", "json-without-schemas"])
def test_silver_equals_the_source_for_what_debezium_really_sent(variant: str, tmp_path: Path) -> None:
    header, settings = _replay(variant, tmp_path / "lake")
    assert header["debezium"].startswith("3.")
    for name, state in header["source"].items():
        columns = state["columns"]
        lake = read_table(settings.lake.table_uri("silver", name)).to_pylist()
        got = sorted([canonical(row.get(c), t) for c, t in columns] for row in lake)
        assert got == state["rows"], name


def test_history_keeps_one_current_version_per_live_key(tmp_path: Path) -> None:
    header, settings = _replay("json-with-schemas", tmp_path / "lake")
    for name, key in KEYS.items():
        history = read_table(settings.lake.table_uri("silver", f"{name}_history")).to_pylist()
        current = sorted(tuple(r[k] for k in key) for r in history if r["is_current"])
        live = sorted(tuple(int(v) for v in row[: len(key)]) for row in header["source"][name]["rows"])
        assert current == live, name
    moved = [r for r in read_table(settings.lake.table_uri("silver", "attachments_history")).to_pylist()
             if r["id"] == 1005]  # fmt: skip
    assert moved and all(r["note"] and r["body"] and r["meta"] for r in moved)  # the old key's TOASTed values


def test_the_outbox_routers_events_land_once_each(tmp_path: Path) -> None:
    _, settings = _replay("json-without-schemas", tmp_path / "lake")
    events = read_table(settings.lake.table_uri("silver", "domain_events")).to_pylist()
    ids = [e["event_id"] for e in events]
    assert ids and len(ids) == len(set(ids))
    assert {e["event_type"] for e in events} >= {"OrderPlaced"}
