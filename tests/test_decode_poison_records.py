"""Bad records become dead letters, good ones land, and nothing is lost: rows + dead == messages."""

from __future__ import annotations

import json

import pyarrow as pa
from test_decode_debezium_envelopes import batch_of

from lakeport.ingestion.decode import DecodeOptions, decode

GOOD = [json.dumps({"id": i, "amount": i * 1.5, "status": "ok"}).encode() for i in range(10)]


def test_poison_corpus_is_isolated() -> None:
    poison = {
        10: b'{"id": 10, "amount": ',  # truncated JSON
        11: b"\xff\xfe{not utf-8}",  # invalid UTF-8
        12: b"[1, 2, 3]",  # an array, not an object
        13: b"42",  # a scalar
        14: json.dumps({"id": "fourteen", "amount": 1.0}).encode(),  # id: int earlier, string here
        15: b"",  # empty
        16: json.dumps({"id": 16, "blob": "x" * (5 * 1024 * 1024)}).encode(),  # 5 MB
        17: b'{"id": 17}{"id": 18}',  # two objects in one message
    }
    values: list[bytes | None] = GOOD[:5] + [poison[i] for i in sorted(poison)] + GOOD[5:] + [None]
    out = decode(batch_of(values, fmt="json"), options=DecodeOptions("json", max_message_bytes=1 << 20))
    dead = {d.message.offset: d for d in out.dead_letters}
    assert sorted(dead) == list(range(5, 13))  # the poison, by offset
    assert out.rows.num_rows + len(dead) == len(values) == out.messages
    good_ids = [r for r in out.rows["id"].to_pylist() if r is not None]
    assert sorted(good_ids) == list(range(10))
    assert dead[5].message.value == poison[10]  # raw bytes are kept exactly
    assert "exceeds max_message_bytes" in dead[11].error and dead[11].stage == "limits"
    assert "UTF-8" in dead[6].error
    assert out.rows.schema.field("id").type == pa.int64()  # the first type seen wins
    tombstone = [r for r in out.rows.to_pylist() if r["_offset"] == len(values) - 1]
    assert tombstone and tombstone[0]["id"] is None


def test_conflict_with_existing_table_type_is_a_dead_letter() -> None:
    table_schema = pa.schema([("id", pa.int64()), ("status", pa.string())])
    values = [
        json.dumps({"id": 1, "status": "a"}).encode(),
        json.dumps({"id": 2, "status": 5}).encode(),
        json.dumps({"id": 3, "status": "c", "new_col": True}).encode(),
    ]
    out = decode(batch_of(values, fmt="json"), options=DecodeOptions("json", table_schema=table_schema))
    assert [d.message.offset for d in out.dead_letters] == [1]
    assert out.rows["id"].to_pylist() == [1, 3]
    assert out.rows["new_col"].to_pylist() == [None, True]  # schema evolution: a new nullable column


def test_skipping_tombstones_is_an_option() -> None:
    out = decode(batch_of([GOOD[0], None], fmt="json"), options=DecodeOptions("json", tombstones="skip"))
    assert out.rows.num_rows == 1 and out.dead_letters == ()


def test_pretty_printed_json_is_still_one_record() -> None:
    pretty = json.dumps({"id": 1, "nested": {"a": [1, 2]}}, indent=2).encode()
    out = decode(batch_of([pretty, GOOD[2]], fmt="json"), options=DecodeOptions("json"))
    assert out.dead_letters == ()
    assert out.rows["id"].to_pylist() == [1, 2]


def test_unknown_debezium_op_is_a_dead_letter() -> None:
    values = [
        json.dumps({"after": {"id": 1}, "op": "x", "source": {}}).encode(),
        json.dumps({"after": {"id": 2}, "op": "c", "source": {}}).encode(),
        json.dumps({"id": 3}).encode(),
    ]
    out = decode(batch_of(values), options=DecodeOptions("debezium-json"))
    assert sorted(d.message.offset for d in out.dead_letters) == [0, 2]
    assert out.rows["id"].to_pylist() == [2]
