"""Silver: the current state of a CDC table, applied incrementally from bronze by one MERGE.

A run reads only the bronze rows committed after the last applied bronze version (bronze's change
data feed), keeps the last change per key by source position (LSN, then Kafka offset), and
applies one MERGE: inserts, snapshot reads and updates upsert, deletes remove, and a truncate
clears the table first. The bronze version applied is committed in silver's own Delta log as an
app transaction, in the same commit as the MERGE, so a crash mid-run neither skips nor repeats.
A change older than the row already in silver (a replay) is ignored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lake import keys

UNAVAILABLE = "__debezium_unavailable_value"  # Debezium's placeholder for an unchanged TOAST value
KEPT_META = ("_op", "_source_lsn", "_source_ts_ms", "_topic", "_partition", "_offset")
SILVER_FILE_BYTES = 4 * 1024 * 1024  # key-clustered files, so a MERGE touches few of them
_CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


@dataclass(frozen=True)
class SilverResult:
    table: str
    from_version: int | None  # first bronze version read (None: nothing new)
    to_version: int  # bronze version applied up to
    changes: int  # bronze rows read
    keys: int  # distinct keys changed
    version: int | None  # silver version written (None: no commit)
    truncated: bool
    seconds: float
    files_rewritten: int = 0  # silver files replaced by the MERGE (the rest stay untouched)
    files_added: int = 0


def app_id(name: str) -> str:
    return f"lakeport-silver:bronze.{name}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def latest_changes(changes: pa.Table, key: Sequence[str]) -> pa.Table:
    """The last change per key, ordered by source position (LSN, then Kafka offset)."""
    if changes.num_rows == 0:
        return changes
    con = duckdb.connect()
    con.register("changes", changes)
    keys = ", ".join(_ident(k) for k in key)
    return con.execute(
        f"SELECT * EXCLUDE (__rn) FROM (SELECT *, row_number() OVER (PARTITION BY {keys} "
        "ORDER BY _source_lsn DESC NULLS LAST, _offset DESC) AS __rn FROM changes) WHERE __rn = 1"
    ).to_arrow_table()


def fill_unavailable_within(changes: pa.Table, key: Sequence[str]) -> pa.Table:
    """An unchanged TOAST placeholder takes the key's previous value from the same batch of
    changes (a placeholder with no earlier value in the batch is left for silver to fill)."""
    strings = [f.name for f in changes.schema if pa.types.is_string(f.type) and not f.name.startswith("_")]
    if not strings or changes.num_rows == 0:
        return changes
    con = duckdb.connect()
    con.register("changes", changes)
    hit = " OR ".join(f"{_ident(c)} = '{UNAVAILABLE}'" for c in strings)
    if not con.execute(f"SELECT count(*) FROM changes WHERE {hit}").fetchone()[0]:  # type: ignore[index]
        return changes
    keys = ", ".join(_ident(k) for k in key)
    window = (
        f"(PARTITION BY {keys} ORDER BY _source_lsn NULLS FIRST, _offset "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    )
    replaced = ", ".join(
        f"CASE WHEN {_ident(c)} = '{UNAVAILABLE}' THEN coalesce(last_value(nullif({_ident(c)}, '{UNAVAILABLE}') "
        f"IGNORE NULLS) OVER {window}, {_ident(c)}) ELSE {_ident(c)} END AS {_ident(c)}"
        for c in strings
    )
    return con.execute(f"SELECT * REPLACE ({replaced}) FROM changes").to_arrow_table()


def open_table(uri: str, storage_options: dict[str, str] | None) -> DeltaTable | None:
    try:
        return DeltaTable(uri, storage_options=storage_options or None)
    except TableNotFoundError:
        return None


def pending(
    bronze_uri: str, target_uri: str, app: str, storage_options: dict[str, str] | None
) -> tuple[DeltaTable | None, DeltaTable | None, int, int]:
    """(bronze, target, first bronze version not applied yet, latest bronze version); the target's
    log records the last bronze version it applied as the app transaction ``app``."""
    bronze = open_table(bronze_uri, storage_options)
    if bronze is None:
        return None, None, 0, -1
    target = open_table(target_uri, storage_options)
    done = target.transaction_version(app) if target is not None else None
    return bronze, target, 0 if done is None else done + 1, bronze.version()


def read_changes(bronze: DeltaTable, start: int, end: int) -> pa.Table:
    """Rows appended to bronze in versions ``start..end`` (its change data feed)."""
    reader = bronze.load_cdf(starting_version=start, ending_version=end)
    table = _plain_types(pa.table(reader.read_all()) if hasattr(reader, "read_all") else pa.table(reader))
    table = table.filter(pa.compute.equal(table["_change_type"], "insert"))
    return table.drop_columns([c for c in _CDF_COLUMNS if c in table.column_names])


def _plain(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_string_view(dtype) or pa.types.is_large_string(dtype):
        return pa.string()
    if pa.types.is_binary_view(dtype) or pa.types.is_large_binary(dtype):
        return pa.binary()
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in dtype])
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_list_view(dtype):
        return pa.list_(_plain(dtype.value_type))
    return dtype


def _plain_types(table: pa.Table) -> pa.Table:
    """The change feed comes with view types; silver (and Delta) want the plain ones."""
    schema = pa.schema([pa.field(f.name, _plain(f.type), f.nullable) for f in table.schema])
    return table if schema.equals(table.schema) else table.cast(schema)


def after_last_truncate(changes: pa.Table, scope: Sequence[str] = ()) -> tuple[pa.Table, list[dict[str, str]]]:
    """The changes after the last truncate (per ``scope``, e.g. per source database), and the
    scopes that were truncated (``[{}]``: the whole table)."""
    ops = changes["_op"]
    if not pa.compute.any(pa.compute.equal(ops, "t")).as_py():
        return changes, []
    con = duckdb.connect()
    con.register("changes", changes)
    cols = ", ".join(_ident(c) for c in scope)
    group = f"GROUP BY {cols}" if scope else ""
    using = f"LEFT JOIN t USING ({cols})" if scope else "LEFT JOIN t ON true"
    con.execute(f"CREATE TABLE t AS SELECT {cols + ',' if scope else ''} max(coalesce(_source_lsn, -1)) AS __lsn "
                f"FROM changes WHERE _op = 't' {group}")  # fmt: skip
    rows = con.execute(
        f"SELECT c.* FROM changes c {using} WHERE c._op <> 't' "
        "AND (t.__lsn IS NULL OR coalesce(c._source_lsn, -1) > t.__lsn)"
    ).to_arrow_table()
    scopes = con.execute(f"SELECT {cols or 'NULL AS none'} FROM t").fetchall()
    return rows, [dict(zip(scope, map(str, values), strict=False)) for values in scopes]


def truncate_predicate(scope: dict[str, str]) -> str | None:
    """A Delta predicate selecting the rows of one truncated scope (None: every row)."""
    if not scope:
        return None
    return " AND ".join(f"{_ident(k)} = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in scope.items())


def _silver_columns(rows: pa.Table, key: Sequence[str]) -> pa.Table:
    data = [c for c in rows.column_names if not c.startswith("_")]
    missing = [k for k in key if k not in data]
    if missing:
        raise ValueError(f"key column(s) {missing} not in the bronze table")
    return rows.select(data + [c for c in KEPT_META if c in rows.column_names])


def _fill_unavailable(latest: pa.Table, silver: DeltaTable | None, key: Sequence[str]) -> pa.Table:
    """Unchanged TOAST values arrive as a placeholder: keep what silver already holds."""
    strings = [f.name for f in latest.schema if pa.types.is_string(f.type) and not f.name.startswith("_")]
    if silver is None or not strings:
        return latest
    con = duckdb.connect()
    con.register("latest", latest)
    hit = " OR ".join(f"{_ident(c)} = '{UNAVAILABLE}'" for c in strings)
    if not con.execute(f"SELECT count(*) FROM latest WHERE {hit}").fetchone()[0]:  # type: ignore[index]
        return latest
    con.register("current", silver.to_pyarrow_dataset())
    replaced = ", ".join(
        f"CASE WHEN s.{_ident(c)} = '{UNAVAILABLE}' THEN t.{_ident(c)} ELSE s.{_ident(c)} END AS {_ident(c)}"
        for c in strings
        if c in silver.schema().to_arrow().names  # type: ignore[attr-defined]
    )
    on = " AND ".join(f"s.{_ident(k)} = t.{_ident(k)}" for k in key)
    return (
        con.execute(f"SELECT s.* REPLACE ({replaced}) FROM latest s LEFT JOIN current t ON {on}").to_arrow_table()
        if replaced
        else latest
    )


def apply_changes(
    name: str,
    bronze_uri: str,
    silver_uri: str,
    *,
    key: Sequence[str],
    storage_options: dict[str, str] | None = None,
    source_key: Sequence[str] = (),
    key_map_uri: str | None = None,
) -> SilverResult:
    """Bring ``silver.<name>`` up to date with ``bronze.<name>``; returns what was done.

    With ``source_key`` the silver key is (source fields, ``key``) and, given ``key_map_uri``,
    every row carries a stable ``lake_id`` (:mod:`lake.keys`)."""
    started = time.monotonic()
    bronze, silver, start, end = pending(bronze_uri, silver_uri, app_id(name), storage_options)
    if bronze is None or start > end:
        return SilverResult(name, None, end, 0, 0, None, False, time.monotonic() - started)
    changes = keys.with_source_columns(read_changes(bronze, start, end), source_key)
    key = keys.silver_key(key, source_key)
    rows = changes.filter(pa.compute.is_valid(changes["_op"]))  # tombstones carry no state
    scope = keys.silver_key((), source_key)
    rows, truncated = after_last_truncate(rows, scope)
    latest = _silver_columns(latest_changes(fill_unavailable_within(rows, key), key), key)
    if key_map_uri is not None:
        latest, _ = keys.assign_lake_ids(latest, key_map_uri, key, storage_options=storage_options)
    commit = CommitProperties(app_transactions=[Transaction(app_id=app_id(name), version=end)])
    if silver is not None:
        for truncated_scope in truncated:  # re-running after a crash here truncates again: same result
            silver.delete(truncate_predicate(truncated_scope))
    if silver is None:
        live = latest.filter(pa.compute.not_equal(latest["_op"], "d")) if latest.num_rows else latest
        live = live.sort_by([(k, "ascending") for k in key]) if live.num_rows else live  # key-clustered files
        write_deltalake(
            silver_uri,
            live,
            mode="append",
            storage_options=storage_options or None,
            commit_properties=commit,
            target_file_size=SILVER_FILE_BYTES,
        )
        metrics: dict[str, int] = {}
    else:
        latest = _fill_unavailable(latest, silver, key)
        on = " AND ".join(f"t.{_ident(k)} = s.{_ident(k)}" for k in key)
        newer = (
            "(coalesce(s._source_lsn, -1) > coalesce(t._source_lsn, -1) OR "
            "(s._source_lsn IS NULL AND t._source_lsn IS NULL AND s._offset > t._offset))"
        )
        metrics = (
            silver.merge(latest, on, source_alias="s", target_alias="t", merge_schema=True, commit_properties=commit)
            .when_matched_delete(predicate=f"s._op = 'd' AND {newer}")
            .when_matched_update_all(predicate=f"s._op <> 'd' AND {newer}")
            .when_not_matched_insert_all(predicate="s._op <> 'd'")
            .execute()
        )
    version = DeltaTable(silver_uri, storage_options=storage_options or None).version()
    return SilverResult(
        name,
        start,
        end,
        changes.num_rows,
        latest.num_rows,
        version,
        bool(truncated),
        time.monotonic() - started,
        int(metrics.get("num_target_files_removed", 0)),
        int(metrics.get("num_target_files_added", 0)),
    )
