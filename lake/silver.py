"""Silver: the current state of a CDC table, applied incrementally from bronze.

The rule: for each key, the change with the highest source position (``changes.POSITION``: the
LSN, else the Kafka offset) wins, whatever order changes land in and however they are split across
bronze commits and runs. A change at or below a position the key already reached — its row in
silver, its remembered delete, or a truncate of its scope — changes nothing and is counted stale.

Commit order of one chunk (bronze versions ``start..end``; a run applies chunks until caught up):

1. Read silver's watermark (the app transaction ``lakeport-silver:bronze.<t>``) and bronze's
   version; the chunk is the next whole versions after the watermark, about ``chunk_rows`` rows.
2. Read the chunk's change feed and, for its keys only, their silver rows and remembered deletes
   (``ops.<t>_deleted_keys``); truncate marks are app transactions of silver's log. Decide per key.
3. Remember the chunk's winning deletes: upsert (key → delete position) into the deleted-keys
   table when higher. Monotone and idempotent: a crash after it only repeats it. A delete equal
   to its remembered position is applied again, so step 5 is never skipped.
4. ``source_key`` tables: give new keys their ``lake_id`` (fenced, see :mod:`lake.keys`).
5. One silver commit: a MERGE of the winners (upserts and deletes), the removal of rows a new
   truncate covers (position below it, within its scope), the new watermark, and the new truncate
   marks. A chunk with nothing to change commits only the watermark, so progress is always
   recorded. Readers never see a truncate without the changes after it.

Every silver commit carries the watermark app transaction, so two runs at once conflict: the loser
starts again at step 1 and finds the chunk applied. After the last chunk, remembered deletes older
than ``delete_retention`` are forgotten; a replay older than a forgotten delete re-inserts its key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import structlog
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from lakeport.lake import changes as cf
from lakeport.lake import evolve, keys
from lakeport.lake.decide import Decision, decide
from lakeport.lake.errors import KeyMissing
from lakeport.lake.tables import literal, open_table, quote

log = structlog.get_logger("lakeport.silver")
SILVER_FILE_BYTES = 4 * 1024 * 1024  # key-clustered files, so a MERGE touches few of them
DELETE_RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class SilverResult:
    table: str
    from_version: int | None  # first bronze version read (None: nothing new)
    to_version: int  # bronze version applied up to
    changes: int  # bronze rows read
    keys: int  # distinct keys changed
    version: int | None  # silver version written last (None: no commit)
    truncated: bool
    seconds: float
    files_rewritten: int = 0  # silver files replaced by MERGEs (the rest stay untouched)
    files_added: int = 0
    stale: int = 0  # changes at or below a position already applied (replays, duplicates)
    chunks: int = 0  # commits made (one per chunk of bronze versions)
    deletes_forgotten: int = 0  # remembered deletes older than the retention, dropped this run
    toast_unavailable: int = 0  # values left NULL: unchanged TOAST with no earlier value (see _toast_unavailable)


def app_id(name: str) -> str:
    return f"lakeport-silver:bronze.{name}"


def apply_changes(
    name: str,
    bronze_uri: str,
    silver_uri: str,
    *,
    key: Sequence[str],
    storage_options: dict[str, str] | None = None,
    source_key: Sequence[str] = (),
    key_map_uri: str | None = None,
    deleted_keys_uri: str | None = None,
    delete_retention: timedelta = DELETE_RETENTION,
    chunk_rows: int = cf.CHUNK_ROWS,
) -> SilverResult:
    """Bring ``silver.<name>`` up to date with ``bronze.<name>``; returns what was done.

    With ``source_key`` the silver key is (source fields, ``key``) and, given ``key_map_uri``,
    every row carries a stable ``lake_id`` (:mod:`lake.keys`)."""
    started = time.monotonic()
    opts = storage_options or None
    deleted_uri = deleted_keys_uri or f"{silver_uri.rstrip('/')}__deleted_keys"
    silver_key = keys.silver_key(key, source_key)

    def step() -> dict[str, int] | None:
        return _apply_chunk(
            name, bronze_uri, silver_uri, deleted_uri, silver_key, source_key, key_map_uri, opts, chunk_rows
        )

    done, to_version = cf.until_caught_up(
        step, bronze_uri=bronze_uri, target_uri=silver_uri, app=app_id(name), name=name, storage_options=opts
    )
    forgotten = _forget_old_deletes(deleted_uri, delete_retention, opts)
    result = SilverResult(
        table=name,
        from_version=done[0]["start"] if done else None,
        to_version=to_version,
        changes=cf.total(done, "rows"),
        keys=cf.total(done, "keys"),
        version=done[-1]["version"] if done else None,
        truncated=bool(cf.total(done, "truncated")),
        seconds=time.monotonic() - started,
        files_rewritten=cf.total(done, "num_target_files_removed"),
        files_added=cf.total(done, "num_target_files_added"),
        stale=cf.total(done, "stale"),
        chunks=len(done),
        deletes_forgotten=forgotten,
        toast_unavailable=cf.total(done, "toast_unavailable"),
    )
    if result.chunks:
        log.info("silver_applied", **{k: v for k, v in result.__dict__.items() if k != "seconds"})
    return result


def _apply_chunk(
    name: str,
    bronze_uri: str,
    silver_uri: str,
    deleted_uri: str,
    key: list[str],
    source_key: Sequence[str],
    key_map_uri: str | None,
    opts: dict[str, str] | None,
    chunk_rows: int,
) -> dict[str, int] | None:
    bronze, silver = open_table(bronze_uri, opts), open_table(silver_uri, opts)  # step 1
    if bronze is None:
        return None
    done = silver.transaction_version(app_id(name)) if silver is not None else None
    start, end = (0 if done is None else done + 1), bronze.version()
    if start > end:
        return None
    chunk = next(cf.chunks(bronze, start, end, name=name, max_rows=chunk_rows))
    rows = chunk.rows  # step 2
    if "_op" in rows.column_names:
        rows = rows.filter(pa.compute.is_valid(rows["_op"]))  # tombstones carry no state
    if rows.num_rows and "_op" in rows.column_names:
        rows = keys.with_source_columns(rows, source_key, table=name)
        missing = [k for k in key if k not in rows.column_names]
        if missing:
            raise KeyMissing(f"key column(s) {missing} are not in bronze", table=name, versions=(start, chunk.end))
    else:
        rows = rows.slice(0, 0) if "_op" in rows.column_names else None  # type: ignore[assignment]
    deleted = open_table(deleted_uri, opts)
    decision = decide(rows, name=name, key=key, scope=keys.silver_key((), source_key), silver=silver, deleted=deleted)
    if decision.deletes.num_rows:  # step 3
        _remember_deletes(decision.deletes, deleted, deleted_uri, key, opts, name)
    winners = decision.winners
    if key_map_uri is not None and winners.num_rows:  # step 4
        winners, _ = keys.assign_lake_ids(winners, key_map_uri, key, storage_options=opts)
    txns = [Transaction(app_id=app_id(name), version=chunk.end)]
    txns += [Transaction(app_id=aid, version=pos) for aid, (_, pos) in decision.new_marks.items()]
    commit = CommitProperties(app_transactions=txns)
    if silver is None:
        silver = cf.create_once(silver_uri, decision.schema(winners), storage_options=opts, name=name)
    metrics: dict[str, int] = {}
    if winners.num_rows:  # a column bronze widened (a source type change): silver first (evolve)
        evolve.widen_to(silver, winners.schema)
    if winners.num_rows and not decision.existing and not decision.new_marks:  # step 5: new keys only
        metrics = _append(silver, winners, key, commit)
    elif winners.num_rows or decision.new_marks:  # step 5
        metrics = _merge(silver, winners, key, decision, commit)
    cf.record_progress(silver, txns)
    return {
        **metrics,
        "start": start,
        "end": chunk.end,
        "version": silver.version(),
        "rows": chunk.rows.num_rows,
        "keys": decision.winners.num_rows,
        "stale": decision.stale,
        "toast_unavailable": cf.unavailable(decision.winners),
        "truncated": int(bool(decision.new_marks)),
    }


def _merge(
    silver: DeltaTable, winners: pa.Table, key: list[str], decision: Decision, commit: CommitProperties
) -> dict[str, int]:
    source = _conform(winners, silver).sort_by([(k, "ascending") for k in key]) if winners.num_rows else winners
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in key)
    merge = (
        silver.merge(source, on, source_alias="s", target_alias="t", merge_schema=True, commit_properties=commit)
        .when_matched_delete(predicate="s._op = 'd'")
        .when_matched_update_all(predicate="s._op <> 'd'")
        .when_not_matched_insert_all(predicate="s._op <> 'd'")
    )
    if decision.new_marks:  # a new truncate removes the older rows of its scope, in this same commit
        covered = " OR ".join(
            f"({cf.scope_predicate(scope, alias='t.')} AND coalesce(t._source_lsn, t._offset) < {pos})"
            for scope, pos in decision.new_marks.values()
        )
        merge = merge.when_not_matched_by_source_delete(predicate=covered)
    return {k: int(v) for k, v in merge.execute().items() if isinstance(v, int)}


def _append(silver: DeltaTable, winners: pa.Table, key: list[str], commit: CommitProperties) -> dict[str, int]:
    """Every winner is a key silver does not hold (a snapshot, a backlog of inserts): append them,
    key-clustered, without reading silver. A concurrent run conflicts on the watermark."""
    rows = winners.filter(pa.compute.not_equal(winners["_op"], "d"))
    if rows.num_rows:
        rows = _conform(rows, silver).sort_by([(k, "ascending") for k in key])
        write_deltalake(silver, rows, mode="append", schema_mode="merge", commit_properties=commit,
                        target_file_size=SILVER_FILE_BYTES)  # fmt: skip
    return {"num_target_files_added": 1 if rows.num_rows else 0}


def _conform(rows: pa.Table, silver: DeltaTable) -> pa.Table:
    """Columns silver has but this chunk lacks (a column dropped at the source) become nulls."""
    schema = silver.schema().to_arrow()
    schema = pa.schema(schema) if not isinstance(schema, pa.Schema) else schema
    for field in schema:
        if field.name not in rows.column_names:
            rows = rows.append_column(field.name, pa.nulls(rows.num_rows, pa.field(field.name, field.type).type))
    return rows


def _remember_deletes(
    deletes: pa.Table, deleted: DeltaTable | None, uri: str, key: list[str], opts: dict[str, str] | None, name: str
) -> None:
    rows = deletes.append_column(
        "_deleted_at", pa.array([datetime.now(UTC)] * deletes.num_rows, pa.timestamp("us", "UTC"))
    )
    table = deleted or cf.create_once(uri, rows.schema, storage_options=opts, name=name)
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in key)
    (
        table.merge(rows, on, source_alias="s", target_alias="t")
        .when_matched_update_all(predicate="s._position > t._position")
        .when_not_matched_insert_all()
        .execute()
    )


def _forget_old_deletes(uri: str, retention: timedelta, opts: dict[str, str] | None) -> int:
    table = open_table(uri, opts)
    if table is None:
        return 0
    cutoff = (datetime.now(UTC) - retention).strftime("%Y-%m-%d %H:%M:%S.%f")
    with duckdb.connect() as con:  # closed here, never by the garbage collector
        con.register("d", table.to_pyarrow_dataset())
        old = con.execute(
            f"SELECT count(*) FROM d WHERE _deleted_at < TIMESTAMPTZ {literal(cutoff + '+00')}"
        ).fetchone()
        if not old or not old[0]:
            return 0
        table.delete(f"_deleted_at < '{cutoff}'")
        return int(old[0])
