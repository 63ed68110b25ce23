"""Dead-letter replay: re-run stored raw records through today's config and table schema.

After a fix (a larger ``max_message_bytes``, a widened column, a corrected rule), the records in
``ops.dead_letters`` that now decode land in their bronze table, each exactly once, and can be
traced: ``_replayed_from`` holds the dead letter's ``topic[partition]@offset`` (the row keeps its
original ``_topic``/``_partition``/``_offset`` too). A dead letter is *resolved* when a bronze row
of its table carries its ``_replayed_from``: the Delta log is the only record of it.

The commit order of one table's replay (the only place it is written down):

1. Read ``ops.dead_letters``, pick the table's records matching the filters, one per
   ``topic[partition]@offset``. Records whose raw value was withheld (a table with column rules and
   ``keep_raw_dead_letters`` off), and rows a Debezium table refused after decoding (their value
   is the decoded row, not the envelope), are reported as not replayable.
2. Open (or create) the bronze table and read the ``_replayed_from`` values it holds at that
   version: those dead letters were replayed already (by an earlier run, or one that crashed after
   its commit) and are skipped.
3. Decode and guard the rest as ingest would, against the table's schema at that version.
4. Append what decoded, with ``_replayed_from``, in one commit carrying the app transaction
   ``lakeport-replay`` (its version one above the last): two replays racing on the same version
   conflict in the Delta log, and the loser re-reads from step 2. A crash before this commit lands
   nothing; after it, step 2 of the next run sees everything it landed.
5. Records that still fail stay in ``ops.dead_letters`` as they are; nothing new is written there.
"""

from __future__ import annotations

import operator
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, Transaction
from deltalake.exceptions import TableNotFoundError

from lakeport.ingestion import dead_letters
from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.errors import TransientError
from lakeport.ingestion.guard import GuardOptions, guard
from lakeport.ingestion.landing import Lander
from lakeport.ingestion.records import REENCODED, REPLAYED_FROM, Batch, RawBatch, key_bytes, keys_as_stored
from lakeport.ingestion.writer import DeltaWriter
from lakeport.settings import Settings

APP = "lakeport-replay"
WITHHELD = b"raw value withheld"  # guard's note in place of a value it may not keep


@dataclass(frozen=True)
class ReplayResult:
    """One table's replay: what was selected and what became of it."""

    table: str
    selected: int
    landed: int
    already_replayed: int
    still_failing: int
    not_replayable: int
    version: int | None
    seconds: float
    errors: dict[str, int] = field(default_factory=dict)  # why the rest still fails, counted


def letter_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}[{partition}]@{offset}"


def read_letters(settings: Settings, *, table: str | None = None, since: datetime | None = None,
                 error_like: str | None = None) -> pa.Table:  # fmt: skip
    """The dead letters matching the filters (``error_like``: a case-insensitive substring),
    one row per record, with an ``id`` column."""
    uri = settings.lake.table_uri(dead_letters.LAYER, dead_letters.TABLE)
    try:
        letters = DeltaTable(uri, storage_options=settings.lake.to_object_store() or None).to_pyarrow_dataset()
    except TableNotFoundError:
        return dead_letters.SCHEMA.empty_table().append_column("id", pa.array([], pa.string()))
    wanted = [pc.field("table_name") == table] if table is not None else []  # read only what is selected
    if since is not None:
        wanted.append(pc.field("_ingested_at") >= pa.scalar(since, letters.schema.field("_ingested_at").type))
    rows = letters.to_table(filter=reduce(operator.and_, wanted) if wanted else None)
    if error_like:
        rows = rows.filter(pc.match_substring(pc.utf8_lower(rows["error"]), error_like.lower()))
    ids = _ids(rows)
    rows = rows.append_column("id", pa.array(ids, pa.string()))
    first = {i: n for n, i in reversed(list(enumerate(ids)))}  # one row per record
    return rows.take(sorted(first.values()))


def _ids(rows: pa.Table) -> list[str]:
    coordinates = (rows[c].to_pylist() for c in ("_topic", "_partition", "_offset"))
    return [letter_id(t, p, o) for t, p, o in zip(*coordinates, strict=True)]


