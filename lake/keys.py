"""Keys: reading a table's rows for a set of keys, and key translation across sources.

A table with ``source_key: [source_db]`` keys silver rows by (source, primary key): customer 42
of database A and customer 42 of database B are two rows. Each such key also gets a stable
surrogate ``lake_id`` from an append-only key map (``ops.<name>_key_map``): assigned once, on
first sight, and never reused — a deleted and re-created key gets its old id back, and no id ever
names another key. The last id handed out is an app transaction (``lakeport-keymap``) of the
map's own log, so two runs that allocate at once conflict and one of them retries: ids are unique.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from lakeport.lake.changes import create_once, plain_schema, plain_types
from lakeport.lake.errors import KeyMissing
from lakeport.lake.tables import open_table, quote

# source_key entry -> (bronze column, silver column)
SOURCE_FIELDS = {
    "source_db": ("_source_db", "source_db"),
    "source_schema": ("_source_schema", "source_schema"),
    "topic": ("_topic", "source_topic"),
}
KEY_MAP_APP = "lakeport-keymap"


def silver_key(key: Sequence[str], source_key: Sequence[str]) -> list[str]:
    return [SOURCE_FIELDS[s][1] for s in source_key] + list(key)


def with_source_columns(changes: pa.Table, source_key: Sequence[str], *, table: str = "") -> pa.Table:
    """Copy the source fields named in ``source_key`` into data columns silver keeps and keys on."""
    for entry in source_key:
        bronze, column = SOURCE_FIELDS[entry]
        if bronze not in changes.column_names:
            raise KeyMissing(f"source_key {entry!r} needs the bronze column {bronze}, which is missing", table=table)
        if column not in changes.column_names:
            changes = changes.append_column(column, changes[bronze].cast(pa.string()))
    return changes


def rows_for_keys(table: DeltaTable | None, keys: pa.Table, columns: Sequence[str] | None = None) -> pa.Table | None:
    """The rows of ``table`` whose key (the columns of ``keys``) is in ``keys`` (a superset for
    several key columns: callers join on the whole key). Only files whose key range (Delta
    statistics) holds a wanted key are read, a batch at a time, so the work and the memory follow
    the number of keys, not the table."""
    if table is None:
        return None
    schema = plain_schema(pa.schema(table.schema().to_arrow()))
    if keys.num_rows == 0 or any(k not in schema.names for k in keys.column_names):
        return None
    wanted = {k: pc.unique(keys[k].drop_null()).cast(schema.field(k).type) for k in keys.column_names}
    default = table.to_pyarrow_dataset()
    keep = _files_holding(table, wanted)
    fragments = [f for f in default.get_fragments() if keep is None or f.path in keep]
    fmt = default.format
    # fragments without Delta's statistics expressions: those can disagree with the files' view types
    dataset = ds.FileSystemDataset(
        [fmt.make_fragment(f.path, f.filesystem) for f in fragments], schema=schema, format=fmt,
        filesystem=fragments[0].filesystem if fragments else default.filesystem,
    )  # fmt: skip
    names = [c for c in columns if c in schema.names] if columns is not None else schema.names
    read = list(dict.fromkeys([*names, *wanted]))
    found = []
    for batch in dataset.to_batches(columns=read, batch_size=65_536):
        mask = reduce(pc.and_, [pc.is_in(batch[k], value_set=v) for k, v in wanted.items()])
        found.append(batch.filter(mask).select(names))
    return pa.Table.from_batches(found, schema=schema.empty_table().select(names).schema)


def _files_holding(table: DeltaTable, wanted: dict[str, pa.Array]) -> set[str] | None:
    """Files whose min/max of a numeric or temporal key column hold a wanted value (None: all)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    for name, values in wanted.items():
        low, high = f"min.{name}", f"max.{name}"
        if not (pa.types.is_integer(values.type) or pa.types.is_temporal(values.type)):
            continue
        if low not in actions.column_names or actions[low].null_count or not len(values):
            continue
        points = np.sort(values.cast(pa.int64()).to_numpy(zero_copy_only=False))
        mins = actions[low].cast(pa.int64()).to_numpy(zero_copy_only=False)
        maxs = actions[high].cast(pa.int64()).to_numpy(zero_copy_only=False)
        hit = np.searchsorted(points, maxs, side="right") > np.searchsorted(points, mins, side="left")
        return {p for p, h in zip(actions["path"].to_pylist(), hit, strict=True) if h}
    return None


def assign_lake_ids(
    latest: pa.Table, key_map_uri: str, key: Sequence[str], *, storage_options: dict[str, str] | None = None
) -> tuple[pa.Table, int]:
    """``latest`` with a ``lake_id`` column; keys seen for the first time are appended to the map.
    Returns (rows, ids assigned now). Raises ``CommitFailedError`` when another run allocated at
    the same time: the caller starts over and finds those ids in the map."""
    if latest.num_rows == 0:
        return latest.append_column("lake_id", pa.array([], pa.int64())), 0
    with duckdb.connect() as con:  # closed here, never by the garbage collector
        cols = ", ".join(quote(k) for k in key)
        wanted = con.from_arrow(latest.select(list(key))).query("w", f"SELECT DISTINCT {cols} FROM w").to_arrow_table()
        table = open_table(key_map_uri, storage_options) or create_once(
            key_map_uri,
            wanted.schema.append(pa.field("lake_id", pa.int64())),
            storage_options=storage_options,
            name=key_map_uri,
        )  # one creator wins; everyone appends through a handle, fenced by the app transaction
        known = rows_for_keys(table, wanted, [*key, "lake_id"])
        con.register("wanted", wanted)
        if known is None:
            con.execute(f"CREATE TABLE known AS SELECT {cols}, 0::BIGINT AS lake_id FROM wanted LIMIT 0")
        else:
            con.register("known", known)
        new = con.execute(f"SELECT {cols} FROM wanted ANTI JOIN known USING ({cols}) ORDER BY {cols}").to_arrow_table()
        if new.num_rows:
            last = _last_id(table)
            new = new.append_column("lake_id", pa.array(range(last + 1, last + 1 + new.num_rows), pa.int64()))
            commit = CommitProperties(app_transactions=[Transaction(app_id=KEY_MAP_APP, version=last + new.num_rows)])
            write_deltalake(
                table,
                new,
                mode="append",
                storage_options=storage_options or None,
                commit_properties=commit,
            )
            con.register("fresh", new)
            con.execute("CREATE OR REPLACE VIEW ids AS SELECT * FROM known UNION ALL BY NAME SELECT * FROM fresh")
        else:
            con.execute("CREATE OR REPLACE VIEW ids AS SELECT * FROM known")
        con.register("rows", latest)
        on = " AND ".join(f"r.{quote(k)} IS NOT DISTINCT FROM i.{quote(k)}" for k in key)
        joined = con.execute(f"SELECT r.*, i.lake_id FROM rows r LEFT JOIN ids i ON {on}").to_arrow_table()
        return plain_types(joined), new.num_rows


def _last_id(table: DeltaTable) -> int:
    """The last id handed out: the map's app transaction (maps written before it existed: their max)."""
    last = table.transaction_version(KEY_MAP_APP)
    if last is not None:
        return last
    ids = table.to_pyarrow_dataset().to_table(columns=["lake_id"])["lake_id"]
    return int(pc.max(ids).as_py() or 0)
