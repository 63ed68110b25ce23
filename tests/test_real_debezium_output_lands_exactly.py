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
PLACEHOLDERS = ("__debezium_unavailable_value", b"__debezium_unavailable_value")
KEYS = {"orders": ["id"], "customers": ["id"], "attachments": ["id"], "audits": ["id"]}


class _Recorded:
    """A recorded Kafka record as the client hands it over (only headers are asked for)."""

    def __init__(self, headers: list[list[str]]) -> None:
        self._headers = [(k, v.encode()) for k, v in headers]

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


def _replay(variant: str, lake: Path) -> tuple[dict[str, Any], Settings]:
    header, *records = [json.loads(line) for line in (FIXTURES / f"{variant}.jsonl").read_text().splitlines()]
    keys = {**KEYS, **{name: ["id"] for name in header["source"]}}  # the recorded tables (all keyed by id)
    tables: list[dict[str, Any]] = [
        {"name": t, "topics": [f"shop.public.{t}"], "format": "debezium-json", "key": k, "history": True}
        for t, k in keys.items()
    ]
    tables.append({"name": "domain_events", "topic_pattern": "^shop_events\\..*", "key": ["event_id"]})
    settings = Settings(lake={"uri": str(lake)}, tables=tables)
    lander = Lander(settings, DeltaWriter({}))
    known: dict[str, pa.Schema] = {}
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        runs.setdefault((record["topic"], record["partition"]), []).append(record)
    for (topic, partition), run in sorted(runs.items()):
        if settings.route(topic) is None:
            continue  # a topic no table subscribes to (transaction metadata, heartbeats): never read
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


def source_rows(state: dict[str, Any]) -> list[list[str]]:
    """The recorded source rows in today's canonical form: the fixtures hold jsonb as sorted-key JSON
    text, which reads back as the same value."""
    jsonb = [t == "jsonb" for _, t in state["columns"]]
    return sorted([canonical(v, "jsonb") if j and v != "\0" else v for v, j in zip(row, jsonb, strict=True)]
                  for row in state["rows"])  # fmt: skip


@pytest.mark.parametrize("variant", ["json-with-schemas", "json-without-schemas", "types"])
def test_silver_equals_the_source_for_what_debezium_really_sent(variant: str, tmp_path: Path) -> None:
    """``types``: a table of every type at its edges (numeric(41,2), 36-digit numeric(38,2),
    numeric(5,6), numeric(5,-2), numeric without precision, time, timetz, interval, bytea, uuid,
    jsonb, arrays, …), snapshot and streamed: each lands exactly and reconciles."""
    header, settings = _replay(variant, tmp_path / "lake")
    assert header["debezium"].startswith("3.")
    for name, state in header["source"].items():
        columns = state["columns"]
        lake = read_table(settings.lake.table_uri("silver", name)).to_pylist()
        got = sorted([canonical(row.get(c), t) for c, t in columns] for row in lake)
        assert got == source_rows(state), name


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


def test_transaction_metadata_and_heartbeats_change_nothing(tmp_path: Path) -> None:
    """With ``provide.transaction.metadata`` each change event carries a ``transaction`` block, and
    BEGIN/END records and heartbeats go to topics of their own: silver still equals the source."""
    header, settings = _replay("json-with-transaction-metadata", tmp_path / "lake")
    assert header["extra"]["provide.transaction.metadata"] == "true"
    for name, state in header["source"].items():
        lake = read_table(settings.lake.table_uri("silver", name)).to_pylist()
        assert sorted([canonical(row.get(c), t) for c, t in state["columns"]] for row in lake) == source_rows(state)


