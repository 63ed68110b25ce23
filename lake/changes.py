"""Reading bronze's change feed for silver and history, in bounded chunks of whole versions.

Shared by :mod:`lake.silver` and :mod:`lake.history`; it knows the fixed set of Lakeport's own
columns (everything else is a source column, whatever its name), a change's source position, and
Debezium's placeholder for an unchanged TOAST value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Schema, Transaction
from deltalake.exceptions import CommitFailedError, DeltaError

from lakeport.ingestion.records import (
    BRONZE_META,
    TOAST_MARKS,
    UNAVAILABLE,
    UNAVAILABLE_B64,
    UNAVAILABLE_HSTORE,
    UNAVAILABLE_UUID,
)
from lakeport.lake.errors import ChangeFeedGone, TransientLakeError
from lakeport.lake.tables import literal, open_table, quote

T = TypeVar("T")

# the metadata silver and history keep next to the source columns
KEPT_META = ("_op", "_source_lsn", "_source_ts_ms", "_topic", "_partition", "_offset")
# a change's source position: the LSN; a source without one is ordered by Kafka offset
POSITION = "coalesce(_source_lsn, _offset)"
MARKS_TYPE = pa.list_(pa.string())  # of ``_toast_unavailable``
CHUNK_ROWS = 200_000  # change rows read per chunk: memory stays bounded whatever the backlog
_CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
REWRITE_KEY = "lakeport.operation"  # commit info of a rewrite that only widened column types
UNUSED = frozenset({"_key", "_source_tx_id", "_source_snapshot", "_source_table"})  # not read: less memory


@dataclass(frozen=True)
class Chunk:
    start: int  # first bronze version
    end: int  # last bronze version (the watermark committed with this chunk)
    rows: pa.Table  # the rows appended in those versions, tombstones included


def changed_at(schema: pa.Schema) -> str:
    """SQL for when a change happened: the source commit time (``source.ts_ms``); old Debezium
    (``ts_usec`` only) falls back to the Kafka record time, then to when Lakeport landed it."""
    options = ["make_timestamp(_source_ts_ms * 1000) AT TIME ZONE 'UTC'"]
    options += [c for c in ("_timestamp", "_ingested_at") if c in schema.names]
    return f"coalesce({', '.join(options)})" if len(options) > 1 else options[0]


def data_columns(schema: pa.Schema) -> list[str]:
    return [n for n in schema.names if n not in BRONZE_META]


def _added_rows(bronze: DeltaTable, start: int, end: int) -> dict[int, int]:
    """Rows each version appended, from the commit metrics (unknown versions count as one row)."""
    rows: dict[int, int] = {}
    for commit in bronze.history(end - start + 1 + (bronze.version() - end)):
        version = commit.get("version")
        if isinstance(version, int) and start <= version <= end:
            metrics = commit.get("operationMetrics") or {}
            rows[version] = int(metrics.get("num_added_rows", 1) or 0) if commit.get("operation") != "OPTIMIZE" else 0
    return rows


def chunks(bronze: DeltaTable, start: int, end: int, *, name: str, max_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Versions ``start..end`` in chunks of whole versions of at most ``max_rows`` rows each (a
    version larger than that is a chunk of its own)."""
    sizes = _added_rows(bronze, start, end)
    first, total = start, 0
    for version in range(start, end + 1):
        size = sizes.get(version, 1)
        if total and total + size > max_rows:  # this version would overflow the chunk: cut before it
            yield Chunk(start=first, end=version - 1, rows=read(bronze, first, version - 1, name=name))
            first, total = version, 0
        total += size
    yield Chunk(start=first, end=end, rows=read(bronze, first, end, name=name))


def read(bronze: DeltaTable, start: int, end: int, *, name: str) -> pa.Table:
    """Rows appended to bronze in versions ``start..end`` (its change data feed)."""
    wanted = [n for n in pa.schema(bronze.schema().to_arrow()).names if n not in UNUSED]
    rewritten: set[int] = set()  # versions that removed rows: only a widening rewrite does (lake.evolve)
    try:
        reader = bronze.load_cdf(starting_version=start, ending_version=end, columns=[*wanted, *_CDF_COLUMNS])
        stream = pa.RecordBatchReader.from_stream(reader)
        schema = plain_schema(stream.schema)
        batches = []
        for batch in stream:  # a batch at a time: plain types and inserts only, so no second copy
            batch = batch.cast(schema) if batch.schema != schema else batch
            deleted = pc.equal(batch["_change_type"], "delete")
            if pc.any(deleted).as_py():
                rewritten |= set(pc.unique(batch["_commit_version"].filter(deleted)).to_pylist())
            batches.append(batch.filter(pc.equal(batch["_change_type"], "insert")))
    except Exception as exc:
        text = str(exc)
        if "not found" in text.lower() or "no such file" in text.lower() or "404" in text:
            raise ChangeFeedGone(
                "bronze files these versions added were vacuumed before this table applied them; "
                "rebuild it from bronze: drop the silver table (and its history) and run `lakeport silver` again",
                table=name,
                versions=(start, end),
            ) from None
        raise TransientLakeError(f"could not read bronze's change feed: {text[:300]}", table=name) from None
    out = pa.schema([f for f in schema if f.name not in _CDF_COLUMNS])
    if rewritten:  # a widening rewrote bronze: its rows again, not new changes
        again = pa.array(sorted(rewritten), pa.int64())
        batches = [b.filter(pc.invert(pc.is_in(b["_commit_version"], again))) for b in batches]
    return pa.Table.from_batches([b.select(out.names) for b in batches], schema=out)


