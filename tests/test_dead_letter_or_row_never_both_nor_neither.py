"""A crash between the dead-letter commit and the data commit, then a retry that decodes the same
records differently (here: the first attempt was decoded beside a batch of another partition that
brought the column as a number, never committed; the retry decodes alone, so text comes first):
every record still ends in exactly one of ``bronze`` and ``ops.dead_letters`` — never both, never
neither. Whether a record is a dead letter is what the first commit of its range said."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from helpers import read_table

from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.landing import Lander
from lakeport.ingestion.records import Batch, RawBatch
from lakeport.ingestion.writer import DeltaWriter
from lakeport.settings import Settings

TOPIC = "shop.events"


class _Crash(Exception):
    pass


class _CrashOnData(DeltaWriter):
    """Commits dead letters, then dies before the data commit."""

    def append(self, uri: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("table_name") != "ops.dead_letters":
            raise _Crash
        return super().append(uri, *args, **kwargs)


def _batch(partition: int, values: list[dict[str, Any]], first: int = 0) -> Batch:
    n = len(values)
    raw = RawBatch(topic=TOPIC, partition=partition, offsets=list(range(first, first + n)), timestamps_ms=[0] * n,
                   keys=[None] * n, values=[json.dumps(v).encode() for v in values])  # fmt: skip
    return Batch(table="t", format="json", parts=(raw,), ranges={(TOPIC, partition): (first, first + n - 1)})


def _places(settings: Settings) -> tuple[list[int], list[int]]:
    bronze = read_table(settings.lake.table_uri("bronze", "t")).to_pylist()
    letters = read_table(settings.lake.table_uri("ops", "dead_letters")).to_pylist()
    return (sorted(r["_offset"] for r in bronze if r["_partition"] == 0),
            sorted(r["_offset"] for r in letters if r["_partition"] == 0))  # fmt: skip


def _decode(settings: Settings, batch: Batch, *, beside: pa.Schema | None = None) -> Any:
    """As the worker decodes: against the table's schema plus what earlier, uncommitted batches added."""
    table = DeltaWriter({}).open(settings.lake.table_uri("bronze", "t"))
    known = pa.schema(table.schema().to_arrow()) if table is not None else None  # type: ignore[arg-type]
    if beside is not None:
        known = beside if known is None else pa.unify_schemas([known, beside])
    return decode(batch, options=DecodeOptions("json", known, 1 << 20))


def test_a_retry_that_decodes_differently_puts_each_record_in_exactly_one_place(tmp_path: Path) -> None:
    settings = Settings(lake={"uri": str(tmp_path)}, tables=[{"name": "t", "topics": [TOPIC], "format": "json"}])
    Lander(settings, DeltaWriter({})).land(_decode(settings, _batch(1, [{"id": 1}])))  # the table, without v
    mixed = [{"v": "a"}, {"v": 1}, {"v": "b"}, {"v": 2}]
    first = _decode(settings, _batch(0, mixed), beside=pa.schema([("v", pa.int64())]))
    assert sorted(d.message.offset for d in first.dead_letters) == [0, 2]  # text conflicts with the neighbour
    with pytest.raises(_Crash):
        Lander(settings, _CrashOnData({})).land(first)
    retry = _decode(settings, _batch(0, mixed))  # alone: the first type (text) wins, the numbers conflict
    assert sorted(d.message.offset for d in retry.dead_letters) == [1, 3]
    Lander(settings, DeltaWriter({})).land(retry)
    rows, letters = _places(settings)
    assert sorted(rows + letters) == [0, 1, 2, 3] and not set(rows) & set(letters)
    assert letters == [0, 1, 2, 3] and rows == []  # 0 and 2 as the first commit said; 1 and 3 now too


def test_a_smaller_retry_after_a_crash_keeps_the_watermark_and_every_record(tmp_path: Path) -> None:
    settings = Settings(lake={"uri": str(tmp_path)}, tables=[{"name": "t", "topics": [TOPIC], "format": "json"}])
    values = [{"v": "a"}, {"v": 1}, {"v": "b"}, {"v": "c"}, {"v": 2}, {"v": "d"}]
    with pytest.raises(_Crash):
        Lander(settings, _CrashOnData({})).land(_decode(settings, _batch(0, values)))
    for start in (0, 3):  # the retry lands the same range in two smaller batches
        Lander(settings, DeltaWriter({})).land(_decode(settings, _batch(0, values[start : start + 3], first=start)))
    rows, letters = _places(settings)
    assert sorted(rows + letters) == list(range(6)) and not set(rows) & set(letters)


