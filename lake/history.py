"""History: ``silver.<name>_history``, a type-2 slowly changing dimension of a CDC table.

Every change opens a version of its key's row (``valid_from`` = the source commit time,
``_op`` = the op that opened it) and closes the previous one (``valid_to``, ``is_current``); a
delete only closes. One MERGE per run both closes the open versions and inserts the new ones,
and carries the applied bronze version as an app transaction, like silver. Replays (a change at or
before the key's current LSN) add nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from lake import keys
from lake.silver import after_last_truncate, fill_unavailable_within, pending, read_changes, truncate_predicate

VERSION_COLUMNS = ("valid_from", "valid_to", "is_current", "_op", "_source_lsn", "_offset")


@dataclass(frozen=True)
class HistoryResult:
    table: str
    to_version: int
    changes: int
    versions_opened: int
    version: int | None
    seconds: float


def app_id(name: str) -> str:
    return f"lakeport-history:bronze.{name}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _versions(changes: pa.Table, key: Sequence[str], current: pa.Table | None) -> pa.Table:
    """New versions with their validity, plus ``__close``: the first change per key, which
    closes the open version already in the table (if any)."""
    con = duckdb.connect()
    con.register("changes", changes)
    keys = ", ".join(_q(k) for k in key)
    data = [c for c in changes.column_names if not c.startswith("_")]
    cols = ", ".join(_q(c) for c in data)
    floor = "NULL::BIGINT AS cur_lsn"
    join = ""
    if current is not None and current.num_rows:
        con.register("cur", current)
        floor = "cur._source_lsn AS cur_lsn"
        join = "LEFT JOIN cur USING (" + keys + ")"
    return con.execute(f"""
        WITH c AS (
            SELECT DISTINCT ON ({keys}, _source_lsn) {cols}, _op, _source_lsn, _offset,
                   make_timestamp(_source_ts_ms * 1000) AT TIME ZONE 'UTC' AS valid_from
            FROM changes WHERE _op IS NOT NULL AND _op <> 't'
            ORDER BY {keys}, _source_lsn, _offset DESC
        ), fresh AS (
            SELECT c.*, {floor} FROM c {join}
        ), kept AS (
            SELECT * EXCLUDE (cur_lsn) FROM fresh WHERE cur_lsn IS NULL OR _source_lsn > cur_lsn
        ), ordered AS (
            SELECT *, lead(valid_from) OVER w AS valid_to, row_number() OVER w AS n
            FROM kept WINDOW w AS (PARTITION BY {keys} ORDER BY _source_lsn)
        )
        SELECT * EXCLUDE (n), (valid_to IS NULL AND _op <> 'd') AS is_current, n = 1 AS __close
        FROM ordered
    """).to_arrow_table()


def apply_history(
    name: str,
    bronze_uri: str,
    history_uri: str,
    *,
    key: Sequence[str],
    storage_options: dict[str, str] | None = None,
    source_key: Sequence[str] = (),
) -> HistoryResult:
    started = time.monotonic()
    bronze, history, start, end = pending(bronze_uri, history_uri, app_id(name), storage_options)
    if bronze is None or start > end:
        return HistoryResult(name, end, 0, 0, None, time.monotonic() - started)
    changes = keys.with_source_columns(read_changes(bronze, start, end), source_key)
    key = keys.silver_key(key, source_key)
    changes = changes.filter(pa.compute.is_valid(changes["_op"]))
    changes, truncated = after_last_truncate(changes, keys.silver_key((), source_key))
    if history is not None and truncated:
        history = _close_truncated(history, truncated, read_changes(bronze, start, end))
    changes = fill_unavailable_within(changes, key)
    current = None
    if history is not None:
        con = duckdb.connect()
        con.register("h", history.to_pyarrow_dataset())
        current = con.execute(
            f"SELECT {', '.join(_q(k) for k in key)}, _source_lsn FROM h WHERE is_current"
        ).to_arrow_table()
    versions = _versions(changes, key, current)
    # a delete only closes: it opens no version of its own
    opened = versions.filter(pa.compute.not_equal(versions["_op"], "d"))
    commit = CommitProperties(app_transactions=[Transaction(app_id=app_id(name), version=end)])
    if history is None:
        write_deltalake(
            history_uri,
            opened.drop_columns(["__close"]),
            mode="append",
            storage_options=storage_options or None,
            commit_properties=commit,
        )
    else:
        closers = versions.filter(versions["__close"]).select([*key, "valid_from"])
        source = _merge_source(opened.drop_columns(["__close"]), closers, key)
        on = " AND ".join(f"t.{_q(k)} = s.{_q('__mk_' + k)}" for k in key) + " AND t.is_current"
        (
            history.merge(source, on, source_alias="s", target_alias="t", merge_schema=True, commit_properties=commit)
            .when_matched_update({"valid_to": "s.valid_from", "is_current": "false"}, predicate="s.__close_only")
            .when_not_matched_insert(
                {c: f"s.{_q(c)}" for c in opened.column_names if c != "__close"}, predicate="NOT s.__close_only"
            )
            .execute()
        )
    version = DeltaTable(history_uri, storage_options=storage_options or None).version()
    return HistoryResult(name, end, changes.num_rows, opened.num_rows, version, time.monotonic() - started)


def _close_truncated(history: DeltaTable, scopes: list[dict[str, str]], changes: pa.Table) -> DeltaTable:
    """A truncate closes every open version of its scope at the truncate's commit time. (Versions
    opened and closed within the same run before the truncate are not kept.)"""
    truncates = changes.filter(pa.compute.equal(changes["_op"], "t"))
    ts_ms = pa.compute.max(truncates["_source_ts_ms"]).as_py() or int(time.time() * 1000)
    closed_at = f"arrow_cast({int(ts_ms) * 1000}, 'Timestamp(Microsecond, Some(\"UTC\"))')"
    for scope in scopes:
        predicate = " AND ".join(p for p in ("is_current", truncate_predicate(scope)) if p)
        history.update(predicate=predicate, updates={"valid_to": closed_at, "is_current": "false"})
    return history


def _merge_source(opened: pa.Table, closers: pa.Table, key: Sequence[str]) -> pa.Table:
    """Rows to insert (match key null) plus, per changed key, one row that closes its open version."""
    con = duckdb.connect()
    con.register("opened", opened)
    con.register("closers", closers)
    mk_open = ", ".join(f"NULL AS {_q('__mk_' + k)}" for k in key)
    mk_close = ", ".join(f"c.{_q(k)} AS {_q('__mk_' + k)}" for k in key)
    return con.execute(f"""
        SELECT o.*, {mk_open}, false AS __close_only FROM opened o
        UNION ALL BY NAME
        SELECT c.*, {mk_close}, true AS __close_only FROM closers c
    """).to_arrow_table()
