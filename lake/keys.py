"""Key translation: one logical table fed by several source databases whose keys collide.

A table with ``source_key: [source_db]`` keys silver rows by (source, primary key): customer 42
of database A and customer 42 of database B are two rows. Each such key also gets a stable
surrogate ``lake_id`` from an append-only key map (``ops.<name>_key_map``): assigned once, on
first sight, and never reused — a deleted and re-created key gets its old id back, and no id ever
names another key. Assignment is idempotent, so a silver run that crashes after extending the
map and retries assigns the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

# source_key entry -> (bronze column, silver column)
SOURCE_FIELDS = {
    "source_db": ("_source_db", "source_db"),
    "source_schema": ("_source_schema", "source_schema"),
    "topic": ("_topic", "source_topic"),
}


def silver_key(key: Sequence[str], source_key: Sequence[str]) -> list[str]:
    return [SOURCE_FIELDS[s][1] for s in source_key] + list(key)


def with_source_columns(changes: pa.Table, source_key: Sequence[str]) -> pa.Table:
    """Copy the source fields named in ``source_key`` into data columns silver keeps and keys on."""
    for entry in source_key:
        bronze, column = SOURCE_FIELDS[entry]
        if bronze not in changes.column_names:
            raise ValueError(f"source_key {entry!r} needs the bronze column {bronze}, which is missing")
        if column not in changes.column_names:
            changes = changes.append_column(column, changes[bronze].cast(pa.string()))
    return changes


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def assign_lake_ids(
    latest: pa.Table, key_map_uri: str, key: Sequence[str], *, storage_options: dict[str, str] | None = None
) -> tuple[pa.Table, int]:
    """``latest`` with a ``lake_id`` column; keys seen for the first time are appended to the map.
    Returns (rows, ids assigned now)."""
    if latest.num_rows == 0:
        return latest.append_column("lake_id", pa.array([], pa.int64())), 0
    con = duckdb.connect()
    keys = ", ".join(_q(k) for k in key)
    con.register("latest", latest.select(list(key)))
    try:
        con.register("map", DeltaTable(key_map_uri, storage_options=storage_options or None).to_pyarrow_dataset())
        next_id = con.execute("SELECT coalesce(max(lake_id), 0) + 1 FROM map").fetchone()[0]  # type: ignore[index]
    except TableNotFoundError:
        con.execute(f"CREATE TABLE map AS SELECT {keys}, 0::BIGINT AS lake_id FROM latest LIMIT 0")
        next_id = 1
    new = con.execute(
        f"SELECT DISTINCT {keys} FROM latest ANTI JOIN map USING ({keys}) ORDER BY {keys}"
    ).to_arrow_table()
    if new.num_rows:
        new = new.append_column("lake_id", pa.array(range(next_id, next_id + new.num_rows), pa.int64()))
        write_deltalake(key_map_uri, new, mode="append", storage_options=storage_options or None)
        con.register("fresh", new)
        con.execute("CREATE OR REPLACE VIEW ids AS SELECT * FROM map UNION ALL BY NAME SELECT * FROM fresh")
    else:
        con.execute("CREATE OR REPLACE VIEW ids AS SELECT * FROM map")
    con.register("rows", latest)
    on = " AND ".join(f"r.{_q(k)} IS NOT DISTINCT FROM i.{_q(k)}" for k in key)
    joined = con.execute(f"SELECT r.*, i.lake_id FROM rows r LEFT JOIN ids i ON {on}").to_arrow_table()
    return joined, new.num_rows
