"""Reconciliation: does each silver table equal its source table, row for row?

For every silver table fed by a configured source (its topic is ``<source>.<schema>.<table>``),
both sides are read, every row is reduced to a canonical text form per column (decimals
normalised, timestamps in UTC, ``jsonb`` by value with exact numbers, ``json`` as its exact text)
and hashed; the report lists keys missing from the lake, extra in the lake, held by more than one
silver row, and present on both sides with different values.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lakeport.ingestion.connect_types import duration_micros
from lakeport.lake.keys import SOURCE_FIELDS
from lakeport.lake.tables import open_table

if TYPE_CHECKING:
    from lakeport.settings import Settings, SourceSettings, TableConfig

SAMPLE = 20
_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""


@dataclass
class TableReport:
    table: str
    source: str
    source_table: str
    source_rows: int = 0
    lake_rows: int = 0
    missing_count: int = 0
    extra_count: int = 0
    different_count: int = 0
    duplicate_count: int = 0  # keys silver holds more than once (a silver table has one row per key)
    missing: list[list[str]] = field(default_factory=list)  # sample keys, source only
    extra: list[list[str]] = field(default_factory=list)  # sample keys, lake only
    different: list[list[str]] = field(default_factory=list)  # sample keys, values differ
    duplicate: list[list[str]] = field(default_factory=list)  # sample keys, more than one lake row
    different_columns: dict[str, int] = field(default_factory=dict)  # column -> sampled keys where it differs
    missing_columns: list[str] = field(default_factory=list)
    lake_version: int | None = None

    @property
    def ok(self) -> bool:
        return not (
            self.missing_count
            or self.extra_count
            or self.different_count
            or self.duplicate_count
            or self.missing_columns
        )


def canonical(value: Any, pg_type: str) -> str:
    """One value as text that is equal on both sides when the values are equal. Text the lake
    holds for a typed source column (a converter without schemas sends decimals, times and bytes
    as strings; bytes arrive base64-encoded) is read as that type first."""
    if value is None:
        return "\0"
    if isinstance(value, str):
        value = _typed(value, pg_type)
    elif isinstance(value, int) and not isinstance(value, bool) and pg_type in _EPOCH_TYPES:
        value = _EPOCH_TYPES[pg_type](value)  # Debezium's temporal numbers, as sent without a schema
    if pg_type == "json":  # PostgreSQL keeps json's text as written (key order, spaces), and so does Debezium
        return value if isinstance(value, str) else _json_value(value)
    if pg_type == "jsonb":
        return _jsonb(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):  # normalised exactly: the default context would round to 28 digits
        return format(value.normalize(_EXACT), "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):  # time: as is; timetz: in UTC, as Debezium's ZonedTime
        if value.tzinfo is not None:
            moved = dt.datetime.combine(dt.date(2000, 1, 3), value).astimezone(dt.UTC)
            return moved.time().isoformat(timespec="microseconds") + "Z"
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dt.timedelta):  # interval: exact microseconds either way
        return str((value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, list):
        return json.dumps([canonical(v, pg_type.removesuffix("[]")) for v in value])
    return str(value)


def _jsonb(value: Any) -> str:
    """A jsonb value by value: keys sorted, numbers exact (never through a float); text that is not
    JSON stays itself, so it differs from any JSON value."""
    if not isinstance(value, str):
        return _json_value(value)
    try:
        return _json_value(json.loads(value, parse_float=Decimal, parse_int=Decimal))
    except ValueError:
        return "\0text:" + value


def _json_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json_value(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(_json_value, value)) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float | Decimal):
        return format(Decimal(repr(value) if isinstance(value, float) else value).normalize(_EXACT), "f")
    return json.dumps(value)


def _duration(text: str) -> dt.timedelta | str:
    micros = duration_micros(text)
    return text if micros is None else dt.timedelta(microseconds=micros)


_EXACT = decimal.Context(prec=1000)
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_TYPES = {
    "date": lambda days: dt.date(1970, 1, 1) + dt.timedelta(days=days),  # io.debezium.time.Date
    "timestamp without time zone": lambda us: _EPOCH + dt.timedelta(microseconds=us),  # MicroTimestamp
}


def _typed(text: str, pg_type: str) -> Any:
    try:
        if pg_type == "bytea":
            return base64.b64decode(text, validate=True)
        if pg_type.startswith("numeric"):
            return Decimal(text)
        if pg_type.startswith("timestamp"):
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if pg_type == "date":
            return dt.date.fromisoformat(text)
        if pg_type.startswith("time"):  # HH:MM:SS.ffffff, or ZonedTime's …Z
            return dt.time.fromisoformat(text.replace("Z", "+00:00"))
        if pg_type.startswith("interval"):
            return _duration(text)
    except (ValueError, ArithmeticError, binascii.Error):
        pass
    return text


def _select(column: str, pg_type: str) -> str:
    """The source column as reconcile reads it: as text where psycopg2's reading would differ from
    the lake's (intervals: a month as 30 days; json: re-serialised; ranges: objects; uuid[]: one
    string; json arrays: parsed elements), which hold what Debezium sends (ISO 8601 durations,
    the text as written, text arrays)."""
    if pg_type.startswith("interval") or pg_type in ("json", "jsonb") or pg_type.endswith(("range", "multirange")):
        return f'"{column}"::text AS "{column}"'
    if pg_type in ("uuid[]", "json[]", "jsonb[]"):  # psycopg2 would parse json elements, with floats
        return f'"{column}"::text[] AS "{column}"'
    return f'"{column}"'


def _digest(row: dict[str, Any], columns: list[tuple[str, str]]) -> str:
    text = json.dumps([canonical(row.get(name), pg_type) for name, pg_type in columns])  # unambiguous
    return hashlib.sha256(text.encode()).hexdigest()


def source_table_of(table: TableConfig, source: SourceSettings) -> str | None:
    """``schema.table`` of the source table this lake table is fed from, if it is fed by ``source``."""
    for topic in table.topics:
        prefix, _, rest = topic.partition(".")
        if prefix == source.name and rest.count(".") == 1:
            return rest
    return None


def reconcile_table(settings: Settings, table: TableConfig, source: SourceSettings, conn: Any) -> TableReport:
    import psycopg2.extras

    qualified = source_table_of(table, source)
    assert qualified is not None
    schema, name = qualified.split(".")
    report = TableReport(table.name, source.name, qualified)
    with conn.cursor() as cur:
        cur.execute(_COLUMNS, (schema, name))
        protected = {r.column for r in table.column_rules if r.column not in table.key}  # not in clear in the lake
        columns: list[tuple[str, str]] = [(r[0], r[1]) for r in cur.fetchall() if r[0] not in protected]
    col_list = ", ".join(_select(c, t) for c, t in columns)
    query = f'SELECT {col_list} FROM "{schema}"."{name}"'

    def source_side() -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SET intervalstyle = 'iso_8601'")
            cur.execute(query)
            yield from ((tuple(canonical(r[k], "") for k in table.key), r) for r in cur)

    source_rows = {k: _digest(r, columns) for k, r in source_side()}
    silver = open_table(settings.lake.table_uri("silver", table.name), settings.lake.to_object_store())
    lake_rows: dict[tuple[str, ...], str] = {}
    duplicates: set[tuple[str, ...]] = set()

    def lake_side() -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
        present = set(silver.schema().to_arrow().names)  # type: ignore[union-attr, attr-defined]
        wanted = [c for c, _ in columns if c in present]
        for row in _rows(silver, wanted, _source_filter(table, source, present)):  # type: ignore[arg-type]
            yield tuple(canonical(row[k], "") for k in table.key), row

    if silver is not None:
        report.lake_version = silver.version()
        present = set(silver.schema().to_arrow().names)  # type: ignore[attr-defined]
        report.missing_columns = [c for c, _ in columns if c not in present]
        for key, row in lake_side():
            report.lake_rows += 1  # every row: a key silver holds twice is a difference, never hidden
            if key in lake_rows:
                duplicates.add(key)
            lake_rows[key] = _digest(row, columns)
    report.source_rows = len(source_rows)
    report.duplicate_count, report.duplicate = len(duplicates), [list(k) for k in sorted(duplicates)[:SAMPLE]]
    missing = sorted(source_rows.keys() - lake_rows.keys())
    extra = sorted(lake_rows.keys() - source_rows.keys())
    different = sorted(k for k in source_rows.keys() & lake_rows.keys() if source_rows[k] != lake_rows[k])
    report.missing_count, report.extra_count, report.different_count = len(missing), len(extra), len(different)
    report.missing, report.extra, report.different = (
        [list(k) for k in keys[:SAMPLE]] for keys in (missing, extra, different)
    )
    if different:  # which columns differ, over the sampled keys (both sides read once more)
        sampled = set(different[:SAMPLE])
        theirs = {k: r for k, r in source_side() if k in sampled}
        for key, row in lake_side():
            if key in sampled:
                for column, pg_type in columns:
                    if canonical(row.get(column), pg_type) != canonical(theirs[key][column], pg_type):
                        report.different_columns[column] = report.different_columns.get(column, 0) + 1
    return report


def _source_filter(table: TableConfig, source: SourceSettings, present: set[str]) -> list[tuple[str, str, str]]:
    values = {"source_db": source.postgres.database}
    filters = []
    for entry in table.source_key:
        column = SOURCE_FIELDS[entry][1]
        if entry == "source_db" and column in present:
            filters.append((column, "=", values["source_db"]))
        elif entry == "topic" and column in present:
            filters.append((column, "=", next(t for t in table.topics if t.startswith(f"{source.name}."))))
    return filters


def _rows(silver: DeltaTable, columns: list[str], filters: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    data = silver.to_pyarrow_table(columns=sorted({*columns, *(f[0] for f in filters)}))
    for column, _, value in filters:
        data = data.filter(pc.equal(data[column].cast(pa.string()), value))
    return data.select(columns).to_pylist()


def reconcile(settings: Settings, *, table: str | None = None) -> list[TableReport]:
    """Compare every silver table fed by a configured source with that source."""
    import psycopg2

    reports = []
    for source in settings.sources:
        fed = [t for t in settings.tables if t.key and source_table_of(t, source) and table in (None, t.name)]
        if not fed:
            continue
        conn = psycopg2.connect(**source.postgres.to_libpq(options="-c TimeZone=UTC"))
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)  # one snapshot for all tables
        try:
            reports += [reconcile_table(settings, t, source, conn) for t in fed]
        finally:
            conn.close()
    return reports
