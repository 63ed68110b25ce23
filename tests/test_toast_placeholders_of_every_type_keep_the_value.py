"""Debezium's unchanged-TOAST placeholder, in a text, bytes (raw or base64 in JSON), JSON, hstore
(JSON mode), decimal (marked by the decoder), text, bytea, uuid, integer and float array column,
takes the previous value (also from an earlier run) in silver and in history; with no previous value known, NULL, never
the placeholder text, with the row's ``_toast_unavailable`` naming the column and the run
counting it."""

from __future__ import annotations

import base64
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from helpers import CDC_BRONZE, cdc, lake_rows, land_cdc, read_table

from lakeport.lake.changes import UNAVAILABLE
from lakeport.lake.history import apply_history
from lakeport.lake.silver import apply_changes

SCHEMA = pa.schema(
    [
        *CDC_BRONZE,
        ("_toast_unavailable", pa.list_(pa.string())),
        ("doc", pa.string()),
        ("payload", pa.string()),  # a json column: a string in bronze
        ("photo", pa.binary()),
        ("photo_b64", pa.string()),  # bytes without the schema wrapper arrive as base64 text
        ("price", pa.decimal128(20, 4)),
        ("tags", pa.list_(pa.string())),  # text[]
        ("nums", pa.list_(pa.int32())),  # int[]
        ("ratios", pa.list_(pa.float64())),  # float8[]
        ("attrs", pa.string()),  # hstore, in Debezium's JSON mode
        ("ids", pa.list_(pa.string())),  # uuid[]
        ("blobs", pa.list_(pa.string())),  # bytea[]: base64 elements in JSON
    ]
)
FULL = {
    "doc": "a long text",
    "payload": '{"a": 1}',
    "photo": b"\x89PNG...",
    "photo_b64": base64.b64encode(b"\x89PNG...").decode(),
    "price": Decimal("12345678.1234"),
    "tags": ["a", "b"],
    "nums": [1, 2, 3],
    "ratios": [0.5, 0.25],
    "attrs": '{"colour":"red"}',
    "ids": ["0b6e4d3c-9f1f-4a5e-8a2b-3c4d5e6f7a8b"],
    "blobs": [base64.b64encode(b"\x00\x01").decode()],
}
PLACEHOLDERS = {
    "doc": UNAVAILABLE,
    "payload": UNAVAILABLE,
    "photo": UNAVAILABLE.encode(),
    "photo_b64": base64.b64encode(UNAVAILABLE.encode()).decode(),
    "price": None,
    "tags": [UNAVAILABLE],  # Debezium's placeholder of a text array
    "nums": list(UNAVAILABLE.encode()),  # of an integer array: the placeholder's bytes as numbers
    "ratios": [float(b) for b in UNAVAILABLE.encode()],  # of a float array, likewise
    "attrs": '{"__debezium_unavailable_value":"__debezium_unavailable_value"}',  # of an hstore: {it: it}
    "ids": ["b68a35a7-17ad-35b3-af2a-ae46edb4545a"],  # of a uuid[]: Java's UUID.nameUUIDFromBytes(its bytes)
    "blobs": [base64.b64encode(UNAVAILABLE.encode()).decode()],  # of a bytea[]: its bytes
    "_toast_unavailable": ["price"],
}


def test_placeholders_take_the_value_of_an_earlier_run(tmp_path: Path) -> None:
    bronze, silver, history = str(tmp_path / "bronze"), str(tmp_path / "silver"), str(tmp_path / "history")
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a", **FULL)], SCHEMA)
    apply_changes("t", bronze, silver, key=["id"])
    apply_history("t", bronze, history, key=["id"])
    land_cdc(bronze, [cdc(1, "u", 20, 1, "b", **PLACEHOLDERS)], SCHEMA)  # another run: only name changed
    apply_changes("t", bronze, silver, key=["id"])
    apply_history("t", bronze, history, key=["id"])
    row = lake_rows(silver)[1]
    assert {c: row[c] for c in FULL} == FULL and row["name"] == "b"
    versions = sorted(read_table(history).to_pylist(), key=lambda r: r["_source_lsn"])
    assert [{c: v[c] for c in FULL} for v in versions] == [FULL, FULL]
    assert [v["name"] for v in versions] == ["a", "b"]


def test_placeholders_within_one_run_take_the_previous_change(tmp_path: Path) -> None:
    bronze, silver, history = str(tmp_path / "bronze"), str(tmp_path / "silver"), str(tmp_path / "history")
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a", **FULL), cdc(1, "u", 20, 1, "b", **PLACEHOLDERS)], SCHEMA)
    apply_changes("t", bronze, silver, key=["id"])
    apply_history("t", bronze, history, key=["id"])
    assert {c: lake_rows(silver)[1][c] for c in FULL} == FULL
    assert all({c: v[c] for c in FULL} == FULL for v in read_table(history).to_pylist())


