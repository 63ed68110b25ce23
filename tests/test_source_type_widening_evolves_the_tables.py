"""A source column changed to a wider type (``ALTER … TYPE bigint``/``double precision``, a
``numeric`` with more digits, a ``date`` becoming a ``timestamp``) evolves bronze, silver and
history to the wider type: no change goes to dead letters, older values are kept exactly, the
Kafka offsets and silver's watermarks survive the rewrite, and silver does not apply the
rewritten rows again."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from helpers import read_table

from lakeport.ingestion import offsets
from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.landing import Lander
from lakeport.ingestion.records import Batch, RawBatch
from lakeport.ingestion.writer import DeltaWriter
from lakeport.lake.refresh import failed, refresh_silver
from lakeport.settings import Settings

TOPIC = "shop.public.items"


def _dec(precision: int, scale: int) -> dict[str, Any]:
    return {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": str(scale), "connect.decimal.precision": str(precision)}}  # fmt: skip


BEFORE = {"qty": {"type": "int32", "optional": True}, "amount": _dec(12, 2),
          "day": {"type": "int32", "optional": True, "name": "io.debezium.time.Date"}}  # fmt: skip
AFTER = {"qty": {"type": "double", "optional": True}, "amount": _dec(18, 4),
         "day": {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp"}}  # fmt: skip


def _unscaled(value: int) -> str:
    return base64.b64encode(value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)).decode()


def _event(types: dict[str, Any], op: str, row: dict[str, Any], lsn: int) -> bytes:
    fields = [{"type": "int32", "optional": False, "field": "id"}, *({**t, "field": n} for n, t in types.items())]
    image = {"type": "struct", "optional": True, "name": "shop.public.items.Value", "fields": fields}
    schema = {"type": "struct", "name": "shop.public.items.Envelope", "fields": [
        {**image, "field": "before"}, {**image, "field": "after"},
        {"type": "struct", "field": "source",
         "fields": [{"type": "int64", "field": "lsn"}, {"type": "int64", "field": "ts_ms"}]},
        {"type": "string", "field": "op"}]}  # fmt: skip
    payload = {"before": None, "after": row, "source": {"lsn": lsn, "ts_ms": lsn}, "op": op}
    return json.dumps({"schema": schema, "payload": payload}).encode()


def _land(settings: Settings, values: list[bytes], first: int) -> None:
    n = len(values)
    raw = RawBatch(topic=TOPIC, partition=0, offsets=list(range(first, first + n)), timestamps_ms=[0] * n,
                   keys=[json.dumps({"id": i}).encode() for i in range(n)], values=list(values))  # fmt: skip
    batch = Batch(table="items", format="debezium-json", parts=(raw,), ranges={(TOPIC, 0): (first, first + n - 1)})
    writer = DeltaWriter({})
    table = writer.open(settings.lake.table_uri("bronze", "items"))
    known = pa.schema(table.schema().to_arrow()) if table is not None else None  # type: ignore[arg-type]
    decoded = decode(batch, options=DecodeOptions("debezium-json", known))
    assert decoded.dead_letters == (), [d.error for d in decoded.dead_letters]
    Lander(settings, writer).land(decoded)


def test_a_wider_source_type_evolves_bronze_silver_and_history(tmp_path: Path) -> None:
    settings = Settings(lake={"uri": str(tmp_path)}, tables=[
        {"name": "items", "topics": [TOPIC], "format": "debezium-json", "key": ["id"], "history": True}])  # fmt: skip
    _land(settings, [_event(BEFORE, "c", {"id": i, "qty": i, "amount": _unscaled(i * 125), "day": 20_000 + i}, 10 + i)
                     for i in range(1, 4)], 0)  # fmt: skip
    assert not failed(refresh_silver(settings))
    wide = {"id": 2, "qty": 2.5, "amount": _unscaled(1234567890123456), "day": 1_700_000_000_123_456}
    _land(settings, [_event(AFTER, "u", wide, 20)], 3)  # after ALTER TABLE items ALTER … TYPE …
    results = refresh_silver(settings)
    assert not failed(results)
    current = next(r for r in results if r["kind"] == "current")
    assert current["changes"] == 1 and current["stale"] == 0  # the rewrite's rows are not changes

    bronze = read_table(settings.lake.table_uri("bronze", "items"))
    types = {n: bronze.schema.field(n).type for n in ("qty", "amount", "day")}
    assert types == {"qty": pa.float64(), "amount": pa.decimal128(18, 4), "day": pa.timestamp("us", tz="UTC")}
    assert sorted(bronze["qty"].to_pylist()) == [1.0, 2.0, 2.5, 3.0]  # older values exactly, none lost
    handle = DeltaWriter({}).open(settings.lake.table_uri("bronze", "items"))
    assert offsets.next_offsets(handle, [(TOPIC, 0)]) == {(TOPIC, 0): 4}  # the offsets survived the rewrite
    silver = {r["id"]: r for r in read_table(settings.lake.table_uri("silver", "items")).to_pylist()}
    assert silver[2]["qty"] == 2.5 and silver[2]["amount"] == Decimal("123456789012.3456")
    assert silver[1]["qty"] == 1.0 and silver[1]["amount"] == Decimal("1.2500")
    history = read_table(settings.lake.table_uri("silver", "items_history"))
    assert history.schema.field("qty").type == pa.float64()
    assert sorted((r["id"], r["qty"]) for r in history.to_pylist()) == [(1, 1.0), (2, 2.0), (2, 2.5), (3, 3.0)]
    assert refresh_silver(settings)[0]["changes"] == 0  # and nothing is applied twice later
