"""Kafka keys are opaque bytes to Lakeport: a key that is not JSON, not UTF-8, an Avro-framed key
or JSON of another shape than the table's key lands like any other, and ``_key`` keeps its exact
bytes, in bronze and in dead letters (with the record's headers, so a replay sees what ingest saw).
Debezium's old-key header of a primary-key change is compared with the table's key the way
silver compares every key (typed); a header of another shape names no old key and breaks nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from helpers import CDC_BRONZE, cdc, lake_rows, land_cdc, make_topic, read_table, run_cli, send, unique, write_config

from lakeport.dev.stack import StackState
from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.landing import Lander
from lakeport.ingestion.records import Batch, RawBatch
from lakeport.ingestion.replay import read_letters, replay_table
from lakeport.ingestion.writer import DeltaWriter
from lakeport.lake.changes import UNAVAILABLE
from lakeport.lake.history import apply_history
from lakeport.lake.silver import apply_changes
from lakeport.settings import Settings

TOPIC = "shop.events"
KEYS: list[bytes | None] = [
    None,
    b"plain text",
    b"\xff\xfe\x00 not utf-8 \x80",
    b"\x00\x00\x00\x00\x07\xda\x0f",  # Confluent wire format: magic byte, schema id 7, Avro body
    b'{"other": [1, 2]}',  # JSON, but not the table's key shape
    b'{"id": ',  # broken JSON
    b"\\x41 a literal backslash",  # what the old text column could not tell from an escaped byte
]


class _Message:
    """A consumed record as the Kafka client hands it over (only headers are asked for)."""

    def __init__(self, headers: list[tuple[str, bytes]]) -> None:
        self._headers = headers

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


def _batch(values: list[bytes | None], keys: list[bytes | None], headers: list[list[tuple[str, bytes]]]) -> Batch:
    n = len(values)
    raw = RawBatch(topic=TOPIC, partition=0, offsets=list(range(n)), timestamps_ms=[1_700_000_000_000] * n,
                   keys=keys, values=values, client_messages=[_Message(h) for h in headers])  # fmt: skip
    return Batch(table="t", format="json", parts=(raw,), ranges={(TOPIC, 0): (0, n - 1)}, raw_bytes=0)


def _settings(lake: Path, fmt: str = "json", max_bytes: int = 10_000) -> Settings:
    return Settings(lake={"uri": str(lake)}, tables=[{"name": "t", "topics": [TOPIC], "format": fmt}],
                    ingest={"max_message_bytes": max_bytes})  # fmt: skip


def _land(settings: Settings, batch: Batch, fmt: str = "json") -> None:
    decoded = decode(batch, options=DecodeOptions(fmt, None, settings.ingest.max_message_bytes, "record"))
    Lander(settings, DeltaWriter({})).land(decoded)


def test_keys_of_any_shape_land_with_their_exact_bytes(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    values: list[bytes | None] = [json.dumps({"n": i}).encode() for i in range(len(KEYS))]
    values += [None] * len(KEYS)  # tombstones with the same keys
    _land(settings, _batch(values, KEYS + KEYS, [[]] * len(values)))
    bronze = read_table(settings.lake.table_uri("bronze", "t"))
    assert bronze.schema.field("_key").type == pa.binary()
    by_offset = {r["_offset"]: r for r in bronze.to_pylist()}
    assert len(by_offset) == 2 * len(KEYS)
    assert [by_offset[o]["_key"] for o in range(2 * len(KEYS))] == KEYS + KEYS
    assert [by_offset[o]["n"] for o in range(len(KEYS))] == list(range(len(KEYS)))


def test_a_dead_letter_keeps_its_key_and_headers_and_a_replay_uses_them(tmp_path: Path) -> None:
    """A Debezium create whose unchanged-TOAST value belongs to the old key of a primary-key
    change: only its ``__debezium.oldkey`` header says which. Too big at first, it is a dead
    letter; replayed after the limit is raised, it lands with the key bytes and the old key."""
    create = {"before": None, "after": {"id": 1005, "doc": UNAVAILABLE}, "op": "c", "source": {"lsn": 20}}
    value = json.dumps({**create, "pad": "x" * 500}).encode()
    key = b"\x00\x00\x00\x00\x07\xda\x0f"
    header = [("__debezium.oldkey", b'{"id":5}'), ("trace", b"\xff")]
    settings = _settings(tmp_path, "debezium-json", max_bytes=200)
    _land(settings, _batch([value], [key], [header]), "debezium-json")
    letters = read_letters(settings, table="t").to_pylist()
    assert [(r["_key"], r["_headers"]) for r in letters] == [(key, [{"key": k, "value": v} for k, v in header])]
    result = replay_table(_settings(tmp_path, "debezium-json"), "t", read_letters(settings, table="t"))
    assert (result.landed, result.still_failing) == (1, 0)
    (row,) = read_table(settings.lake.table_uri("bronze", "t")).to_pylist()
    assert (row["_key"], row["_old_key"], row["id"]) == (key, '{"id":5}', 1005)


def test_a_table_made_when_keys_were_text_keeps_landing(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    uri = settings.lake.table_uri("bronze", "t")
    old = pa.table({"_topic": [TOPIC], "_partition": pa.array([0], pa.int32()), "_offset": pa.array([0], pa.int64()),
                    "_timestamp": pa.array([None], pa.timestamp("us", "UTC")), "_key": ["k0"],
                    "_ingested_at": pa.array([None], pa.timestamp("us", "UTC")), "n": [0]})  # fmt: skip
    write_deltalake(uri, old, configuration={"delta.enableChangeDataFeed": "true"})
    batch = _batch([json.dumps({"n": 1}).encode(), json.dumps({"n": 2}).encode()], [b"k1", b"\xff"], [[], []])
    _land(settings, Batch(table="t", format="json", parts=(_shifted(batch.parts[0]),),
                          ranges={(TOPIC, 0): (1, 2)}))  # fmt: skip
    rows = sorted(read_table(uri).to_pylist(), key=lambda r: r["_offset"])
    assert [(r["_key"], r["n"]) for r in rows] == [("k0", 0), ("k1", 1), ("\\xff", 2)]


def _shifted(part: RawBatch) -> RawBatch:
    return RawBatch(topic=part.topic, partition=0, offsets=[o + 1 for o in part.offsets],
                    timestamps_ms=part.timestamps_ms, keys=part.keys, values=part.values)  # fmt: skip


MOVE_SCHEMA = pa.schema([*CDC_BRONZE, ("doc", pa.string()), ("_old_key", pa.string())])


@pytest.mark.parametrize(
    ("header", "found"),
    [
        ('{"id":5}', True),
        ('{"id":"5"}', True),  # compared typed, as silver compares keys: "5" is key 5
        ('{"schema":{"type":"struct"},"payload":{"id":5}}', True),  # a Connect envelope
        ('{"other":5}', False),  # another shape: no old key
        ("not json {", False),
        ('{"id":"five"}', False),  # not castable to the key's type
        ('{"id":"5.4"}', False),  # a cast to an integer would round it to key 5
        ('{"id":"0x5"}', False),  # and read hexadecimal as 5
    ],
)
def test_an_old_key_header_of_any_shape_fills_or_leaves_null_never_fails(
    tmp_path: Path, header: str, found: bool
) -> None:
    bronze, silver, history = (str(tmp_path / n) for n in ("bronze", "silver", "history"))
    rows: list[dict[str, Any]] = [
        cdc(0, "c", 10, 5, "a", doc="the long text", _old_key=None),
        cdc(1, "d", 20, 5, None, doc=None, _old_key=None),
        cdc(2, "c", 20, 1005, "a", doc=UNAVAILABLE, _old_key=header),
    ]
    for run in (rows[:1], rows[1:]):  # the old key's value is in silver from an earlier run
        land_cdc(bronze, run, MOVE_SCHEMA)
        apply_changes("t", bronze, silver, key=["id"])
        apply_history("t", bronze, history, key=["id"])
    moved = lake_rows(silver)[1005]
    (version,) = [v for v in read_table(history).to_pylist() if v["id"] == 1005]
    for row in (moved, version):
        assert row["doc"] == ("the long text" if found else None), row
        assert row["_toast_unavailable"] == (None if found else ["doc"]), row
    assert 5 not in lake_rows(silver)


@pytest.mark.stack
def test_keys_of_any_shape_arrive_through_the_broker_byte_for_byte(local_stack: StackState, tmp_path: Path) -> None:
    """The same keys sent to a real broker and read by ``lakeport ingest --once``, tombstones too."""
    topic = unique("keys.")
    make_topic(local_stack, topic, 1)
    values: list[bytes | None] = [json.dumps({"n": i}).encode() for i in range(len(KEYS))] + [None] * len(KEYS)
    send(local_stack, topic, values, keys=KEYS + KEYS)
    lake = str(tmp_path / "lake")
    config = write_config(tmp_path / "lakeport.yaml", local_stack, lake_uri=lake,
                          tables=[{"name": "t", "topics": [topic], "format": "json"}])  # fmt: skip
    run_cli(["ingest", "--once", "--config", str(config)], timeout=120)
    by_offset = {r["_offset"]: r["_key"] for r in read_table(f"{lake}/bronze/t").to_pylist()}
    assert [by_offset.get(o) for o in range(2 * len(KEYS))] == KEYS + KEYS
