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