def _plain(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(dtype) and dtype.tz is not None and dtype.tz != "UTC":
        return pa.timestamp(dtype.unit, "UTC")  # DuckDB says "Etc/UTC"; Delta takes "UTC" only
    if pa.types.is_string_view(dtype) or pa.types.is_large_string(dtype):
        return pa.string()
    if pa.types.is_binary_view(dtype) or pa.types.is_large_binary(dtype):
        return pa.binary()
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in dtype])
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_list_view(dtype):
        return pa.list_(_plain(dtype.value_type))
    return dtype


def plain_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, _plain(f.type), f.nullable) for f in schema])


def plain_types(table: pa.Table) -> pa.Table:
    """The change feed (and DuckDB) give view types and "Etc/UTC"; Delta wants the plain ones."""
    schema = plain_schema(table.schema)
    return table if schema.equals(table.schema) else table.cast(schema)


def placeholder(column: pa.Field, schema: pa.Schema, *, alias: str = "") -> str | None:
    """SQL that is true where ``column`` holds Debezium's unavailable-value placeholder (None:
    this column can never hold one)."""
    ref = alias + quote(column.name)
    tests = []
    if pa.types.is_string(column.type):
        tests.append(f"{ref} IN ({', '.join(map(literal, (UNAVAILABLE, UNAVAILABLE_B64, UNAVAILABLE_HSTORE)))})")
    elif pa.types.is_binary(column.type):
        tests.append(f"{ref} = encode({literal(UNAVAILABLE)})")
    elif pa.types.is_list(column.type) and pa.types.is_string(column.type.value_type):  # text[], bytea[], uuid[]
        tests.append(" OR ".join(f"{ref} = [{literal(v)}]" for v in (UNAVAILABLE, UNAVAILABLE_B64, UNAVAILABLE_UUID)))
    elif pa.types.is_list(column.type) and (
        pa.types.is_integer(column.type.value_type) or pa.types.is_floating(column.type.value_type)
    ):  # numbers: its bytes
        tests.append(f"{ref} = [{', '.join(map(str, UNAVAILABLE.encode()))}]")
    if TOAST_MARKS in schema.names:
        tests.append(f"coalesce(list_contains({alias}{TOAST_MARKS}, {literal(column.name)}), false)")
    return " OR ".join(f"({t})" for t in tests) or None


def placeholder_tests(schema: pa.Schema, columns: Sequence[str]) -> dict[str, str]:
    """Column -> SQL true where it holds the placeholder, for the ``columns`` that can hold one."""
    tests = {c: placeholder(schema.field(c), schema) for c in columns if c in schema.names}
    return {c: t for c, t in tests.items() if t}


def fills(tests: dict[str, str], window: str, *, marked: bool) -> str:
    """SQL ``* REPLACE (…)`` list: each column whose placeholder test (``tests``: column -> SQL)
    is true takes the key's previous value over ``window``; ``_toast_unavailable`` lists the
    columns that found none (left NULL: the value is not known, never the placeholder), NULL when
    every value was found. ``marked``: the relation has that column already (else it is added)."""
    found = {c: f"last_value(CASE WHEN NOT coalesce({t}, false) AND _op <> 'd' THEN {quote(c)} END IGNORE NULLS) "
                f"OVER {window}" for c, t in tests.items()}  # fmt: skip
    replace = [f"CASE WHEN coalesce({t}, false) THEN {found[c]} ELSE {quote(c)} END AS {quote(c)}"
               for c, t in tests.items()]  # fmt: skip
    missing = f"list_filter([{', '.join(f'CASE WHEN coalesce({t}, false) AND {found[c]} IS NULL THEN {literal(c)} END' for c, t in tests.items())}], x -> x IS NOT NULL)"  # noqa: E501
    marks = f"CASE WHEN len({missing}) > 0 THEN {missing} END AS {TOAST_MARKS}"
    return f"* REPLACE ({', '.join([*replace, marks] if marked else replace)})" + ("" if marked else f", {marks}")


