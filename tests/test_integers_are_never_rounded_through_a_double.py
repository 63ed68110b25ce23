"""A bigint beyond 2**53 has no exact double. Whatever else shares its batch (a fraction that widens
the column, in one poll or across polls, schemaless or with Debezium's schema), it lands exactly or
is a ``schema`` dead letter: never rounded, and decoding never raises. Found by a second reader
of the widening change; each case is the sequence that rounded or crashed before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from helpers import read_table
from test_source_type_widening_evolves_the_tables import TOPIC, _event, _json_batch

from lakeport.ingestion.batch import merge
from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.landing import Lander
from lakeport.ingestion.records import Batch, RawBatch
from lakeport.ingestion.worker import Worker
from lakeport.ingestion.writer import DeltaWriter
from lakeport.settings import Settings

EDGE = 2**53 + 1  # the first integer a double cannot hold


def _lake(tmp_path: Path, first: list[dict[str, Any]]) -> tuple[Settings, str, pa.Schema]:
    settings = Settings(lake={"uri": str(tmp_path)}, tables=[{"name": "items", "topics": [TOPIC], "format": "json"}],
                        kafka={"bootstrap_servers": "127.0.0.1:1"})  # fmt: skip
    writer, uri = DeltaWriter({}), settings.lake.table_uri("bronze", "items")
    Lander(settings, writer).land(decode(_json_batch(first, 0), options=DecodeOptions("json")))
    return settings, uri, pa.schema(writer.open(uri).schema().to_arrow())  # type: ignore[union-attr, arg-type]


def _landed(uri: str) -> dict[int, Any]:
    table = read_table(uri)
    return dict(zip(table["_offset"].to_pylist(), table["n"].to_pylist(), strict=True))


def test_a_big_integer_after_a_fraction_in_one_batch_is_never_rounded(tmp_path: Path) -> None:
    settings, uri, known = _lake(tmp_path, [{"id": 0, "n": 1}])
    out = decode(_json_batch([{"id": 1, "n": 1.5}, {"id": 2, "n": EDGE}, {"id": 3, "n": 7}], 1),
                 options=DecodeOptions("json", known))  # fmt: skip
    assert [(d.message.offset, d.stage) for d in out.dead_letters] == [(2, "schema")]
    Lander(settings, DeltaWriter({})).land(out)
    assert _landed(uri) == {0: 1.0, 1: 1.5, 3: 7.0}


def test_a_big_integer_before_a_fraction_in_one_batch_does_not_crash_decoding(tmp_path: Path) -> None:
    _, _, known = _lake(tmp_path, [{"id": 0, "n": 1}])
    out = decode(_json_batch([{"id": 1, "n": EDGE}, {"id": 2, "n": 1.5}], 1), options=DecodeOptions("json", known))
    assert [(d.message.offset, d.stage) for d in out.dead_letters] == [(1, "schema")]
    assert out.rows["n"].to_pylist() == [1.5]


def test_a_debezium_batch_spanning_alter_type_double_does_not_crash_decoding() -> None:
    values = [_event({"big": {"type": "int64", "optional": True}}, "c", {"id": 1, "big": 2**62 + 1}, 10),
              _event({"big": {"type": "double", "optional": True}}, "u", {"id": 2, "big": 1.5}, 20)]  # fmt: skip
    raw = RawBatch(topic=TOPIC, partition=0, offsets=[0, 1], timestamps_ms=[0, 0], keys=[b"1", b"2"], values=values)
    out = decode(Batch(table="items", format="debezium-json", parts=(raw,), ranges={(TOPIC, 0): (0, 1)}),
                 options=DecodeOptions("debezium-json"))  # fmt: skip
    assert [(d.message.offset, d.stage) for d in out.dead_letters] == [(0, "schema")]
    assert out.rows["big"].to_pylist() == [1.5]


def test_pieces_buffered_across_polls_merge_without_rounding(tmp_path: Path) -> None:
    _, _, known = _lake(tmp_path, [{"id": 0, "n": 1}])
    whole = decode(_json_batch([{"id": 1, "n": EDGE}], 1), options=DecodeOptions("json", known))
    fraction = decode(_json_batch([{"id": 2, "n": 1.5}], 2), options=DecodeOptions("json", known))
    merged = merge("items", [whole, fraction])
    assert [(d.message.offset, d.stage) for d in merged.dead_letters] == [(1, "schema")]
    assert json.loads(merged.dead_letters[0].message.value or b"") == {"id": 1, "n": EDGE}  # the exact value kept
    assert merged.rows["n"].to_pylist() == [1.5]


def test_a_refused_widening_never_makes_the_worker_read_integers_as_doubles(tmp_path: Path) -> None:
    """The table holds 2**62 + 1, so it refuses to become a double; the next batch's integers are
    still read as integers (the worker's schema comes from the Delta log, not from its last batch)."""
    settings, uri, _ = _lake(tmp_path, [{"id": 0, "n": 2**62 + 1}])
    worker = Worker(settings, once=True)
    for first, rows in ((1, [{"id": 1, "n": 1.5}]), (2, [{"id": 2, "n": EDGE}, {"id": 3, "n": 2**62 + 3}])):
        raw = _json_batch(rows, first).parts[0]
        batch = Batch(table="items", format="json", parts=(raw,), ranges={(TOPIC, 0): (first, first + len(rows) - 1)})
        worker.lander.land(worker._decode(batch))
    assert _landed(uri) == {0: 2**62 + 1, 2: EDGE, 3: 2**62 + 3}
    assert read_table(uri).schema.field("n").type == pa.int64()
