"""Offsets: the Delta log is the source of truth for what has landed.

Every commit of a batch carries one app transaction per Kafka partition in it, with
``app_id = "lakeport:<topic>:<partition>"`` and ``version = last offset landed``. A worker that is
assigned a partition resumes at ``version + 1``; rows at or below it are already in the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, Transaction

TP = tuple[str, int]


def app_id(topic: str, partition: int, *, app: str = "lakeport") -> str:
    return f"{app}:{topic}:{partition}"


def landed(table: DeltaTable | None, partitions: Iterable[TP], *, app: str = "lakeport") -> dict[TP, int | None]:
    """Last landed offset per partition (None: nothing from that partition yet)."""
    if table is None:
        return {tp: None for tp in partitions}
    return {tp: table.transaction_version(app_id(*tp, app=app)) for tp in partitions}


def next_offsets(table: DeltaTable | None, partitions: Iterable[TP]) -> dict[TP, int | None]:
    """Where to resume each partition (None: from the beginning, per ``auto.offset.reset``)."""
    return {tp: None if v is None else v + 1 for tp, v in landed(table, partitions).items()}


def transactions(ranges: Mapping[TP, tuple[int, int]], *, app: str = "lakeport") -> list[Transaction]:
    return [Transaction(app_id=app_id(t, p, app=app), version=last) for (t, p), (_, last) in sorted(ranges.items())]


def pending_ranges(ranges: Mapping[TP, tuple[int, int]], already: Mapping[TP, int | None]) -> dict[TP, tuple[int, int]]:
    """The part of each range not landed yet (partitions fully landed are left out)."""
    out = {}
    for tp, (first, last) in ranges.items():
        done = already.get(tp)
        if done is None or done < last:
            out[tp] = (first if done is None else max(first, done + 1), last)
    return out


def drop_landed(
    rows: pa.Table, already: Mapping[TP, int | None], *, ranges: Mapping[TP, tuple[int, int]] | None = None
) -> tuple[pa.Table, int]:
    """Remove rows whose (topic, partition, offset) is already in the table; return the count."""
    marks = {tp: v for tp, v in already.items() if v is not None}
    if not marks or rows.num_rows == 0:
        return rows, 0
    if ranges is not None:  # cheap common case: the batch starts after everything landed
        marks = {tp: v for tp, v in marks.items() if tp not in ranges or ranges[tp][0] <= v}
        if not marks:
            return rows, 0
    keep = None
    for (topic, partition), last in marks.items():
        mine = pc.and_(pc.equal(rows["_topic"], topic), pc.equal(rows["_partition"], partition))
        stale = pc.and_(mine, pc.less_equal(rows["_offset"], last))
        keep = pc.invert(stale) if keep is None else pc.and_(keep, pc.invert(stale))
    kept = rows.filter(keep)
    return kept, rows.num_rows - kept.num_rows
