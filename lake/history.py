"""History: ``silver.<name>_history``, a type-2 slowly changing dimension of a CDC table.

A version is one source change that opened a row image: it is keyed by (key, source position), so
a replay, in any split across runs, adds nothing. ``valid_from`` is when its change happened
(:func:`lake.changes.changed_at`); ``valid_to`` is when the key's next change happened — the next
version, a delete, or a truncate of its scope — and ``is_current`` is true for the open version of
a live key only. A late-arriving older change is placed where it belongs: the version before it is
closed at its time, and it is closed by the next known change. Unchanged-TOAST placeholders take
the previous version's value (from any run); with none known, NULL.

Commit order of one chunk (the watermark is the app transaction ``lakeport-history:bronze.<t>``):

1. Read the watermark and the next chunk of bronze versions (as silver does).
2. Read the stored versions of the chunk's keys only; recompute those keys' chains.
3. One MERGE: new versions inserted, changed ``valid_to``/``is_current`` updated, versions of
   untouched keys that a new truncate closes updated, with the watermark and the truncate marks
   (position and time, per scope). Two runs at once conflict on the watermark; the loser starts
   over. A chunk with nothing to change commits the watermark alone.

Known limit: a change older than the newest truncate of its scope is closed by that truncate;
older truncates are not remembered one by one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction

from lake import changes as cf
from lake import keys
from lake.errors import KeyMissing
from lake.tables import open_table, quote

VERSION_COLUMNS = ("valid_from", "valid_to", "is_current", "_op", "_source_lsn", "_offset")
_VERSION_TYPES = pa.schema(
    [
        ("valid_from", pa.timestamp("us", "UTC")),
        ("valid_to", pa.timestamp("us", "UTC")),
        ("is_current", pa.bool_()),
        ("_op", pa.string()),
        ("_source_lsn", pa.int64()),
        ("_offset", pa.int64()),
    ]
)
MARK_APP = "lakeport-history"


@dataclass(frozen=True)
class HistoryResult:
    table: str
    to_version: int
    changes: int
    versions_opened: int
    version: int | None
    seconds: float
    versions_closed: int = 0  # stored versions whose validity this run changed
    chunks: int = 0


def app_id(name: str) -> str:
    return f"lakeport-history:bronze.{name}"


def apply_history(
    name: str,
    bronze_uri: str,
    history_uri: str,
    *,
    key: Sequence[str],
    storage_options: dict[str, str] | None = None,
    source_key: Sequence[str] = (),
    chunk_rows: int = cf.CHUNK_ROWS,
) -> HistoryResult:
    started = time.monotonic()
    opts = storage_options or None
    silver_key = keys.silver_key(key, source_key)
    scope = keys.silver_key((), source_key)
    bronze = open_table(bronze_uri, opts)
    target, to_version = (bronze.version() if bronze is not None else -1), -1
    totals = {"rows": 0, "opened": 0, "closed": 0, "chunks": 0}
    version: int | None = None
    while bronze is not None:

        def step() -> dict[str, int] | None:
            return _apply_chunk(name, bronze_uri, history_uri, silver_key, scope, source_key, opts, chunk_rows)

        done = cf.retry_conflicts(step, name=name)
        if done is None:
            break
        for k in ("rows", "opened", "closed"):
            totals[k] += done[k]
        totals["chunks"] += 1
        to_version, version = done["end"], done["version"]
        if done["end"] >= target:
            break
    if to_version < 0:
        history = open_table(history_uri, opts)
        done_v = history.transaction_version(app_id(name)) if history is not None else None
        to_version = done_v if done_v is not None else -1
    return HistoryResult(
        table=name,
        to_version=to_version,
        changes=totals["rows"],
        versions_opened=totals["opened"],
        version=version,
        seconds=time.monotonic() - started,
        versions_closed=totals["closed"],
        chunks=totals["chunks"],
    )


def _apply_chunk(
    name: str,
    bronze_uri: str,
    history_uri: str,
    key: list[str],
    scope: list[str],
    source_key: Sequence[str],
    opts: dict[str, str] | None,
    chunk_rows: int,
) -> dict[str, int] | None:
    bronze, history = open_table(bronze_uri, opts), open_table(history_uri, opts)
    if bronze is None:
        return None
    done = history.transaction_version(app_id(name)) if history is not None else None
    start, end = (0 if done is None else done + 1), bronze.version()
    if start > end:
        return None
    chunk = next(cf.chunks(bronze, start, end, name=name, max_rows=chunk_rows))
    rows = chunk.rows
    usable = "_op" in rows.column_names and rows.num_rows > 0
    if usable:
        rows = keys.with_source_columns(rows.filter(pa.compute.is_valid(rows["_op"])), source_key, table=name)
        missing = [k for k in key if k not in rows.column_names]
        if missing:
            raise KeyMissing(f"key column(s) {missing} are not in bronze", table=name, versions=(start, chunk.end))
    versions, new_truncates = _chain(rows, name, key, scope, history) if usable and rows.num_rows else (None, {})
    txns = [Transaction(app_id=app_id(name), version=chunk.end)]
    for aid, (_, pos, ts_ms) in new_truncates.items():
        txns += [Transaction(app_id=aid, version=pos), Transaction(app_id=aid + ":ts", version=ts_ms)]
    commit = CommitProperties(app_transactions=txns)
    out = versions.drop_columns(["__pos", "__new"]) if versions is not None else _VERSION_TYPES.empty_table()
    if history is None:
        history = cf.create_once(history_uri, out.schema, storage_options=opts, name=name)
    opened = closed = 0
    if (versions is not None and versions.num_rows) or new_truncates:
        source = versions if versions is not None else _VERSION_TYPES.empty_table()
        on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in key)
        on += " AND coalesce(t._source_lsn, t._offset) = s.__pos" if versions is not None else " AND false"
        merge = history.merge(source, on, source_alias="s", target_alias="t", merge_schema=True, commit_properties=commit)
        merge = merge.when_matched_update({"valid_to": "s.valid_to", "is_current": "s.is_current"})
        merge = merge.when_not_matched_insert({c: f"s.{quote(c)}" for c in out.column_names})
        for _, (s, pos, ts_ms) in sorted(new_truncates.items(), key=lambda item: item[1][1]):  # earliest first
            at = f"arrow_cast({ts_ms * 1000}, 'Timestamp(Microsecond, Some(\"UTC\"))')"
            merge = merge.when_not_matched_by_source_update(
                {"valid_to": at, "is_current": "false"},
                predicate=f"{cf.scope_predicate(s, alias='t.')} AND coalesce(t._source_lsn, t._offset) < {pos} "
                f"AND (t.valid_to IS NULL OR t.valid_to > {at})",
            )
        merge.execute()
        if versions is not None:
            opened = int(pa.compute.sum(versions["__new"]).as_py() or 0)
            closed = versions.num_rows - opened
    else:
        history.create_write_transaction([], mode="append", schema=history.schema(), commit_properties=commit)
    history.update_incremental()
    return {"rows": chunk.rows.num_rows, "opened": opened, "closed": closed, "end": chunk.end, "version": history.version()}


def _chain(
    rows: pa.Table, name: str, key: list[str], scope: list[str], history: DeltaTable | None
) -> tuple[pa.Table, dict[str, tuple[dict[str, str], int, int]]]:
    """The versions of the chunk's keys to write (new ones, and stored ones whose validity
    changed, flagged by ``__new``), and the chunk's truncates newer than the marks per scope."""
    con = duckdb.connect()
    con.register("c", rows)
    keycols = ", ".join(quote(k) for k in key)
    at = cf.changed_at(rows.schema)
    truncs, new = _truncates(con, name, scope, history, at)
    con.register("truncs", truncs)
    con.execute(
        f"CREATE TABLE ev AS SELECT DISTINCT ON ({keycols}, __pos) *, {cf.POSITION} AS __pos, {at} AS __ts "
        f"FROM c WHERE _op <> 't' ORDER BY {keycols}, __pos, _offset DESC"
    )
    schema = con.execute("SELECT * FROM ev LIMIT 0").to_arrow_table().schema
    data = [c for c in cf.data_columns(schema) if c not in ("__pos", "__ts")]
    wanted = con.execute(f"SELECT DISTINCT {keycols} FROM ev").to_arrow_table()
    stored = keys.rows_for_keys(history, wanted)
    select = ", ".join(quote(c) for c in data)
    new_events = f"SELECT {select}, _op, _source_lsn, _offset, __pos, __ts, NULL::TIMESTAMPTZ AS __old_to, false AS __stored FROM ev"  # noqa: E501
    if stored is not None and stored.num_rows:
        con.register("stored", stored)
        con.execute(
            "CREATE TABLE events AS SELECT * EXCLUDE (valid_from, valid_to, is_current), coalesce(_source_lsn, _offset) "
            "AS __pos, valid_from AS __ts, valid_to AS __old_to, true AS __stored FROM stored "
            f"UNION ALL BY NAME ({new_events} ANTI JOIN (SELECT {keycols}, coalesce(_source_lsn, _offset) AS __pos "
            f"FROM stored) s USING ({keycols}, __pos))"
        )
    else:
        con.execute(f"CREATE TABLE events AS {new_events}")
    ev_schema = con.execute("SELECT * FROM events LIMIT 0").to_arrow_table().schema
    window = f"PARTITION BY {keycols} ORDER BY __pos"
    before = f"({window} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    fills = []
    for c in data:
        test = cf.placeholder(ev_schema.field(c), ev_schema) if c in ev_schema.names else None
        if test:
            fills.append(
                f"CASE WHEN coalesce({test}, false) THEN last_value(CASE WHEN NOT coalesce({test}, false) "
                f"AND _op <> 'd' THEN {quote(c)} END IGNORE NULLS) OVER {before} ELSE {quote(c)} END AS {quote(c)}"
            )
    replace = f"REPLACE ({', '.join(fills)})" if fills else ""
    scope_match = " AND ".join(f"t.{quote(s)} = e.{quote(s)}" for s in scope) or "true"
    versions = con.execute(f"""
        WITH e AS (
            SELECT * {replace},
                lead(__ts) OVER ({window}) AS __next,
                last_value(CASE WHEN __stored THEN coalesce(__old_to, 'infinity'::TIMESTAMPTZ) END IGNORE NULLS)
                    OVER {before} AS __inherited
            FROM events
        ), v AS (
            SELECT e.*, least(
                __next,
                __old_to,
                CASE WHEN NOT __stored AND __inherited > __ts AND NOT isinf(__inherited) THEN __inherited END,
                (SELECT min(t.ts) FROM truncs t WHERE t.pos > e.__pos AND {scope_match})
            ) AS valid_to
            FROM e
        )
        SELECT {select}, __ts AS valid_from, valid_to, valid_to IS NULL AS is_current, _op, _source_lsn, _offset,
               __pos, NOT __stored AS __new
        FROM v
        WHERE _op <> 'd' AND (NOT __stored OR valid_to IS DISTINCT FROM __old_to)
    """).to_arrow_table()
    for column in ("valid_from", "valid_to"):  # DuckDB says "Etc/UTC"; Delta takes "UTC" only
        i = versions.schema.get_field_index(column)
        versions = versions.set_column(i, column, versions[column].cast(pa.timestamp("us", "UTC")))
    return versions, new


