"""The initial snapshot of a new replication slot: every captured row as an ``op: r`` event.

The slot is created with ``EXPORT_SNAPSHOT``; reading the tables inside that snapshot and then
streaming from the slot gives every row exactly once, with nothing missed in between. Values are
read as text (``col::text``), the same text the server puts into ``pgoutput``, so both paths
share one conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lakeport.capture.pgoutput import Column, Relation, Value

_COLUMNS = """
SELECT c.oid, n.nspname, c.relname, a.attname, a.atttypid, a.atttypmod,
       coalesce(a.attnum = ANY(i.indkey), false) AS is_key
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = %s AND c.relname = %s
ORDER BY a.attnum
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(name: str) -> tuple[str, str]:
    schema, _, table = name.rpartition(".")
    return schema or "public", table


def relation(cur: Any, name: str) -> Relation:
    """The table's columns as pgoutput would describe them (key = primary key columns)."""
    schema, table = qualified(name)
    cur.execute(_COLUMNS, (schema, table))
    rows = cur.fetchall()
    if not rows:
        raise LookupError(f"table {schema}.{table} does not exist in the source database")
    columns = tuple(Column(r[3], int(r[4]), int(r[5]), bool(r[6])) for r in rows)
    return Relation(int(rows[0][0]), schema, table, "d", columns)


def primary_key(cur: Any, oid: int) -> set[str]:
    """The names of a table's primary key columns (empty: it has none)."""
    cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND i.indisprimary", (oid,))  # fmt: skip
    return {r[0] for r in cur.fetchall()}


def captured_tables(cur: Any, configured: list[str], outbox: str | None) -> list[str]:
    """The configured tables, or every table with a primary key in ``public`` (never the outbox)."""
    if configured:
        return [".".join(qualified(t)) for t in configured]
    cur.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname = 'public' "
        "AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) ORDER BY 1"
    )
    skip = ".".join(qualified(outbox)) if outbox else None
    return [r[0] for r in cur.fetchall() if r[0] != skip]


def rows(conn: Any, rel: Relation, *, fetch: int = 5000) -> Iterator[tuple[Value, ...]]:
    """Every row of the table, in primary key order, as text values (a server-side cursor)."""
    select = ", ".join(f"{_quote(c.name)}::text" for c in rel.columns)
    order = ", ".join(_quote(c.name) for c in rel.columns if c.is_key) or "ctid"
    with conn.cursor(name=f"lakeport_snapshot_{rel.oid}") as cur:
        cur.itersize = fetch
        cur.execute(f"SELECT {select} FROM {_quote(rel.schema)}.{_quote(rel.name)} ORDER BY {order}")
        yield from cur
