"""Primary-key changes. Debezium sends ``UPDATE … SET id = 1005 WHERE id = 5`` as a delete of
key 5 and a create of key 1005 at the same position; the create's unchanged-TOAST values come as
placeholders, and its ``__debezium.oldkey`` header (bronze ``_old_key``) names key 5. The values
are key 5's: its images before the move are offered to the new key as earlier versions, only for
filling placeholders (they never become rows of the new key themselves). An old key whose last
image is not known any more (deleted in an earlier run) leaves the value NULL, as for any key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from lakeport.ingestion.records import OLD_KEY
from lakeport.lake import keys as keymod
from lakeport.lake.tables import literal, quote


def moved(con: duckdb.DuckDBPyConnection, relation: str, key: Sequence[str]) -> pa.Table | None:
    """Note (as table ``__moved``) the rows of ``relation`` that moved from an old key; return the
    distinct old keys, typed like ``key`` (None: no row moved).

    The old key is read from the header's JSON (a Connect ``{"schema", "payload"}`` envelope is
    opened) and each field is cast to its key column's type: old and new keys are then compared
    typed, as silver compares every key. A header that is not JSON, or lacks a key field, names
    no old key (the placeholder stays NULL, as for any key whose value is not known)."""
    names = con.execute(f"SELECT * FROM {relation} LIMIT 0").to_arrow_table().schema.names
    if OLD_KEY not in names:
        return None
    keys = ", ".join(quote(k) for k in key)
    con.execute(f"CREATE OR REPLACE TABLE __moved AS SELECT DISTINCT {keys}, __pos AS __at, {_OLD_JSON} AS __old "
                f"FROM {relation} WHERE {OLD_KEY} IS NOT NULL")  # fmt: skip
    if not con.execute("SELECT count(*) FROM __moved").fetchone()[0]:  # type: ignore[index]
        return None
    types = con.execute(f"SELECT {', '.join(f'typeof({quote(k)})' for k in key)} FROM __moved LIMIT 1").fetchone()
    assert types is not None
    typed = ", ".join(f"{_exact(_field(k), t)} AS {_old(i)}" for i, (k, t) in enumerate(zip(key, types, strict=True)))
    found = " AND ".join(f"{_old(i)} IS NOT NULL" for i in range(len(key)))
    con.execute(f"CREATE OR REPLACE TABLE __moved AS SELECT * FROM (SELECT *, {typed} FROM __moved) WHERE {found}")
    old = ", ".join(f"{_old(i)} AS {quote(k)}" for i, k in enumerate(key))
    return con.execute(f"SELECT DISTINCT {old} FROM __moved").to_arrow_table()


def stored_rows(table: DeltaTable | None, old: pa.Table | None) -> pa.Table | None:
    """The rows a Delta table (silver, history) holds for the old keys."""
    return None if table is None or old is None else keymod.rows_for_keys(table, old)


def earlier_images(source: str, key: Sequence[str], *, flag: str, flag_in_source: bool = False) -> str:
    """SELECT of ``source``'s rows of each old key noted in ``__moved``, from before the move,
    relabeled with the new key and marked true in the column ``flag`` (to be dropped after filling)."""
    on = " AND ".join(f"p.{quote(k)} = m.{_old(i)}" for i, k in enumerate(key))
    relabel = [f"m.{quote(k)} AS {quote(k)}" for k in key] + ([f"true AS {flag}"] if flag_in_source else [])
    extra = "" if flag_in_source else f", true AS {flag}"
    return (f"SELECT p.* REPLACE ({', '.join(relabel)}){extra} FROM {source} p "
            f"JOIN __moved m ON {on} AND p.__pos < m.__at")  # fmt: skip


# the header's JSON, out of a Connect envelope if it has one; NULL when it is not JSON
_OLD_JSON = (f"CASE WHEN json_valid({OLD_KEY}) THEN CASE WHEN json_exists({OLD_KEY}, '$.schema') "
             f"AND json_exists({OLD_KEY}, '$.payload') THEN json_extract({OLD_KEY}, '$.payload') "
             f"ELSE CAST({OLD_KEY} AS JSON) END END")  # fmt: skip


def _field(k: str) -> str:
    return f"json_extract_string(__old, {literal('$.' + json.dumps(k))})"


_NUMBERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "DECIMAL", "FLOAT", "DOUBLE")  # fmt: skip


def _exact(text: str, dtype: str) -> str:
    """``text`` cast to ``dtype`` only where that keeps its value: a cast to a number rounds
    (``'1.5'`` → 2, ``12.345`` → 12.35) and reads ``'0x1F'`` as 31, so the number must equal the
    text read as an exact decimal (else NULL: no old key)."""
    cast = f"TRY_CAST({text} AS {dtype})"
    if not dtype.upper().startswith(_NUMBERS):
        return cast
    exact = f"TRY_CAST({text} AS DECIMAL(38, 10))"
    return f"CASE WHEN {exact} IS NOT NULL AND TRY_CAST({cast} AS DECIMAL(38, 10)) = {exact} THEN {cast} END"


def _old(i: int) -> str:
    return f"__old_{i}"
