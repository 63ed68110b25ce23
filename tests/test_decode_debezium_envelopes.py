"""Debezium change events become rows: the row image, the op and the source position."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pyarrow as pa
from helpers import debezium

from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.records import Batch, RawBatch


def batch_of(values: list[bytes | None], *, fmt: str = "debezium-json", topic: str = "shop.public.customers") -> Batch:
    n = len(values)
    raw = RawBatch(
        topic,
        0,
        list(range(n)),
        [1_700_000_000_000 + i for i in range(n)],
        [json.dumps({"id": i}).encode() for i in range(n)],
        values,
    )
    return Batch("t", fmt, (raw,), {(topic, 0): (0, n - 1)}, sum(len(v or b"") for v in values))


def rows_by_offset(table: pa.Table) -> dict[int, dict]:
    return {r["_offset"]: r for r in table.to_pylist()}


def test_all_ops_take_the_right_image() -> None:
    values = [
        debezium("r", {"id": 1, "name": "Ann"}, lsn=10),
        debezium("c", {"id": 2, "name": "Bob"}, lsn=11),
        debezium("u", {"id": 2, "name": "Bobby"}, before={"id": 2, "name": "Bob"}, lsn=12),
        debezium("d", None, before={"id": 1}, lsn=13),  # REPLICA IDENTITY DEFAULT: key only
        json.dumps({"before": None, "after": None, "op": "t", "source": {"lsn": 14}}).encode(),
    ]
    out = decode(batch_of(values), options=DecodeOptions("debezium-json"))
    assert out.dead_letters == ()
    rows = rows_by_offset(out.rows)
    assert [rows[i]["_op"] for i in range(5)] == ["r", "c", "u", "d", "t"]
    assert (rows[0]["id"], rows[0]["name"], rows[0]["_source_snapshot"]) == (1, "Ann", "true")
    assert (rows[2]["id"], rows[2]["name"]) == (2, "Bobby")
    assert (rows[3]["id"], rows[3]["name"]) == (1, None)
    assert (rows[4]["id"], rows[4]["_source_lsn"]) == (None, 14)
    assert [rows[i]["_source_lsn"] for i in range(4)] == [10, 11, 12, 13]
    assert rows[1]["_source_ts_ms"] == 1_700_000_000_000 and rows[1]["_source_table"] == "customers"
    assert rows[1]["_key"] == b'{"id": 1}' and rows[1]["_topic"] == "shop.public.customers"
    assert rows[1]["_timestamp"].timestamp() == 1_700_000_000.001


def _wrapped(payload: dict, fields: list[dict]) -> bytes:
    row = {"type": "struct", "optional": True, "fields": fields, "name": "shop.public.orders.Value"}
    schema = {
        "type": "struct",
        "name": "shop.public.orders.Envelope",
        "fields": [
            {**row, "field": "before"},
            {**row, "field": "after"},
            {"type": "string", "optional": False, "field": "op"},
        ],
    }
    return json.dumps({"schema": schema, "payload": payload}).encode()


def test_schema_wrapper_decodes_logical_types() -> None:
    fields = [
        {"type": "int32", "optional": False, "field": "id"},
        {
            "type": "bytes",
            "optional": True,
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": {"scale": "2", "connect.decimal.precision": "10"},
            "field": "amount",
        },
        {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "field": "ship_date"},
        {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "field": "created_at"},
        {"type": "int64", "optional": True, "name": "io.debezium.time.Timestamp", "field": "paid_at"},
        {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "field": "updated_at"},
    ]
    amount = base64.b64encode((-123456).to_bytes(3, "big", signed=True)).decode()
    after = {
        "id": 7,
        "amount": amount,
        "ship_date": 19_723,
        "created_at": 1_700_000_000_123_456,
        "paid_at": 1_700_000_000_123,
        "updated_at": "2024-01-02T03:04:05.678901+02:00",
    }
    wrapped = _wrapped({"before": None, "after": after, "op": "c", "source": {"lsn": 5}}, fields)
    bare = debezium("c", {"id": 8, "ship_date": None})
    out = decode(batch_of([wrapped, bare]), options=DecodeOptions("debezium-json"))
    assert out.dead_letters == ()
    types = {f.name: f.type for f in out.rows.schema}
    assert types["amount"] == pa.decimal128(10, 2)
    assert types["ship_date"] == pa.date32()
    assert types["created_at"] == pa.timestamp("us", tz="UTC")
    row = rows_by_offset(out.rows)[0]
    assert row["amount"] == Decimal("-1234.56")
    assert row["ship_date"].isoformat() == "2024-01-01"
    assert row["created_at"].isoformat() == "2023-11-14T22:13:20.123456+00:00"
    assert row["paid_at"].isoformat() == "2023-11-14T22:13:20.123000+00:00"
    assert row["updated_at"].isoformat() == "2024-01-02T01:04:05.678901+00:00"


def test_wrapped_and_bare_envelopes_give_the_same_row() -> None:
    fields = [
        {"type": "int64", "optional": False, "field": "id"},
        {"type": "string", "optional": True, "field": "name"},
    ]
    wrapped = _wrapped({"before": None, "after": {"id": 3, "name": "Cy"}, "op": "c", "source": {"lsn": 1}}, fields)
    bare = debezium("c", {"id": 3, "name": "Cy"}, lsn=1)
    out = decode(batch_of([wrapped, bare]), options=DecodeOptions("debezium-json"))
    rows = rows_by_offset(out.rows)
    assert {k: rows[0][k] for k in ("id", "name", "_op", "_source_lsn")} == {
        "id": 3,
        "name": "Cy",
        "_op": "c",
        "_source_lsn": 1,
    }
    assert {k: rows[1][k] for k in ("id", "name", "_op", "_source_lsn")} == {
        "id": 3,
        "name": "Cy",
        "_op": "c",
        "_source_lsn": 1,
    }


def test_plain_json_keeps_nested_objects_as_structs() -> None:
    values = [
        json.dumps(
            {"event_id": "e1", "event_type": "OrderPlaced", "order": {"id": 1, "lines": [{"sku": "A", "qty": 2}]}}
        ).encode(),
        json.dumps({"event_id": "e2", "event_type": "PaymentCaptured", "amount": 9.5}).encode(),
    ]
    out = decode(batch_of(values, fmt="json"), options=DecodeOptions("json"))
    assert out.dead_letters == ()
    assert pa.types.is_struct(out.rows.schema.field("order").type)
    rows = rows_by_offset(out.rows)
    assert rows[0]["order"] == {"id": 1, "lines": [{"sku": "A", "qty": 2}]}
    assert rows[1]["amount"] == 9.5 and rows[1]["order"] is None


def test_iso_strings_stay_strings_unless_the_schema_says_otherwise() -> None:
    values = [
        json.dumps({"at": "2024-01-01T00:00:00Z"}).encode(),
        json.dumps({"at": "2024-01-01T00:00:00.5Z"}).encode(),
    ]
    out = decode(batch_of(values, fmt="json"), options=DecodeOptions("json"))
    assert out.rows.schema.field("at").type == pa.string()
    assert out.rows["at"].to_pylist() == ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5Z"]
