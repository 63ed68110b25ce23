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
2. Read the stored versions of the chunk's keys only, and every truncate remembered
   (``ops.<t>_truncates``); recompute those keys' chains.
3. Remember the chunk's truncates (scope, position, time). Idempotent: a crash after it repeats it.
4. One MERGE: new versions inserted, changed ``valid_to``/``is_current`` updated, versions of
   untouched keys that a truncate of the chunk closes updated (only ever earlier), with the
   watermark. Two runs at once conflict on the watermark; the loser starts over. A chunk with
   nothing to change commits the watermark alone.

Closing times assume source commit times rise with source positions, as a database's do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction

from lakeport.ingestion.records import OLD_KEY
from lakeport.lake import changes as cf
from lakeport.lake import evolve, keys, rekey
from lakeport.lake.errors import KeyMissing
from lakeport.lake.tables import open_table, quote

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
    toast_unavailable: int = 0  # values of new versions left NULL: unchanged TOAST with no earlier value


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
    truncates_uri: str | None = None,
    chunk_rows: int = cf.CHUNK_ROWS,
) -> HistoryResult:
    """Bring ``silver.<name>_history`` up to date; ``truncates_uri`` keeps every truncate seen
    (default: beside the history table)."""
    started = time.monotonic()
    opts = storage_options or None
    truncates_uri = truncates_uri or f"{history_uri.rstrip('/')}__truncates"
    silver_key = keys.silver_key(key, source_key)
    scope = keys.silver_key((), source_key)

    def step() -> dict[str, int] | None:
        return _apply_chunk(
            name, bronze_uri, history_uri, truncates_uri, silver_key, scope, source_key, opts, chunk_rows
        )

    done, to_version = cf.until_caught_up(
        step, bronze_uri=bronze_uri, target_uri=history_uri, app=app_id(name), name=name, storage_options=opts
    )
    return HistoryResult(
        table=name,
        to_version=to_version,
        changes=cf.total(done, "rows"),
        versions_opened=cf.total(done, "opened"),
        version=done[-1]["version"] if done else None,
        seconds=time.monotonic() - started,
        versions_closed=cf.total(done, "closed"),
        chunks=len(done),
        toast_unavailable=cf.total(done, "unavailable"),
    )


def _apply_chunk(
    name: str,
    bronze_uri: str,
    history_uri: str,
    truncates_uri: str,
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
    remembered_table = open_table(truncates_uri, opts)
    remembered = remembered_table.to_pyarrow_table() if remembered_table is not None else None
    versions, truncates = _chain(rows, key, scope, history, remembered) if usable and rows.num_rows else (None, [])
    if truncates:  # step 2b
        _remember_truncates(truncates, truncates_uri, scope, opts, name)
    txns = [Transaction(app_id=app_id(name), version=chunk.end)]
    commit = CommitProperties(app_transactions=txns)
    out = versions.drop_columns(["__pos", "__new"]) if versions is not None else _VERSION_TYPES.empty_table()
    if history is None:
        history = cf.create_once(history_uri, out.schema, storage_options=opts, name=name)
    elif out.num_rows:  # a column bronze widened (a source type change): history first (evolve)
        evolve.widen_to(history, out.schema)
    opened = closed = unavailable = 0
    if (versions is not None and versions.num_rows) or truncates:
        source = versions if versions is not None else _VERSION_TYPES.empty_table()
        on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in key)
        on += " AND coalesce(t._source_lsn, t._offset) = s.__pos" if versions is not None else " AND false"
        merge = history.merge(
            source, on, source_alias="s", target_alias="t", merge_schema=True, commit_properties=commit
        )
        merge = merge.when_matched_update({"valid_to": "s.valid_to", "is_current": "s.is_current"})
        merge = merge.when_not_matched_insert({c: f"s.{quote(c)}" for c in out.column_names})
        for s, pos, ts_ms in sorted(truncates, key=lambda t: t[1]):  # the earliest truncate closes first
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
            unavailable = cf.unavailable(versions.filter(versions["__new"]))
    cf.record_progress(history, txns)
    return {
        "rows": chunk.rows.num_rows,
        "opened": opened,
        "closed": closed,
        "unavailable": unavailable,
        "end": chunk.end,
        "version": history.version(),
    }


