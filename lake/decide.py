"""Deciding what a chunk of changes does to silver: one winner per key, by source position.

Inputs are the chunk's change rows and, for its keys only, the rows silver holds and the deletes it
remembers; truncate marks come from silver's log. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from lakeport.lake import changes as cf
from lakeport.lake import keys as keymod
from lakeport.lake import rekey
from lakeport.lake.tables import quote

MARK_APP = "lakeport-silver"
_META_TYPES = {
    "_op": pa.string(),
    "_source_lsn": pa.int64(),
    "_source_ts_ms": pa.int64(),
    "_topic": pa.string(),
    "_partition": pa.int32(),
    "_offset": pa.int64(),
}


@dataclass(frozen=True)
class Decision:
    rows: int  # change rows read, tombstones excluded
    winners: pa.Table  # one row per key that changes: silver's columns and ``_op`` ('d': remove it)
    deletes: pa.Table  # the winning deletes: key, ``_position``, ``_source_lsn``, ``_offset``
    stale: int  # rows at or below a position their key already reached (replays, duplicates)
    new_marks: dict[str, tuple[dict[str, str], int]] = field(default_factory=dict)  # app id -> (scope, position)
    existing: int = 0  # winners whose key silver holds now (0: every winner is a new key)

    def schema(self, winners: pa.Table) -> pa.Schema:
        """The schema to create silver with."""
        return winners.schema


def _empty() -> pa.Table:
    return pa.schema([pa.field(n, t) for n, t in _META_TYPES.items()]).empty_table()


def decide(
    rows: pa.Table | None,
    *,
    name: str,
    key: Sequence[str],
    scope: Sequence[str],
    silver: DeltaTable | None,
    deleted: DeltaTable | None,
) -> Decision:
    if rows is None or rows.num_rows == 0:
        return Decision(rows=0, winners=_empty(), deletes=pa.table({}), stale=0)
    with duckdb.connect() as con:  # closed here, never by the garbage collector
        con.register("c", rows)
        keys = ", ".join(quote(k) for k in key)
        scope_cols = ", ".join(quote(s) for s in scope)
        pos = cf.POSITION
        new_marks, marks = _marks(con, name, scope, silver)
        con.register("marks", marks)
        con.execute(
            f"CREATE TABLE ev AS SELECT *, {pos} AS __pos FROM c WHERE _op <> 't' "  # one per (key, position):
            f"QUALIFY row_number() OVER (PARTITION BY {keys}, {pos} ORDER BY _offset DESC) = 1 "  # not DISTINCT ON,
            f"ORDER BY {keys}, __pos"  # which turns -0.0 in a list into 0.0
        )
        wanted = con.execute(f"SELECT DISTINCT {keys} FROM ev").to_arrow_table()
        none = {k: wanted[k].slice(0, 0) for k in key}
        cur = keymod.rows_for_keys(silver, wanted, [*key, "_source_lsn", "_offset"])  # positions only
        gone = keymod.rows_for_keys(deleted, wanted, [*key, "_position"])
        con.register("cur", cur if cur is not None else pa.table(
            {**none, "_source_lsn": pa.array([], pa.int64()), "_offset": pa.array([], pa.int64())}))  # fmt: skip
        con.register("gone", gone if gone is not None else pa.table({**none, "_position": pa.array([], pa.int64())}))
        on_marks = f"USING ({scope_cols})" if scope else "ON true"
        con.execute(f"""
            CREATE TABLE st AS
            SELECT ev.*, (ev.__pos <= coalesce(k.__cpos, -1) OR ev.__pos < coalesce(g._position, -1)
                          OR ev.__pos < coalesce(m.__mark, -1)) AS __stale, k.__cpos IS NOT NULL AS __exists
            FROM ev
            LEFT JOIN (SELECT {keys}, coalesce(_source_lsn, _offset) AS __cpos FROM cur) k USING ({keys})
            LEFT JOIN gone g USING ({keys})
            LEFT JOIN marks m {on_marks}
        """)
        con.execute("DROP TABLE ev")
        con.unregister("cur")
        changed = con.execute("SELECT count(*) FROM c WHERE _op <> 't'").fetchone()[0]  # type: ignore[index]
        fresh = con.execute("SELECT count(*) FROM st WHERE NOT __stale").fetchone()[0]  # type: ignore[index]
        schema = con.execute("SELECT * FROM st LIMIT 0").to_arrow_table().schema
        data = [c for c in cf.data_columns(schema) if c not in ("__pos", "__stale", "__exists")]
        out = data + [c for c in cf.KEPT_META if c in schema.names]
        filled = _fill_placeholders(con, schema, data, key, silver)
        if cf.TOAST_MARKS in con.execute(f"SELECT * FROM {filled} LIMIT 0").to_arrow_table().schema.names:
            out.append(cf.TOAST_MARKS)  # the columns whose unchanged-TOAST value is not known
        winners = con.execute(f"""
            SELECT {", ".join(quote(c) for c in out)}, __pos, __exists FROM (
                SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY __pos DESC) AS __rn
                FROM {filled}
            ) WHERE __rn = 1
        """).to_arrow_table()
        mask = pa.compute.equal(winners["_op"], "d")
        deletes = (
            winners.filter(mask)
            .select([*key, "__pos", "_source_lsn", "_offset"])
            .rename_columns([*key, "_position", "_source_lsn", "_offset"])
        )
        return Decision(
            rows=rows.num_rows,
            winners=cf.plain_types(_typed(winners.drop_columns(["__pos", "__exists"]))),
            existing=int(pa.compute.sum(winners["__exists"]).as_py() or 0),
            deletes=deletes,
            stale=int(changed) - int(fresh),
            new_marks=new_marks,
        )


def _typed(winners: pa.Table) -> pa.Table:
    """Metadata columns with their fixed types (a chunk of nulls would otherwise be typed null)."""
    for i, f in enumerate(winners.schema):
        wanted = _META_TYPES.get(f.name, cf.MARKS_TYPE if f.name == cf.TOAST_MARKS else None)
        if wanted is not None and f.type != wanted:
            winners = winners.set_column(i, f.name, winners[f.name].cast(wanted))
    return winners


def _marks(
    con: duckdb.DuckDBPyConnection, name: str, scope: Sequence[str], silver: DeltaTable | None
) -> tuple[dict[str, tuple[dict[str, str], int]], pa.Table]:
    """(truncates of this chunk above the marks already applied, every scope's effective mark)."""
    cols = [quote(s) for s in scope]
    select = ", ".join([*cols, "NULL AS __none"])
    scopes = [
        dict(zip(scope, map(str, r[: len(scope)]), strict=True))
        for r in con.execute(f"SELECT DISTINCT {select} FROM c").fetchall()
    ]
    known = cf.truncate_marks(silver, name, scopes, app=MARK_APP)
    group = f"GROUP BY {', '.join(cols)}" if cols else ""
    chunk = con.execute(f"SELECT {', '.join([*cols, ''])} max({cf.POSITION}) FROM c WHERE _op = 't' {group}").fetchall()
    new: dict[str, tuple[dict[str, str], int]] = {}
    for row in chunk:
        if row[-1] is None:
            continue
        s = dict(zip(scope, map(str, row[: len(scope)]), strict=True))
        aid = cf.scope_id(name, s, app=MARK_APP)
        if row[-1] > known.get(aid, -1):
            new[aid] = (s, int(row[-1]))
    effective: dict[str, tuple[dict[str, str], int]] = {}
    for s in scopes:
        aid = cf.scope_id(name, s, app=MARK_APP)
        value = max(known.get(aid, -1), new.get(aid, (s, -1))[1])
        if value >= 0:
            effective[aid] = (s, value)
    table = pa.table(
        {**{c: pa.array([s[c] for s, _ in effective.values()], pa.string()) for c in scope},
         "__mark": pa.array([p for _, p in effective.values()], pa.int64())}
    )  # fmt: skip
    return new, table


def _fill_placeholders(
    con: duckdb.DuckDBPyConnection, schema: pa.Schema, data: list[str], key: Sequence[str], silver: DeltaTable | None
) -> str:
    """The relation to pick winners from: fresh changes whose unchanged-TOAST placeholders took
    the key's previous value (an earlier change of the chunk, else silver's row; none: NULL).
    Silver's whole rows are read only for the keys that carry a placeholder."""
    tests = cf.placeholder_tests(schema, data)
    keys = ", ".join(quote(k) for k in key)
    hit = " OR ".join(f"coalesce({t}, false)" for t in tests.values())
    if not tests or not con.execute(f"SELECT count(*) FROM st WHERE NOT __stale AND ({hit})").fetchone()[0]:  # type: ignore[index]
        return "(SELECT * FROM st WHERE NOT __stale)"
    wanted = con.execute(f"SELECT DISTINCT {keys} FROM st WHERE NOT __stale AND ({hit})").to_arrow_table()
    cur = keymod.rows_for_keys(silver, wanted)
    union = ""
    if cur is not None and cur.num_rows:
        con.register("cur", cur)
        union = "UNION ALL BY NAME SELECT *, coalesce(_source_lsn, _offset) AS __pos, true AS __is_cur FROM cur"
    old = rekey.moved(con, "(SELECT * FROM st WHERE NOT __stale)", key)
    if old is not None:  # a primary-key change: the old key's images fill the new key's placeholders
        union += " UNION ALL BY NAME " + rekey.earlier_images(
            "(SELECT * FROM st WHERE NOT __stale)", key, flag="__is_cur"
        )
        stored = rekey.stored_rows(silver, old)
        if stored is not None and stored.num_rows:
            con.register("oldcur", stored)
            source = "(SELECT *, coalesce(_source_lsn, _offset) AS __pos FROM oldcur)"
            union += " UNION ALL BY NAME " + rekey.earlier_images(source, key, flag="__is_cur")
    window = f"(PARTITION BY {keys} ORDER BY __pos ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    con.execute(f"CREATE VIEW unfilled AS SELECT *, NULL::BOOLEAN AS __is_cur FROM st WHERE NOT __stale {union}")
    marked = cf.TOAST_MARKS in con.execute("SELECT * FROM unfilled LIMIT 0").to_arrow_table().schema.names
    con.execute(f"CREATE TABLE filled AS SELECT {cf.fills(tests, window, marked=marked)} FROM unfilled")
    return "(SELECT * FROM filled WHERE __is_cur IS NULL)"