def replayed(table: DeltaTable) -> set[str]:
    """The dead letters this bronze table holds rows of (its ``_replayed_from`` values)."""
    if REPLAYED_FROM not in table.schema().to_arrow().names:  # type: ignore[union-attr]
        return set()
    column = table.to_pyarrow_dataset().to_table(columns=[REPLAYED_FROM], filter=pc.field(REPLAYED_FROM).is_valid())
    return set(column[REPLAYED_FROM].to_pylist())


def replay_table(settings: Settings, table: str, letters: pa.Table, *, dry_run: bool = False,
                 writer: DeltaWriter | None = None, chunk: int = 50_000) -> ReplayResult:  # fmt: skip
    """Steps 2 to 5 for one table's ``letters`` (from :func:`read_letters`), ``chunk`` records per
    commit (decoding memory stays bounded); a lost race with another replay is retried from step 2."""
    start = time.monotonic()
    writer = writer or DeltaWriter(settings.lake.to_object_store())
    reencoded = settings.table(table).format != "json"  # such values are rows, not the envelopes it reads
    withheld = pa.array([(v is not None and v.startswith(WITHHELD)) or (reencoded and REENCODED in e)
                         for v, e in zip(letters["_value"].to_pylist(), letters["error"].to_pylist(), strict=True)],
                        pa.bool_())  # fmt: skip
    letters, not_replayable = letters.filter(pc.invert(withheld)), pc.sum(withheld).as_py() or 0
    parts = [_retried(settings, table, letters.slice(i, chunk), dry_run=dry_run, writer=writer)
             for i in range(0, letters.num_rows, chunk)]  # fmt: skip
    done = parts
    errors: dict[str, int] = {}
    for p in done:
        for error, n in p.errors.items():
            errors[error] = errors.get(error, 0) + n
    return ReplayResult(table=table, selected=letters.num_rows + not_replayable, landed=sum(p.landed for p in done),
                        already_replayed=sum(p.already_replayed for p in done),
                        still_failing=sum(p.still_failing for p in done), not_replayable=not_replayable,
                        version=max((p.version for p in done if p.version is not None), default=None),
                        seconds=time.monotonic() - start, errors=errors)  # fmt: skip


def _retried(settings: Settings, table: str, letters: pa.Table, *, dry_run: bool, writer: DeltaWriter) -> ReplayResult:
    for attempt in range(5):
        try:
            return _replay_once(settings, table, letters, 0, time.monotonic(), dry_run=dry_run, writer=writer)
        except TransientError:
            if attempt == 4:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _replay_once(settings: Settings, table: str, letters: pa.Table, not_replayable: int, start: float, *,
                 dry_run: bool, writer: DeltaWriter) -> ReplayResult:  # fmt: skip
    uri, config = settings.lake.table_uri("bronze", table), settings.table(table)
    handle = writer.open(uri)
    done = replayed(handle) if handle is not None else set()
    todo = letters.filter(pa.array([i not in done for i in letters["id"].to_pylist()], pa.bool_()))
    known = pa.schema(handle.schema().to_arrow()) if handle is not None else None  # type: ignore[arg-type]
    errors: dict[str, int] = {}
    rows = pa.table({})
    if todo.num_rows:
        batch, ing = _batch(table, config.format, todo), settings.ingest
        decoded = decode(batch, options=DecodeOptions(config.format, known, ing.max_message_bytes, ing.tombstones))
        decoded = guard(batch, decoded, options=GuardOptions.of(settings, table, known))
        for d in decoded.dead_letters:
            errors[d.error[:160]] = errors.get(d.error[:160], 0) + 1
        rows = keys_as_stored(decoded.rows, known)
        ids = pa.array(_ids(rows), pa.string())
        if REPLAYED_FROM in rows.column_names:  # decoded against a table that has the column already
            rows = rows.set_column(rows.column_names.index(REPLAYED_FROM), REPLAYED_FROM, ids)
        else:
            rows = rows.append_column(REPLAYED_FROM, ids)
    version = None
    if rows.num_rows and not dry_run:
        options = Lander(settings, writer).write_options(table)  # as ingest writes the table
        if handle is None:  # no bronze table yet: created empty (one creator wins), nothing replayed in it
            handle = writer.open_or_create(uri, rows.schema, options=options)
        # The commit is based on the version ``done`` was read at (the handle is not refreshed):
        # a replay that committed since conflicts on the app transaction, and this one re-reads.
        previous = handle.transaction_version(APP) or 0
        version = writer.append(uri, rows, transactions=[Transaction(APP, previous + 1)], options=options,
                                table_name=table).version  # fmt: skip
    return ReplayResult(table=table, selected=letters.num_rows + not_replayable, landed=rows.num_rows,
                        already_replayed=letters.num_rows - todo.num_rows, still_failing=sum(errors.values()),
                        not_replayable=not_replayable, version=version, seconds=time.monotonic() - start,
                        errors=errors)  # fmt: skip


