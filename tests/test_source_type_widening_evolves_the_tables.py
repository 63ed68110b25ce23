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
import pytest
from helpers import read_table

from lakeport.ingestion import offsets
from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.errors import TransientError
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


def test_schemaless_json_widens_an_integer_column_to_double_and_nothing_else(tmp_path: Path) -> None:
    """Schemaless JSON declares no type: the first values of ``qty`` were integers, then a
    fraction came. The column widens to double (no dead letter, later records read as double);
    a large integer in another column of the same record stays exact (never read via a double),
    a timestamp column keeps its type, and text in a number column is still a dead letter."""
    settings = Settings(lake={"uri": str(tmp_path)}, tables=[
        {"name": "items", "topics": [TOPIC], "format": "json", "key": ["id"]}])  # fmt: skip
    writer, uri = DeltaWriter({}), settings.lake.table_uri("bronze", "items")

    def land(rows: list[dict[str, Any]], first: int) -> Any:
        n = len(rows)
        raw = RawBatch(topic=TOPIC, partition=0, offsets=list(range(first, first + n)), timestamps_ms=[0] * n,
                       keys=[None] * n, values=[json.dumps(r).encode() for r in rows])  # fmt: skip
        table = writer.open(uri)
        known = pa.schema(table.schema().to_arrow()) if table is not None else None  # type: ignore[arg-type]
        decoded = decode(Batch(table="items", format="json", parts=(raw,), ranges={(TOPIC, 0): (first, first + n - 1)}),
                         options=DecodeOptions("json", known))  # fmt: skip
        Lander(settings, writer).land(decoded)
        return decoded

    big = 2**62 + 1  # not a double
    land([{"id": i, "qty": i, "at": "2026-01-01T00:00:00Z", "n": big} for i in range(3)], 0)
    at_type = read_table(uri).schema.field("at").type
    out = land([{"id": 3, "qty": 4, "at": "2026-01-02T00:00:00Z", "n": big},
                {"id": 4, "qty": 2.5, "at": "2026-01-02T00:00:00Z", "n": big + 2},
                {"id": 5, "qty": 7, "at": "2026-01-03T00:00:00Z", "n": big}], 3)  # fmt: skip
    assert out.dead_letters == ()
    bronze = read_table(uri)
    assert bronze.schema.field("qty").type == pa.float64() and bronze.schema.field("at").type == at_type
    assert bronze.schema.field("n").type == pa.int64()
    rows = {r["_offset"]: r for r in bronze.to_pylist()}
    assert [rows[o]["qty"] for o in range(6)] == [0.0, 1.0, 2.0, 4.0, 2.5, 7.0]
    assert rows[4]["n"] == big + 2 and rows[3]["n"] == big
    late = land([{"id": 6, "qty": 8.25}, {"id": 7, "qty": "00123"}], 6)
    assert [(d.message.offset, d.stage) for d in late.dead_letters] == [(7, "schema")]
    assert read_table(uri).filter(pa.compute.equal(read_table(uri)["_offset"], 6))["qty"].to_pylist() == [8.25]


