"""Deduplicated events: ``silver.<t>`` for a ``json`` table with a ``key`` (e.g. outbox domain
events keyed by ``event_id``), holding each event once however often it was delivered.

An event is immutable: the first copy to land (lowest Kafka position) is kept, and every later
copy — a replay after a connector restart, a duplicate send — adds nothing.

Commit order of one chunk (the watermark is the app transaction ``lakeport-events:bronze.<t>``):

1. Read the watermark and the next chunk of whole bronze versions.
2. One MERGE that inserts the chunk's events whose key silver does not hold yet, with the
   watermark; a chunk with nothing new commits the watermark alone. Two runs at once conflict on
   the watermark and the loser starts over.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, Transaction

from lakeport.lake import changes as cf
from lakeport.lake import evolve
from lakeport.lake.errors import KeyMissing
from lakeport.lake.tables import open_table, quote


@dataclass(frozen=True)
class EventsResult:
    table: str
    to_version: int
    changes: int  # bronze rows read
    keys: int  # events new to silver
    stale: int  # copies of events silver already held (or held twice in the chunk)
    version: int | None
    seconds: float
    chunks: int = 0


def app_id(name: str) -> str:
    return f"lakeport-events:bronze.{name}"


def apply_events(
    name: str,
    bronze_uri: str,
    silver_uri: str,
    *,
    key: Sequence[str],
    storage_options: dict[str, str] | None = None,
    chunk_rows: int = cf.CHUNK_ROWS,
) -> EventsResult:
    """Bring the deduplicated ``silver.<name>`` up to date with ``bronze.<name>``."""
    started = time.monotonic()
    opts = storage_options or None

    def step() -> dict[str, int] | None:
        return _apply_chunk(name, bronze_uri, silver_uri, list(key), opts, chunk_rows)

    done, to_version = cf.until_caught_up(
        step, bronze_uri=bronze_uri, target_uri=silver_uri, app=app_id(name), name=name, storage_options=opts
    )
    return EventsResult(
        table=name,
        to_version=to_version,
        changes=cf.total(done, "rows"),
        keys=cf.total(done, "new"),
        stale=cf.total(done, "stale"),
        version=done[-1]["version"] if done else None,
        seconds=time.monotonic() - started,
        chunks=len(done),
    )


def _apply_chunk(
    name: str, bronze_uri: str, silver_uri: str, key: list[str], opts: dict[str, str] | None, chunk_rows: int
) -> dict[str, int] | None:
    bronze, silver = open_table(bronze_uri, opts), open_table(silver_uri, opts)
    if bronze is None:
        return None
    done = silver.transaction_version(app_id(name)) if silver is not None else None
    start, end = (0 if done is None else done + 1), bronze.version()
    if start > end:
        return None
    chunk = next(cf.chunks(bronze, start, end, name=name, max_rows=chunk_rows))
    rows = chunk.rows
    if rows.num_rows and any(k not in rows.column_names for k in key):
        raise KeyMissing(f"key column(s) {key} are not in bronze", table=name, versions=(start, chunk.end))
    first = _first_copies(rows, key) if rows.num_rows else None
    txns = [Transaction(app_id=app_id(name), version=chunk.end)]
    new = 0
    if first is not None and first.num_rows:
        if silver is None:
            silver = cf.create_once(silver_uri, first.schema, storage_options=opts, name=name)
        else:  # a column bronze widened (a source type change): the events table first
            evolve.widen_to(silver, first.schema)
        on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in key)
        commit = CommitProperties(app_transactions=txns)
        metrics = (
            silver.merge(first, on, source_alias="s", target_alias="t", merge_schema=True, commit_properties=commit)
            .when_not_matched_insert_all()
            .execute()
        )
        new = int(metrics.get("num_target_rows_inserted", 0))
    elif silver is None:
        schema = rows.schema if rows.num_cols else pa.schema([("_offset", pa.int64())])
        silver = cf.create_once(silver_uri, cf.plain_schema(schema), storage_options=opts, name=name)
    cf.record_progress(silver, txns)
    return {
        "rows": rows.num_rows,
        "new": new,
        "stale": rows.num_rows - new,
        "end": chunk.end,
        "version": silver.version(),
    }


def _first_copies(rows: pa.Table, key: list[str]) -> pa.Table:
    """One row per key: the copy that landed first (by topic, partition, offset)."""
    keys = ", ".join(quote(k) for k in key)
    order = ", ".join(c for c in ("_topic", "_partition", "_offset") if c in rows.column_names) or keys
    with duckdb.connect() as con:  # closed here, never by the garbage collector
        con.register("c", rows)
        first = con.execute(
            f"SELECT * FROM c WHERE {' AND '.join(f'{quote(k)} IS NOT NULL' for k in key)} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1"
        ).to_arrow_table()
    return cf.plain_types(first)