def _items(values: list[Any], first: int, partition: int = 0) -> Batch:
    """Records of one partition of the ``items`` table; bytes are sent as they are (broken JSON)."""
    n, raw_values = len(values), [v if isinstance(v, bytes) else json.dumps(v).encode() for v in values]
    raw = RawBatch(topic=TOPIC, partition=partition, offsets=list(range(first, first + n)), timestamps_ms=[0] * n,
                   keys=[None] * n, values=raw_values)  # fmt: skip
    return Batch(table="items", format="json", parts=(raw,), ranges={(TOPIC, partition): (first, first + n - 1)})


def _items_lake(tmp_path: Path, first: dict[str, Any]) -> tuple[Settings, str, pa.Schema]:
    settings = Settings(lake={"uri": str(tmp_path)}, tables=[{"name": "items", "topics": [TOPIC], "format": "json"}])
    uri = settings.lake.table_uri("bronze", "items")
    Lander(settings, DeltaWriter({})).land(decode(_items([first], 0), options=DecodeOptions("json")))
    return settings, uri, pa.schema(DeltaWriter({}).open(uri).schema().to_arrow())  # type: ignore[union-attr, arg-type]


def test_a_zombies_overlapping_batch_writes_no_dead_letter_twice(tmp_path: Path) -> None:
    """B landed offsets 1..2 (a refused widening, a broken record); a zombie that decoded 1..4
    earlier lands its batch after: only 3 and 4 are new, and no dead letter or alert repeats."""
    settings, uri, known = _items_lake(tmp_path, {"n": 2**62 + 1})
    mine: list[Any] = [{"n": 1.5}, b'{"n": 2, broken']
    zombie = decode(_items([*mine, {"n": 3}, {"n": 4}], 1), options=DecodeOptions("json", known))
    Lander(settings, DeltaWriter({})).land(decode(_items(mine, 1), options=DecodeOptions("json", known)))
    result = Lander(settings, DeltaWriter({})).land(zombie)
    assert result.conflicts == () and result.rows == 2
    letters = read_table(settings.lake.table_uri("ops", "dead_letters")).to_pylist()
    assert sorted((r["_offset"], r["stage"]) for r in letters) == [(1, "schema"), (2, "decode")]
    assert sorted(read_table(uri)["_offset"].to_pylist()) == [0, 3, 4]


def test_a_column_another_worker_created_with_another_type_is_a_conflict_once_across_a_crash(tmp_path: Path) -> None:
    """B decoded ``c`` as text; A created ``c`` as a number first. B's text never becomes a number
    nor the column text: that record is a ``schema`` dead letter, its neighbour without ``c``
    lands, and a crash between the two commits changes neither."""
    settings, uri, known = _items_lake(tmp_path, {"id": 0})
    b_batch = _items([{"id": 1, "c": "abc"}, {"id": 2}], 1)
    decoded_by_b = decode(b_batch, options=DecodeOptions("json", known))
    a_batch = _items([{"id": 3, "c": 7}], 0, partition=1)  # worker A, another partition
    Lander(settings, DeltaWriter({})).land(decode(a_batch, options=DecodeOptions("json", known)))
    with pytest.raises(_Crash):
        Lander(settings, _CrashOnData({})).land(decoded_by_b)
    now_known = pa.schema(DeltaWriter({}).open(uri).schema().to_arrow())  # type: ignore[union-attr, arg-type]
    Lander(settings, DeltaWriter({})).land(decode(b_batch, options=DecodeOptions("json", now_known)))
    letters = read_table(settings.lake.table_uri("ops", "dead_letters")).to_pylist()
    assert [(r["_offset"], r["stage"]) for r in letters] == [(1, "schema")]
    bronze = read_table(uri)
    assert {(r["_partition"], r["_offset"]): r["c"] for r in bronze.to_pylist()} == {(0, 0): None, (0, 2): None,
                                                                                      (1, 0): 7}  # fmt: skip
    assert bronze.schema.field("c").type == pa.int64()


def test_a_number_is_never_written_as_text_into_a_column_another_worker_made_text(tmp_path: Path) -> None:
    """Delta's schema merge would cast B's ``5`` to ``'5'`` in the text column A created first: the
    table's types are checked at commit time, so it is a ``schema`` dead letter instead."""
    settings, uri, known = _items_lake(tmp_path, {"id": 0})
    decoded_by_b = decode(_items([{"id": 1, "c": 5}, {"id": 2}], 1), options=DecodeOptions("json", known))
    Lander(settings, DeltaWriter({})).land(decode(_items([{"id": 3, "c": "x"}], 0, partition=1),
                                                  options=DecodeOptions("json", known)))  # fmt: skip
    result = Lander(settings, DeltaWriter({})).land(decoded_by_b)
    assert [c.record for c in result.conflicts] == [(TOPIC, 0, 1)]
    bronze = read_table(uri)
    assert {(r["_partition"], r["_offset"]): r["c"] for r in bronze.to_pylist()} == {(0, 0): None, (0, 2): None,
                                                                                      (1, 0): "x"}  # fmt: skip