def test_a_widening_that_would_change_stored_values_is_refused_record_by_record(tmp_path: Path) -> None:
    """A bigint column holding 2**62 + 1 cannot become a double (it would round): the widening is
    refused; the records whose values still fit the column exactly (8.0) land in it, the one with
    a fraction is a ``schema`` dead letter, and the stored values are untouched. Never a retry
    loop, never a rounded value."""
    from lakeport.ingestion.dead_letters import LAYER, TABLE

    settings = Settings(lake={"uri": str(tmp_path)}, tables=[
        {"name": "items", "topics": [TOPIC], "format": "json", "key": ["id"]}])  # fmt: skip
    uri, big = settings.lake.table_uri("bronze", "items"), 2**62 + 1
    writer = DeltaWriter({})
    Lander(settings, writer).land(decode(_json_batch([{"id": 0, "n": big, "q": 1}], 0), options=DecodeOptions("json")))
    known = pa.schema(writer.open(uri).schema().to_arrow())  # type: ignore[union-attr, arg-type]
    decoded = decode(_json_batch([{"id": 1, "n": 8.0, "q": 2.5}, {"id": 2, "n": 1.5, "q": 3}], 1),
                     options=DecodeOptions("json", known))  # fmt: skip
    assert decoded.dead_letters == () and decoded.rows.schema.field("n").type == pa.float64()  # a widening, so far
    result = Lander(settings, writer).land(decoded)
    assert (result.rows, result.dead_letters) == (1, 1) and [c.record for c in result.conflicts] == [(TOPIC, 0, 2)]
    bronze = read_table(uri)
    assert bronze.schema.field("n").type == pa.int64()
    assert bronze.schema.field("q").type == pa.float64()  # the other column's widening is not held back
    rows = sorted(zip(bronze["_offset"].to_pylist(), bronze["n"].to_pylist(), bronze["q"].to_pylist(), strict=True))
    assert rows == [(0, big, 1.0), (1, 8, 2.5)]
    (letter,) = read_table(settings.lake.table_uri(LAYER, TABLE)).to_pylist()
    assert (letter["_offset"], letter["stage"]) == (2, "schema") and "would change stored values" in letter["error"]
    assert json.loads(letter["_value"]) == {"id": 2, "n": 1.5, "q": 3.0}


def _json_batch(rows: list[dict[str, Any]], first: int) -> Batch:
    n = len(rows)
    raw = RawBatch(topic=TOPIC, partition=0, offsets=list(range(first, first + n)), timestamps_ms=[0] * n,
                   keys=[None] * n, values=[json.dumps(r).encode() for r in rows])  # fmt: skip
    return Batch(table="items", format="json", parts=(raw,), ranges={(TOPIC, 0): (first, first + n - 1)})


def test_a_row_a_debezium_table_refused_is_a_schema_dead_letter_reported_not_replayable(tmp_path: Path) -> None:
    """Its value can only be the decoded row (the raw envelope is gone after decoding), which a
    ``debezium-json`` table cannot read back: replay says so instead of failing on it forever."""
    from lakeport.ingestion.replay import read_letters, replay_table

    settings = Settings(lake={"uri": str(tmp_path)}, tables=[
        {"name": "items", "topics": [TOPIC], "format": "debezium-json", "key": ["id"]}])  # fmt: skip
    _land(settings, [_event({"big": {"type": "int64", "optional": True}}, "c", {"id": 1, "big": 2**62 + 1}, 10)], 0)
    _land(settings, [_event({"big": {"type": "double", "optional": True}}, "u", {"id": 1, "big": 1.5}, 20)], 1)
    (letter,) = read_letters(settings, table="items").to_pylist()
    assert letter["stage"] == "schema" and "would change stored values" in letter["error"]
    result = replay_table(settings, "items", read_letters(settings, table="items"))
    assert (result.selected, result.not_replayable, result.landed, result.still_failing) == (1, 1, 0, 0)


def test_an_events_table_widens_with_its_bronze_table(tmp_path: Path) -> None:
    """Domain events (schemaless JSON, deduplicated by key into ``silver.<t>``): an amount that was
    always whole, then one with a fraction; bronze and the events table both become double."""
    settings = Settings(lake={"uri": str(tmp_path)}, tables=[
        {"name": "items", "topics": [TOPIC], "format": "json", "key": ["id"]}])  # fmt: skip
    writer, uri = DeltaWriter({}), settings.lake.table_uri("bronze", "items")
    Lander(settings, writer).land(decode(_json_batch([{"id": 1, "amount": 10}], 0), options=DecodeOptions("json")))
    assert not failed(refresh_silver(settings))
    known = pa.schema(writer.open(uri).schema().to_arrow())  # type: ignore[union-attr, arg-type]
    decoded = decode(_json_batch([{"id": 2, "amount": 10.5}], 1), options=DecodeOptions("json", known))
    Lander(settings, writer).land(decoded)
    results = refresh_silver(settings)
    assert not failed(results), results
    events = read_table(settings.lake.table_uri("silver", "items"))
    assert events.schema.field("amount").type == pa.float64()
    assert sorted(zip(events["id"].to_pylist(), events["amount"].to_pylist(), strict=True)) == [(1, 10.0), (2, 10.5)]


