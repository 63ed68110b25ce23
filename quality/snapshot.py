"""What a suite validates: one Delta version of a table, whole (silver) or only what is new since
the last validated version (bronze), with the Kafka offsets that version claims to hold.

Bronze is append-only and its log records, per partition, the last offset landed (app
transactions). The new rows of version V over version P are exactly those above P's offsets, so
an incremental check reads them with a filter instead of diffing files (compaction rewrites
files but never changes offsets). Offsets advanced between P and V must equal the new rows plus
the dead letters of that range: that is the row-count sanity check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

TP = tuple[str, int]
APP = "lakeport"


@dataclass(frozen=True)
class Snapshot:
    layer: str
    table: str
    version: int
    since_version: int | None  # bronze: new rows above this version's offsets (None: all)
    rows: pa.Table
    offsets_advanced: int | None = None  # bronze: sum over partitions of offsets moved
    dead_letters: pa.Table | None = None  # bronze: this table's dead letters in the same range
    partitions: dict[TP, tuple[int | None, int]] = field(default_factory=dict)  # tp -> (before, now)


def open_at(uri: str, storage_options: dict[str, str] | None, version: int | None = None) -> DeltaTable | None:
    try:
        table = DeltaTable(uri, storage_options=storage_options or None)
    except TableNotFoundError:
        return None
    if version is not None and version != table.version():
        table.load_as_version(version)
    return table


def _partitions(rows: ds.Dataset, letters: pa.Table | None) -> set[TP]:
    found = rows.to_table(columns=["_topic", "_partition"]).group_by(["_topic", "_partition"]).aggregate([])
    tps = set(zip(found["_topic"].to_pylist(), found["_partition"].to_pylist(), strict=True))
    if letters is not None and letters.num_rows:
        tps |= set(zip(letters["_topic"].to_pylist(), letters["_partition"].to_pylist(), strict=True))
    return tps


def _above(marks: dict[TP, int | None]) -> pc.Expression | None:
    """Rows above the given offsets (partitions with None: every row)."""
    expr = None
    for (topic, partition), mark in marks.items():
        term = (pc.field("_topic") == topic) & (pc.field("_partition") == partition)
        if mark is not None:
            term = term & (pc.field("_offset") > mark)
        expr = term if expr is None else expr | term
    return expr


def _letters_for(letters_uri: str, storage_options: dict[str, str] | None, table: str) -> pa.Table | None:
    dl = open_at(letters_uri, storage_options)
    if dl is None:
        return None
    data = dl.to_pyarrow_dataset().to_table(filter=pc.field("table_name") == table)
    return data.drop_columns(["_value"])


def bronze(
    uri: str,
    *,
    table: str,
    letters_uri: str,
    since_version: int | None,
    storage_options: dict[str, str] | None,
    columns: list[str] | None = None,
) -> Snapshot | None:
    """The rows of ``bronze.<table>`` new since ``since_version`` (all rows if None), at the latest version."""
    now = open_at(uri, storage_options)
    if now is None:
        return None
    version = now.version()
    data = now.to_pyarrow_dataset()
    letters = _letters_for(letters_uri, storage_options, table)
    tps = _partitions(data, letters)
    before_table = open_at(uri, storage_options, since_version) if since_version is not None else None
    before = {tp: before_table.transaction_version(f"{APP}:{tp[0]}:{tp[1]}") if before_table else None for tp in tps}
    after = {tp: now.transaction_version(f"{APP}:{tp[0]}:{tp[1]}") for tp in tps}
    wanted = _above(before)
    rows = data.to_table(columns=columns, filter=wanted) if wanted is not None else data.to_table(columns=columns)
    new_letters = letters.filter(wanted) if letters is not None and wanted is not None else letters
    if new_letters is not None and after:  # not the letters of batches this version does not hold yet
        done = pc.field("_offset") < 0
        for (topic, partition), mark in after.items():
            if mark is not None:
                tp_expr = (pc.field("_topic") == topic) & (pc.field("_partition") == partition)
                done = done | (tp_expr & (pc.field("_offset") <= mark))
        new_letters = new_letters.filter(done)
    advanced = 0
    for tp, mark in after.items():
        if mark is None:
            continue
        start = before.get(tp)
        if start is None:  # first check: from the first offset this table has seen
            first = _first_offset(data, letters, tp)
            start = (first - 1) if first is not None else mark
        advanced += mark - start
    spans = {tp: (before.get(tp), mark) for tp, mark in after.items() if mark is not None}
    return Snapshot("bronze", table, version, since_version, rows, advanced, new_letters, spans)


def _first_offset(data: ds.Dataset, letters: pa.Table | None, tp: TP) -> int | None:
    where = (pc.field("_topic") == tp[0]) & (pc.field("_partition") == tp[1])
    found = [pc.min(data.to_table(columns=["_offset"], filter=where)["_offset"]).as_py()]
    if letters is not None and letters.num_rows:
        found.append(pc.min(letters.filter(where)["_offset"]).as_py())
    values = [v for v in found if v is not None]
    return min(values) if values else None


def whole(uri: str, *, layer: str, table: str, storage_options: dict[str, str] | None) -> Snapshot | None:
    """Every row of ``<layer>.<table>`` at its latest version."""
    now = open_at(uri, storage_options)
    if now is None:
        return None
    return Snapshot(layer, table, now.version(), None, now.to_pyarrow_dataset().to_table())


def key_column(uri: str, *, column: str, storage_options: dict[str, str] | None) -> pa.Array | None:
    """One column of a table at its latest version (the referenced keys of an integrity rule)."""
    now = open_at(uri, storage_options)
    if now is None:
        return None
    return now.to_pyarrow_dataset().to_table(columns=[column])[column].combine_chunks()