def unavailable(rows: pa.Table) -> int:
    """Values left NULL because their unchanged-TOAST value was not known (listed in the marks)."""
    if TOAST_MARKS not in rows.column_names or not rows.num_rows:
        return 0
    return int(pc.sum(pc.list_value_length(rows[TOAST_MARKS])).as_py() or 0)


def scope_id(name: str, scope: dict[str, str], *, app: str) -> str:
    """The app id under which a truncate mark of one scope is kept in a table's Delta log."""
    return f"{app}-truncate:{name}:{json.dumps(scope, sort_keys=True)}"


def truncate_marks(
    table: DeltaTable | None, name: str, scopes: Sequence[dict[str, str]], *, app: str
) -> dict[str, int]:
    """The position of the last truncate applied per scope (app id -> position)."""
    if table is None:
        return {}
    marks = {}
    for scope in scopes:
        aid = scope_id(name, scope, app=app)
        version = table.transaction_version(aid)
        if version is not None:
            marks[aid] = version
    return marks


def scope_predicate(scope: dict[str, str], *, alias: str = "") -> str:
    """SQL selecting the rows of one truncated scope (``TRUE``: every row)."""
    if not scope:
        return "TRUE"
    return " AND ".join(f"{alias}{quote(k)} = {literal(v)}" for k, v in scope.items())


def create_once(uri: str, schema: pa.Schema, *, storage_options: dict[str, str] | None, name: str) -> DeltaTable:
    """Create an empty table if there is none; when several processes race, one creator wins and
    everyone gets the same table (rows are then only ever written by fenced commits). The handle is
    at the creation (version 0): a decision made before the table existed must not be committed on
    top of what another run wrote since, and writing through this handle conflicts with that."""
    for attempt in range(1, 6):
        table = open_table(uri, storage_options)
        if table is None:
            try:
                table = DeltaTable.create(
                    uri, Schema.from_arrow(schema), mode="error", storage_options=storage_options or None
                )
            except (DeltaError, CommitFailedError):
                time.sleep(0.05 * attempt)  # another creator won: open what it made
                continue
        if table.version() != 0:
            table.load_as_version(0)
        return table
    raise TransientLakeError(f"could not create the table at {uri}", table=name)


def record_progress(table: DeltaTable, txns: list[Transaction]) -> None:
    """Make sure the watermark (``txns[0]``) and marks were committed: a MERGE that changed
    nothing writes no commit, so then the app transactions are committed alone — through the
    handle as it was read when the chunk was decided, so that a run that committed in between
    makes this commit fail (and the chunk be decided again) instead of moving the watermark past
    a decision made on an older snapshot, or back."""
    if table.transaction_version(txns[0].app_id) != txns[0].version:
        commit = CommitProperties(app_transactions=txns)
        table.create_write_transaction([], mode="append", schema=table.schema(), commit_properties=commit)
        table.update_incremental()


def until_caught_up(
    step: Callable[[], dict[str, int] | None],
    *,
    bronze_uri: str,
    target_uri: str,
    app: str,
    name: str,
    storage_options: dict[str, str] | None,
) -> tuple[list[dict[str, int]], int]:
    """Apply chunk after chunk (``step``: one chunk, re-run when it loses a commit race) until the
    bronze version seen at the start is applied. Returns each chunk's result (a dict with at
    least ``end``) and the watermark reached (-1: nothing applied ever)."""
    bronze = open_table(bronze_uri, storage_options)
    done: list[dict[str, int]] = []
    if bronze is not None:
        target = bronze.version()
        while (result := retry_conflicts(step, name=name)) is not None:
            done.append(result)
            if result["end"] >= target:
                break
    if done:
        return done, done[-1]["end"]
    table = open_table(target_uri, storage_options)
    applied = table.transaction_version(app) if table is not None else None
    return done, applied if applied is not None else -1


def total(done: list[dict[str, int]], field: str) -> int:
    return sum(d.get(field, 0) for d in done)


def retry_conflicts(step: Callable[[], T], *, name: str, attempts: int = 8) -> T:
    """Run ``step`` again (it re-reads everything) when its commit lost a race to another writer."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except CommitFailedError as exc:
            if attempt == attempts:
                raise TransientLakeError(f"lost {attempts} commit races in a row: {exc}", table=name) from None
            time.sleep(min(2.0, 0.05 * 2**attempt))
    raise AssertionError("unreachable")