def _batch(table: str, fmt: str, letters: pa.Table) -> Batch:
    """The records as the source would hand them over: one run per topic-partition, by offset."""
    letters = letters.sort_by([("_topic", "ascending"), ("_partition", "ascending"), ("_offset", "ascending")])
    cols = {c: letters[c].to_pylist() for c in ("_topic", "_partition", "_offset", "_timestamp", "_key", "_value")}
    headers = letters["_headers"].to_pylist() if "_headers" in letters.column_names else [None] * letters.num_rows
    parts: list[RawBatch] = []
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for i in range(letters.num_rows):
        tp = (cols["_topic"][i], cols["_partition"][i])
        if not parts or (parts[-1].topic, parts[-1].partition) != tp:
            parts.append(RawBatch(topic=tp[0], partition=tp[1], offsets=[], timestamps_ms=[], keys=[], values=[],
                                  client_messages=[]))  # fmt: skip
        part, at = parts[-1], cols["_timestamp"][i]
        part.offsets.append(cols["_offset"][i])
        part.timestamps_ms.append(None if at is None else int(at.timestamp() * 1000))
        part.keys.append(key_bytes(cols["_key"][i]))
        part.values.append(cols["_value"][i])
        part.client_messages.append(_Headers([(h["key"], h["value"]) for h in headers[i] or ()]))  # type: ignore[attr-defined]
        first, _ = ranges.get(tp, (cols["_offset"][i], 0))
        ranges[tp] = (first, cols["_offset"][i])
    return Batch(table=table, format=fmt, parts=tuple(parts), ranges=ranges,
                 raw_bytes=sum(len(v or b"") for v in cols["_value"]))  # fmt: skip


@dataclass(frozen=True)
class _Headers:
    """A stored record's headers, asked for as the Kafka client's message would be."""

    stored: list[tuple[str, bytes | None]]

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self.stored


@dataclass(frozen=True)
class LetterGroup:
    """Dead letters of one table, stage and error (its first line, numbers as N, up to 160 characters)."""

    table: str
    stage: str
    error: str
    count: int
    replayed: int
    replayable: int
    samples: tuple[str, ...]


def summary(settings: Settings, *, table: str | None = None, samples: int = 3) -> list[LetterGroup]:
    """Counts of ``ops.dead_letters`` by table, stage and error, with how many were replayed and
    how many still can be (their raw value was kept), and a few sample records."""
    letters = read_letters(settings, table=table)
    writer = DeltaWriter(settings.lake.to_object_store())
    done: dict[str, set[str]] = {}
    groups: dict[tuple[str, str, str], list[tuple[str, bool]]] = {}
    columns = (letters[c].to_pylist() for c in ("table_name", "stage", "error", "id", "_value"))
    for name, stage, error, ident, value in zip(*columns, strict=True):
        if name not in done:
            configured = any(t.name == name for t in settings.tables)
            handle = writer.open(settings.lake.table_uri("bronze", name)) if configured else None
            done[name] = replayed(handle) if handle is not None else set()
        kept = value is not None and not value.startswith(WITHHELD)
        reason = re.sub(r"\d+", "N", error.splitlines()[0])[:160] if error else ""  # one group per kind
        groups.setdefault((name, stage, reason), []).append((ident, kept and ident not in done[name]))
    out = []
    for (name, stage, error), members in sorted(groups.items()):
        resolved = sum(ident in done[name] for ident, _ in members)
        out.append(LetterGroup(table=name, stage=stage, error=error, count=len(members), replayed=resolved,
                               replayable=sum(can for _, can in members),
                               samples=tuple(i for i, _ in members[:samples])))  # fmt: skip
    return out
