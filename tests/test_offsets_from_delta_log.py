"""The Delta log's app transactions say what landed; rows at or below them are dropped."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from lakeport.ingestion import offsets
from lakeport.ingestion.writer import DeltaWriter


def rows(tp_offsets: list[tuple[str, int, int]]) -> pa.Table:
    return pa.table(
        {
            "_topic": [t for t, _, _ in tp_offsets],
            "_partition": pa.array([p for _, p, _ in tp_offsets], pa.int32()),
            "_offset": pa.array([o for _, _, o in tp_offsets], pa.int64()),
        }
    )


def test_commit_carries_one_transaction_per_partition(tmp_path: Path) -> None:
    writer = DeltaWriter({})
    uri = str(tmp_path / "bronze" / "t")
    assert offsets.next_offsets(writer.open(uri), [("t", 0)]) == {("t", 0): None}
    ranges = {("t", 0): (0, 9), ("t", 1): (3, 4)}
    data = rows([("t", 0, i) for i in range(10)] + [("t", 1, 3), ("t", 1, 4)])
    writer.open_or_create(uri, data.schema)  # version 0: the empty table
    metrics = writer.append(uri, data, transactions=offsets.transactions(ranges))
    assert metrics.version == 1 and metrics.rows == 12
    table = writer.open(uri)
    assert offsets.next_offsets(table, [("t", 0), ("t", 1), ("t", 2)]) == {("t", 0): 10, ("t", 1): 5, ("t", 2): None}
    # an empty commit still moves the position (a run of dead letters only)
    writer.append(uri, data.slice(0, 0), transactions=offsets.transactions({("t", 1): (5, 8)}))
    assert offsets.landed(writer.open(uri), [("t", 1)]) == {("t", 1): 8}
    assert writer.open(uri).count() == 12  # type: ignore[union-attr]


def test_pending_ranges_skip_what_landed() -> None:
    ranges = {("t", 0): (0, 9), ("t", 1): (0, 9), ("t", 2): (5, 9)}
    landed = {("t", 0): 9, ("t", 1): 4, ("t", 2): None}
    assert offsets.pending_ranges(ranges, landed) == {("t", 1): (5, 9), ("t", 2): (5, 9)}


@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 50)), max_size=60),
    st.dictionaries(st.integers(0, 2), st.integers(-1, 50)),
)
def test_drop_landed_keeps_exactly_the_unlanded_rows(records: list[tuple[int, int]], marks: dict[int, int]) -> None:
    table = rows([("t", p, o) for p, o in records])
    already = {("t", p): m for p, m in marks.items()}
    kept, dropped = offsets.drop_landed(table, already)
    expected = [("t", p, o) for p, o in records if o > marks.get(p, -10)]
    got = list(
        zip(kept["_topic"].to_pylist(), kept["_partition"].to_pylist(), kept["_offset"].to_pylist(), strict=True)
    )
    assert got == expected and dropped == len(records) - len(expected)


class _LateReader(DeltaWriter):
    """A zombie's writer: its first look at the log happened before the table existed."""

    def __init__(self) -> None:
        super().__init__({})
        self.blind = True

    def open(self, uri: str, *, refresh: bool = True) -> object:  # type: ignore[override]
        if self.blind:
            self.blind = False
            return None
        return super().open(uri, refresh=refresh)


def test_a_zombie_that_found_no_table_cannot_land_a_batch_the_new_owner_created_it_with(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from lakeport.ingestion.landing import Lander
    from lakeport.ingestion.records import Decoded
    from lakeport.settings import Settings

    settings = Settings(lake={"uri": str(tmp_path / "lake")}, tables=[{"name": "t", "topics": ["t"]}])
    data = rows([("t", 0, i) for i in range(10)])
    data = data.append_column("_ingested_at", pa.array([datetime.now(UTC)] * 10, pa.timestamp("us", tz="UTC")))
    batch = Decoded(table="t", rows=data, dead_letters=(), ranges={("t", 0): (0, 9)}, messages=10, raw_bytes=0)
    Lander(settings, DeltaWriter({})).land(batch)  # the new owner creates the table with the batch
    zombie = Lander(settings, _LateReader()).land(batch)  # the old owner, which saw no table
    assert zombie.rows == 0 and zombie.skipped_duplicates == 10
    assert DeltaWriter({}).open(settings.lake.table_uri("bronze", "t")).count() == 10  # type: ignore[union-attr]