def test_placeholder_with_no_earlier_value_is_null_marked_and_counted_never_data(tmp_path: Path) -> None:
    bronze, silver, history = str(tmp_path / "bronze"), str(tmp_path / "silver"), str(tmp_path / "history")
    land_cdc(bronze, [cdc(0, "u", 20, 1, "b", **PLACEHOLDERS)], SCHEMA)  # its insert is long gone
    applied = apply_changes("t", bronze, silver, key=["id"])
    versions = apply_history("t", bronze, history, key=["id"])
    for row in (lake_rows(silver)[1], read_table(history).to_pylist()[0]):
        assert all(row[c] is None for c in FULL), row
        assert sorted(row["_toast_unavailable"]) == sorted(FULL), row  # the row says which values are unknown
    assert applied.toast_unavailable == len(FULL) and versions.toast_unavailable == len(FULL)
    # a later placeholder still finds no value (silver's NULL is not one); a real value clears the mark
    land_cdc(bronze, [cdc(1, "u", 30, 1, "c", **PLACEHOLDERS)], SCHEMA)
    assert apply_changes("t", bronze, silver, key=["id"]).toast_unavailable == len(FULL)
    assert sorted(lake_rows(silver)[1]["_toast_unavailable"]) == sorted(FULL)
    land_cdc(bronze, [cdc(2, "u", 40, 1, "d", **FULL, _toast_unavailable=None)], SCHEMA)
    assert apply_changes("t", bronze, silver, key=["id"]).toast_unavailable == 0
    apply_history("t", bronze, history, key=["id"])
    row = lake_rows(silver)[1]
    assert {c: row[c] for c in FULL} == FULL and row["_toast_unavailable"] is None
    current = [v for v in read_table(history).to_pylist() if v["is_current"]]
    assert len(current) == 1 and current[0]["_toast_unavailable"] is None and current[0]["doc"] == FULL["doc"]


def test_a_found_value_leaves_no_mark(tmp_path: Path) -> None:
    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a", **FULL), cdc(1, "u", 20, 1, "b", **PLACEHOLDERS)], SCHEMA)
    assert apply_changes("t", bronze, silver, key=["id"]).toast_unavailable == 0
    assert lake_rows(silver)[1]["_toast_unavailable"] is None


def test_decimal_placeholder_from_the_connector_is_marked_and_filled(tmp_path: Path) -> None:
    """A Debezium event with the schema wrapper carries the placeholder's bytes (base64) in a
    Decimal column: decoding nulls it and lists the column in `_toast_unavailable`; silver then
    keeps the earlier value."""
    import json

    from deltalake import write_deltalake
    from test_decode_debezium_envelopes import _wrapped, batch_of

    from lakeport.ingestion.decode import DecodeOptions, decode

    fields = [
        {"type": "int64", "optional": False, "field": "id"},
        {"type": "string", "optional": True, "field": "name"},
        {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
         "parameters": {"scale": "2", "connect.decimal.precision": "12"}, "field": "price"},
    ]  # fmt: skip
    price = base64.b64encode((1234567).to_bytes(4, "big", signed=True)).decode()
    placeholder = base64.b64encode(UNAVAILABLE.encode()).decode()
    events = [
        _wrapped({"before": None, "after": {"id": 1, "name": "a", "price": price}, "op": "c",
                  "source": {"lsn": 10, "ts_ms": 10}}, fields),
        _wrapped({"before": None, "after": {"id": 1, "name": "b", "price": placeholder}, "op": "u",
                  "source": {"lsn": 20, "ts_ms": 20}}, fields),
    ]  # fmt: skip
    out = decode(batch_of(events), options=DecodeOptions("debezium-json"))
    assert out.dead_letters == ()
    rows = out.rows.to_pylist()
    assert [r["price"] for r in rows] == [Decimal("12345.67"), None]
    assert [r["_toast_unavailable"] for r in rows] == [None, ["price"]]
    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    write_deltalake(bronze, out.rows.slice(0, 1), configuration={"delta.enableChangeDataFeed": "true"})
    apply_changes("t", bronze, silver, key=["id"])
    write_deltalake(bronze, out.rows.slice(1, 1), mode="append", schema_mode="merge")
    apply_changes("t", bronze, silver, key=["id"])
    assert {k: lake_rows(silver)[1][k] for k in ("name", "price")} == {"name": "b", "price": Decimal("12345.67")}
    assert json.dumps(rows[1]["_toast_unavailable"]) == '["price"]'
