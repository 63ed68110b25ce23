"""Landing one decoded batch in bronze. The commit order (the only place it is written down):

1. The loop decodes records as they are polled (while the writer thread commits the previous
   batch) and guards them (input limits, column rules); bad records become dead-letter rows.
   It buffers until a flush is due and hands the batch to :meth:`Lander.land`.
2. Re-read both Delta logs (a table that does not exist yet is first created empty, by exactly
   one creator: nobody ever appends to a table it has not read; a batch bringing a column in a
   lossless wider type first widens the table, in one commit that keeps every app transaction:
   :mod:`lake.evolve`; a widening that would change stored values, such as a bigint beyond 2**53
   as a double, is refused). Every row is then checked against the table's types as they are
   now: values that fit exactly land in them, the others (a refused widening, a type another
   worker gave a new column first) become ``schema`` dead letters, re-encoded as JSON; Delta's
   schema merge never casts them. Rows and dead letters at or
   below the offsets recorded there (app transactions) were landed already — by a previous life
   of this worker or by another one — and are dropped, which makes every step below idempotent.
3. Append the dead letters to ``ops.dead_letters`` with one app transaction per partition. If
   that watermark already reaches into the batch (an attempt of the same range crashed between
   this step and the next), the records it holds stay dead letters and are dropped from the rows,
   and only the others are appended: each record lands in exactly one of the two tables, however
   differently this attempt decoded.
4. Append the rows to the table with one app transaction per partition (``version`` = last offset
   of the batch), also when no row is left, so the position moves past all-bad runs. Rows the
   table refuses (a type it cannot merge) go to dead letters under their own app id
   (``lakeport-rejected``), and the empty commit still moves the position.
5. Only then does the loop commit ``last + 1`` to Kafka, for lag monitoring. Positions are never
   read from Kafka: on assignment a worker seeks to the offsets in the table's Delta log.

A crash between any two steps re-reads the batch and lands each record exactly once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pyarrow as pa

from lakeport.ingestion import arrow_types, dead_letters, offsets
from lakeport.ingestion.records import CommitResult, DeadLetter, Decoded, Record, keys_as_stored, letters_from_rows
from lakeport.ingestion.writer import DeltaWriter, SchemaRejected, WriteOptions
from lakeport.settings import Settings

# Bronze tables record their change feed so downstream (silver) reads only new rows per version.
BRONZE_PROPERTIES = (("delta.enableChangeDataFeed", "true"),)
# Low-cardinality columns worth a Parquet dictionary; the row images mostly are not.
DICTIONARY_COLUMNS = ("_topic", "_partition", "_op", "_source_db", "_source_schema", "_source_table",
                      "_source_snapshot")  # fmt: skip
Ranges = dict[tuple[str, int], tuple[int, int]]  # (topic, partition) -> (first, last offset)


class Lander:
    """Steps 2 to 4, in the writer thread (its ``DeltaWriter`` is used by that thread only)."""

    def __init__(self, settings: Settings, writer: DeltaWriter) -> None:
        self.settings, self.writer = settings, writer

    def land(self, batch: Decoded) -> CommitResult:
        start, now = time.monotonic(), datetime.now(UTC)
        uri = self.settings.lake.table_uri("bronze", batch.table)
        table = self.writer.open_or_create(uri, batch.rows.schema, options=self.write_options(batch.table))
        landed = offsets.landed(table, batch.ranges)
        rows, skipped = offsets.drop_landed(batch.rows, landed, ranges=batch.ranges)
        todo = offsets.pending_ranges(batch.ranges, landed)
        letters, version = [d for d in batch.dead_letters if _within(d.record, todo)], None  # not landed yet
        rows, conflicts = self._fit(uri, rows, pa.schema(table.schema().to_arrow()), batch.table)  # type: ignore[arg-type]
        letters += conflicts
        if todo:
            held = self._dead_letters(letters, todo, now, app="lakeport")
            if held:  # an earlier attempt of this range made them dead letters: they stay only there
                rows = dead_letters.without(rows, held)
            try:
                version = self._append(uri, rows, todo, batch.table)
            except SchemaRejected as exc:  # the table cannot take these rows: dead letters too
                rejected = letters_from_rows(batch.table, rows, [str(exc)] * rows.num_rows, stage="write")
                self._dead_letters(rejected, todo, now, app="lakeport-rejected")
                letters += rejected
                rows = rows.slice(0, 0)
                version = self._append(uri, rows, todo, batch.table)
        return CommitResult(
            table=batch.table,
            version=version,
            rows=rows.num_rows,
            dead_letters=len(letters),
            skipped_duplicates=skipped,
            messages=batch.messages,
            raw_bytes=batch.raw_bytes,
            seconds=time.monotonic() - start,
            next_offsets={tp: last + 1 for tp, (_, last) in batch.ranges.items()},
            conflicts=tuple(conflicts),
        )

    def _fit(self, uri: str, rows: pa.Table, stored: pa.Schema, table: str) -> tuple[pa.Table, list[DeadLetter]]:
        """The rows in the table's types, exactly, after widening the table where a source type
        widened; the rest are conflicts (stage ``schema``): values of a widening the table refused
        (it would change stored values), or of a type another worker gave a new column first."""
        rows = keys_as_stored(rows, stored)
        wider = arrow_types.widenings(stored, rows.schema) if rows.num_rows else {}  # none left: nothing to widen
        refused = self._widen(uri, wider, table) if wider else {}
        handle = self.writer.open(uri) if wider else None
        stored = pa.schema(handle.schema().to_arrow()) if handle is not None else stored  # type: ignore[arg-type]
        fitted, misfits = arrow_types.conform_rows(rows, stored, narrow=True)
        why = f" (the table refused to widen: {'; '.join(refused.values())})" if refused else ""
        at = sorted(misfits)
        return fitted, letters_from_rows(
            table, rows.take(pa.array(at, pa.int64())), [misfits[i] + why for i in at], stage="schema"
        )

    def _widen(self, uri: str, wider: dict[str, pa.DataType], table: str) -> dict[str, str]:
        """Widen the table (one commit); if that would change stored values, column by column.
        Returns the columns refused, with why."""
        try:
            self.writer.widen(uri, wider, table=table)
            return {}
        except SchemaRejected as exc:
            if len(wider) == 1:
                return {next(iter(wider)): str(exc)}
        refused = {}
        for column, dtype in wider.items():
            try:
                self.writer.widen(uri, {column: dtype}, table=table)
            except SchemaRejected as exc:
                refused[column] = str(exc)
        return refused

    def write_options(self, table: str) -> WriteOptions:
        ing, config = self.settings.ingest, self.settings.table(table)
        return WriteOptions(
            partition_by=tuple(config.partition_by),
            target_file_size=ing.target_file_size,
            compression=ing.compression,
            dictionary="all" if ing.parquet_dictionary == "all" else (*DICTIONARY_COLUMNS, *config.partition_by),
            configuration=BRONZE_PROPERTIES,
        )

    def _append(self, uri: str, rows: pa.Table, todo: Ranges, table: str) -> int:
        txns = offsets.transactions(todo)
        return self.writer.append(
            uri, rows, transactions=txns, options=self.write_options(table), table_name=table
        ).version

    def _dead_letters(self, letters: list[DeadLetter], todo: Ranges, now: datetime, *, app: str) -> set[Record]:
        """Append the dead letters ``ops.dead_letters`` does not hold yet, by exact record. Returns
        the records of ``todo`` it held already: only after an attempt of the same range crashed
        between its two commits (the per-partition watermark then reaches into ``todo``), which
        may have decoded differently. Whether a record is a dead letter then stays what the first
        commit said, so it is in exactly one of the two tables whatever this decode says."""
        uri = self.settings.lake.table_uri(dead_letters.LAYER, dead_letters.TABLE)
        mine = {(d.message.topic, d.message.partition) for d in letters} & set(todo)
        table = self.writer.open(uri)
        marks = offsets.landed(table, todo, app=app) if table is not None else {}
        other = "lakeport-rejected" if app == "lakeport" else "lakeport"  # either may hold records of todo
        theirs = offsets.landed(table, todo, app=other) if table is not None else {}
        seen = {tp: max([m for m in (marks.get(tp), theirs.get(tp)) if m is not None], default=None) for tp in todo}
        again = {tp: (todo[tp][0], min(mark, todo[tp][1])) for tp, mark in seen.items()
                 if mark is not None and mark >= todo[tp][0]}  # fmt: skip
        held = dead_letters.held(table, again) if table is not None and again else set()
        fresh = [d for d in letters if d.record not in held and (d.message.topic, d.message.partition) in mine]
        if fresh:
            table = self.writer.open_or_create(uri, dead_letters.SCHEMA)
            rows = keys_as_stored(dead_letters.to_table(fresh, now=now), pa.schema(table.schema().to_arrow()))  # type: ignore[arg-type]
            ranges = {tp: (todo[tp][0], max(todo[tp][1], marks.get(tp) or -1)) for tp in mine}  # never backwards
            self.writer.append(uri, rows, transactions=offsets.transactions(ranges, app=app),
                               table_name="ops.dead_letters")  # fmt: skip
        return held


def _within(record: Record, todo: Ranges) -> bool:
    span = todo.get((record[0], record[1]))
    return span is not None and span[0] <= record[2] <= span[1]