def test_a_table_subscribed_to_debeziums_control_topics_dead_letters_them_with_the_reason(tmp_path: Path) -> None:
    records = [
        json.loads(line) for line in (FIXTURES / "json-with-transaction-metadata.jsonl").read_text().splitlines()
    ]
    control = [r for r in records[1:] if r["topic"] in ("shop.transaction", "__debezium-heartbeat.shop")]
    assert {r["topic"] for r in control} == {"shop.transaction", "__debezium-heartbeat.shop"}
    n, topic = len(control), "shop.transaction"
    raw = RawBatch(topic=topic, partition=0, offsets=list(range(n)), timestamps_ms=[0] * n,
                   keys=[r["key"].encode() for r in control], values=[r["value"].encode() for r in control],
                   client_messages=[_Recorded([]) for _ in control])  # fmt: skip
    batch = Batch(table="everything", format="debezium-json", parts=(raw,), ranges={(topic, 0): (0, n - 1)},
                  raw_bytes=0)  # fmt: skip
    decoded = decode(batch, options=DecodeOptions("debezium-json", None, 10**7, "record"))
    assert decoded.rows.num_rows == 0
    reasons = [d.error for d in decoded.dead_letters]
    assert len(reasons) == len(control)
    assert {r.split(";")[0] for r in reasons} == {
        "not a change event: Debezium's a transaction-metadata record (BEGIN/END)",
        "not a change event: Debezium's a heartbeat",
    }


def test_control_records_without_schemas_are_named_too() -> None:
    from lakeport.ingestion.debezium import control_record

    begin = b'{"status":"BEGIN","id":"795:31148656","event_count":null,"data_collections":null,"ts_ms":1}'
    end = b'{"status":"END","id":"795:31148656","event_count":2,"data_collections":[],"ts_ms":1}'
    assert all("transaction-metadata" in (control_record(v) or "") for v in (begin, end))
    assert "heartbeat" in (control_record(b'{"ts_ms":1796196570271}') or "")
    change = b'{"before":null,"after":{"status":"END"},"op":"c","source":{},"ts_ms":1}'
    assert control_record(change) is None


def test_the_recorded_avro_is_confluents_wire_format_and_holds_the_source() -> None:
    """Debezium through Apicurio's Avro converter and the stack's registry (recorded with the
    schemas it registered): every record is Confluent's wire format, and replaying the change
    events gives the source's final state (for the formats work, which will land Avro)."""
    import base64
    import io

    import fastavro

    header, *records = [json.loads(line) for line in (FIXTURES / "avro.jsonl").read_text().splitlines()]
    schemas = {int(i): fastavro.parse_schema(json.loads(s)) for i, s in header["avro_schemas"].items()}

    def read(text: str) -> dict[str, Any]:
        raw = base64.b64decode(text)
        assert raw[0] == 0, "magic byte"
        return fastavro.schemaless_reader(io.BytesIO(raw[5:]), schemas[int.from_bytes(raw[1:5], "big")], None)  # type: ignore[return-value]

    state: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in header["source"]}
    for r in sorted(records, key=lambda r: (r["topic"], r["partition"], r["offset"])):
        if not r["topic"].startswith("shop.public.") or r["value"] is None:
            continue  # domain events (JSON), heartbeats, tombstones
        table, event = r["topic"].rsplit(".", 1)[1], read(r["value"])
        key, rows = read(r["key"]) if r["key"] else None, state[table]
        if event["op"] == "t":  # a truncate has no key
            rows.clear()
        elif event["op"] == "d" and key:
            rows.pop(key["id"], None)
        elif key:  # an unchanged TOASTed value is the placeholder: the previous value stays
            before = rows.get(key["id"], {})
            rows[key["id"]] = {c: before.get(c) if v in PLACEHOLDERS else v for c, v in event["after"].items()}
    for name in ("orders", "customers"):  # no primary-key change: the last image is the row
        columns = header["source"][name]["columns"]
        got = sorted([canonical(row[c], t) for c, t in columns] for row in state[name].values())
        assert got == source_rows(header["source"][name]), name
    for name in ("attachments", "audits"):
        assert sorted(state[name]) == sorted(int(row[0]) for row in header["source"][name]["rows"]), name