class _Crash(Exception):
    pass


@pytest.mark.parametrize(
    "step",
    ["bronze rewrite, before its commit", "bronze rewrite committed, before the append",
     "silver rewrite committed, before the merge", "history rewrite committed, before its merge"],
)  # fmt: skip
def test_a_crash_at_any_step_of_a_widening_loses_and_repeats_nothing(
    step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The widening's rewrite is one commit that keeps every app transaction: a crash before it
    leaves the table as it was, one after it leaves a wider table whose offsets and watermarks
    still say what landed and what was applied. The retry (the same batch, the same refresh) ends
    with every record once in bronze and every change once in silver and history."""
    from lakeport.ingestion import writer as writer_module
    from lakeport.lake import evolve

    settings = Settings(lake={"uri": str(tmp_path)}, tables=[
        {"name": "items", "topics": [TOPIC], "format": "debezium-json", "key": ["id"], "history": True}])  # fmt: skip
    _land(settings, [_event(BEFORE, "c", {"id": i, "qty": i, "amount": _unscaled(i * 125), "day": 20_000 + i}, 10 + i)
                     for i in range(1, 4)], 0)  # fmt: skip
    assert not failed(refresh_silver(settings))
    armed = [True]

    def once() -> None:
        if armed[0]:
            armed[0] = False
            raise _Crash(step)

    if step.startswith("bronze rewrite, before"):
        real_write = evolve.write_deltalake
        monkeypatch.setattr(evolve, "write_deltalake", lambda *a, **k: (once(), real_write(*a, **k)))
    elif step.startswith("bronze rewrite committed"):
        real_append = writer_module.DeltaWriter.append
        monkeypatch.setattr(writer_module.DeltaWriter, "append", lambda self, *a, **k: (
            once() if "bronze" in a[0] else None, real_append(self, *a, **k))[1])  # fmt: skip
    else:
        real_widen, which = evolve.widen_to, "items_history" if step.startswith("history") else "/silver/items/"

        def widen_then_crash(table: Any, rows: Any) -> None:
            real_widen(table, rows)
            if which in table.table_uri + "/":
                once()

        monkeypatch.setattr(evolve, "widen_to", widen_then_crash)
    wide = {"id": 2, "qty": 2.5, "amount": _unscaled(1234567890123456), "day": 1_700_000_000_123_456}
    batch = [_event(AFTER, "u", wide, 20)]
    try:
        _land(settings, batch, 3)
        results = refresh_silver(settings)
    except (_Crash, TransientError):
        results = []
    if not results or failed(results):  # the crash: the worker and the refresh run again
        _land(settings, batch, 3)
        assert not failed(refresh_silver(settings))
    assert not armed[0], "the crash never happened"
    assert not failed(refresh_silver(settings))
    bronze = read_table(settings.lake.table_uri("bronze", "items"))
    assert sorted(bronze["_offset"].to_pylist()) == [0, 1, 2, 3]  # every record once
    assert bronze.schema.field("qty").type == pa.float64()
    handle = DeltaWriter({}).open(settings.lake.table_uri("bronze", "items"))
    assert offsets.next_offsets(handle, [(TOPIC, 0)]) == {(TOPIC, 0): 4}
    silver = {r["id"]: r for r in read_table(settings.lake.table_uri("silver", "items")).to_pylist()}
    assert {i: silver[i]["qty"] for i in silver} == {1: 1.0, 2: 2.5, 3: 3.0}
    history = read_table(settings.lake.table_uri("silver", "items_history")).to_pylist()
    assert sorted((r["id"], r["qty"], r["is_current"]) for r in history) == [
        (1, 1.0, True), (2, 2.0, False), (2, 2.5, True), (3, 3.0, True)]  # fmt: skip