def _truncates(
    con: duckdb.DuckDBPyConnection, name: str, scope: list[str], history: DeltaTable | None, at: str
) -> tuple[pa.Table, dict[str, tuple[dict[str, str], int, int]]]:
    """Every truncate a chain must respect (the chunk's, and the last remembered per scope), and
    the chunk's newer than the remembered ones."""
    cols = [quote(s) for s in scope]
    group = f"GROUP BY {', '.join(cols)}" if cols else ""
    found = con.execute(
        f"SELECT {', '.join([*cols, ''])} max({cf.POSITION}), epoch_ms(max({at})) FROM c WHERE _op = 't' {group}"
    ).fetchall()
    scopes = [dict(zip(scope, map(str, r[: len(scope)]), strict=True)) for r in con.execute(
        f"SELECT DISTINCT {', '.join([*cols, 'NULL AS __n'])} FROM c").fetchall()]  # fmt: skip
    rows: list[tuple[dict[str, str], int, int]] = []
    new: dict[str, tuple[dict[str, str], int, int]] = {}
    for s in scopes:
        aid = cf.scope_id(name, s, app=MARK_APP)
        pos = history.transaction_version(aid) if history is not None else None
        ts_ms = history.transaction_version(aid + ":ts") if history is not None else None
        if pos is not None and ts_ms is not None:
            rows.append((s, pos, ts_ms))
    for r in found:
        if r[-2] is None:
            continue
        s = dict(zip(scope, map(str, r[: len(scope)]), strict=True))
        aid = cf.scope_id(name, s, app=MARK_APP)
        known = history.transaction_version(aid) if history is not None else None
        rows.append((s, int(r[-2]), int(r[-1])))
        if known is None or r[-2] > known:
            new[aid] = (s, int(r[-2]), int(r[-1]))
    table = pa.table(
        {
            **{c: pa.array([s[c] for s, _, _ in rows], pa.string()) for c in scope},
            "pos": pa.array([p for _, p, _ in rows], pa.int64()),
            "ts": pa.array([t * 1000 for _, _, t in rows], pa.timestamp("us", "UTC")),
        }
    )
    return table, new