def _chain(
    rows: pa.Table, key: list[str], scope: list[str], history: DeltaTable | None, remembered: pa.Table | None
) -> tuple[pa.Table, list[tuple[dict[str, str], int, int]]]:
    """The versions of the chunk's keys to write (new ones, and stored ones whose validity
    changed, flagged by ``__new``), and the chunk's truncates."""
    with duckdb.connect() as con:  # closed here, never by the garbage collector
        con.register("c", rows)
        keycols = ", ".join(quote(k) for k in key)
        at = cf.changed_at(rows.schema)
        truncs, found = _truncates(con, scope, at, remembered)
        con.register("truncs", truncs)
        con.execute(
            f"CREATE TABLE ev AS SELECT *, {cf.POSITION} AS __pos, {at} AS __ts FROM c WHERE _op <> 't' QUALIFY "
            f"row_number() OVER (PARTITION BY {keycols}, {cf.POSITION} ORDER BY _offset DESC) = 1 "  # as decide's
            f"ORDER BY {keycols}, __pos"
        )
        schema = con.execute("SELECT * FROM ev LIMIT 0").to_arrow_table().schema
        data = [c for c in cf.data_columns(schema) if c not in ("__pos", "__ts")]
        wanted = con.execute(f"SELECT DISTINCT {keycols} FROM ev").to_arrow_table()
        stored = keys.rows_for_keys(history, wanted)
        select = ", ".join(quote(c) for c in data)
        marks = "".join(f", {c}" for c in (cf.TOAST_MARKS, OLD_KEY) if c in schema.names)
        new_events = f"SELECT {select}{marks}, _op, _source_lsn, _offset, __pos, __ts, NULL::TIMESTAMPTZ AS __old_to, false AS __stored FROM ev"  # noqa: E501
        if stored is not None and stored.num_rows:
            con.register("stored", stored)
            con.execute(
                "CREATE TABLE events AS SELECT * EXCLUDE (valid_from, valid_to, is_current), "
                "coalesce(_source_lsn, _offset) AS __pos, valid_from AS __ts, valid_to AS __old_to, "
                "true AS __stored FROM stored "
                f"UNION ALL BY NAME ({new_events} ANTI JOIN (SELECT {keycols}, coalesce(_source_lsn, _offset) AS __pos "
                f"FROM stored) s USING ({keycols}, __pos))"
            )
        else:
            con.execute(f"CREATE TABLE events AS {new_events}")
        _offer_old_key_images(con, key, history)
        ev_schema = con.execute("SELECT * FROM events LIMIT 0").to_arrow_table().schema
        window = f"PARTITION BY {keycols} ORDER BY __pos"
        before = f"({window} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
        tests = cf.placeholder_tests(ev_schema, data)
        filling = cf.fills(tests, before, marked=cf.TOAST_MARKS in ev_schema.names) if tests else "*"
        con.execute(f"CREATE TABLE filled AS SELECT {filling} FROM events")  # then the old keys' images go
        con.execute("DELETE FROM filled WHERE __moved")
        marked = cf.TOAST_MARKS in con.execute("SELECT * FROM filled LIMIT 0").to_arrow_table().schema.names
        scope_match = " AND ".join(f"t.{quote(s)} = e.{quote(s)}" for s in scope) or "true"
        versions = con.execute(f"""
            WITH e AS (
                SELECT *,
                    lead(__ts) OVER ({window}) AS __next,
                    last_value(CASE WHEN __stored THEN coalesce(__old_to, 'infinity'::TIMESTAMPTZ) END IGNORE NULLS)
                        OVER {before} AS __inherited
                FROM filled
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
                   __pos, NOT __stored AS __new{f", {cf.TOAST_MARKS}" if marked else ""}
            FROM v
            WHERE _op <> 'd' AND (NOT __stored OR valid_to IS DISTINCT FROM __old_to)
        """).to_arrow_table()
        return cf.plain_types(versions), found


def _offer_old_key_images(con: duckdb.DuckDBPyConnection, key: Sequence[str], history: DeltaTable | None) -> None:
    """Add to ``events`` (marked ``__moved``) the versions of each old key a primary-key change
    left, relabeled as the new key's: its placeholders take their values (see :mod:`lake.rekey`)."""
    con.execute("ALTER TABLE events ADD COLUMN __moved BOOLEAN DEFAULT false")
    old = rekey.moved(con, "events", key)
    if old is None:
        return
    con.execute(
        f"INSERT INTO events BY NAME {rekey.earlier_images('events', key, flag='__moved', flag_in_source=True)}"
    )
    stored = rekey.stored_rows(history, old)
    if stored is not None and stored.num_rows:
        con.register("oldstored", stored)
        source = ("(SELECT * EXCLUDE (valid_from, valid_to, is_current), coalesce(_source_lsn, _offset) AS __pos, "
                  "valid_from AS __ts, valid_to AS __old_to, true AS __stored FROM oldstored)")  # fmt: skip
        con.execute(f"INSERT INTO events BY NAME {rekey.earlier_images(source, key, flag='__moved')}")


def _truncates(
    con: duckdb.DuckDBPyConnection, scope: list[str], at: str, remembered: pa.Table | None
) -> tuple[pa.Table, list[tuple[dict[str, str], int, int]]]:
    """Every truncate a chain must respect (the remembered ones and the chunk's), and the chunk's
    own: (scope, position, time in ms), each applied (a late one closes less)."""
    cols = [quote(s) for s in scope]
    found = con.execute(  # several per scope close different versions
        f"SELECT DISTINCT {', '.join([*cols, ''])} {cf.POSITION}, epoch_ms({at}) FROM c WHERE _op = 't'"
    ).fetchall()
    chunk = [(dict(zip(scope, map(str, r[: len(scope)]), strict=True)), int(r[-2]), int(r[-1])) for r in found]
    table = pa.table(
        {
            **{c: pa.array([s[c] for s, _, _ in chunk], pa.string()) for c in scope},
            "pos": pa.array([p for _, p, _ in chunk], pa.int64()),
            "ts": pa.array([t * 1000 for _, _, t in chunk], pa.timestamp("us", "UTC")),
        }
    )
    if remembered is not None and remembered.num_rows:
        table = pa.concat_tables([table, remembered.select(table.column_names).cast(table.schema)])
    return table, chunk


def _remember_truncates(
    found: list[tuple[dict[str, str], int, int]], uri: str, scope: list[str], opts: dict[str, str] | None, name: str
) -> None:
    """Keep every truncate (scope, position, time): a change landing late is closed by the first
    truncate after it. Idempotent, so a crash before the history commit only repeats it."""
    rows = pa.table(
        {
            **{c: pa.array([s[c] for s, _, _ in found], pa.string()) for c in scope},
            "pos": pa.array([p for _, p, _ in found], pa.int64()),
            "ts": pa.array([t * 1000 for _, _, t in found], pa.timestamp("us", "UTC")),
        }
    )
    table = open_table(uri, opts) or cf.create_once(uri, rows.schema, storage_options=opts, name=name)
    on = " AND ".join(f"t.{quote(c)} = s.{quote(c)}" for c in [*scope, "pos"])
    table.merge(rows, on, source_alias="s", target_alias="t").when_not_matched_insert_all().execute()
