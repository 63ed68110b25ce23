"""``reconcile`` never says "equal" when silver differs from PostgreSQL (the stack's private
cluster): a key silver holds twice, values whose separators could line up, a jsonb string against
a jsonb object, jsonb numbers beyond a double's digits and ``json`` text written otherwise are
each reported; jsonb strings and scalars, ranges, uuid and json arrays (as Debezium sends them:
text, lists of text) compare without error or false alarm."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from helpers import unique

from lakeport.dev import postgres
from lakeport.dev.stack import StackState
from lakeport.lake.reconcile import reconcile_table
from lakeport.settings import Settings

pytestmark = [pytest.mark.stack]
UUID = "0b6e4d3c-9f1f-4a5e-8a2b-3c4d5e6f7a8b"
SAME_SQL = (
    f"'[1,10)', '[2026-01-01 10:00+02,2026-01-02 00:00+00)', ARRAY['{UUID}']::uuid[], "
    """ARRAY['{"b": 1, "a": 2}', '{"a": 1.50}']::json[]"""
)
SAME_LAKE = {  # as Debezium sends them: ranges as their text (in UTC), a uuid[] as a list of text
    "span": "[1,10)",
    "stay": '["2026-01-01 08:00:00+00","2026-01-02 00:00:00+00")',
    "ids": [UUID],
    "docs": ['{"b": 1, "a": 2}', '{"a": 1.50}'],  # json[]: each element's text as written
}
SOURCE = [  # id, a, b, doc (jsonb), raw (json): as PostgreSQL holds them
    (1, "x\x1fy", "z", '{"a": 1}', '{"b": 1, "a": 2}'),
    (2, "p", "q", '"{\\"a\\": 1}"', "[1, 2]"),  # doc: a JSON string that reads like an object
    (3, "p", "q", '"hello"', '"hello"'),
    (4, "p", "q", '{"n": 12345678901234567890.123456789}', "7"),
    (5, "p", "q", "[1, 2.50, null, true]", '{"a": 1}'),
]


def test_reconcile_reports_what_differs_and_nothing_else(local_stack: StackState, tmp_path: Path) -> None:
    db = unique("recon_")
    postgres.create_database(local_stack.postgres_port, db)
    dsn = postgres.dsn(local_stack.postgres_port, database=db)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE t (id int PRIMARY KEY, a text, b text, doc jsonb, raw json, span int4range,"
            " stay tstzrange, ids uuid[], docs json[])"
        )
        cur.executemany(f"INSERT INTO t VALUES (%s, %s, %s, %s, %s, {SAME_SQL})", SOURCE)
    pg = {"port": local_stack.postgres_port, "database": db, "password": postgres.DEV_PASSWORD}
    settings = Settings(
        lake={"uri": str(tmp_path / "lake")},
        tables=[{"name": "t", "topics": ["shop.public.t"], "format": "debezium-json", "key": ["id"]}],
        sources=[{"name": "shop", "tables": ["public.t"], "outbox_table": None, "postgres": pg}],
    )
    [table], [source] = settings.tables, settings.sources
    uri = settings.lake.table_uri("silver", "t")

    def lake(rows: list[tuple[object, ...]]) -> None:
        columns = list(zip(*rows, strict=True))
        data = {"id": pa.array(columns[0], pa.int32()), **{c: pa.array(v, pa.string()) for c, v in
                zip(("a", "b", "doc", "raw"), columns[1:], strict=True)}}  # fmt: skip
        data |= {c: [v] * len(rows) for c, v in SAME_LAKE.items()}
        write_deltalake(uri, pa.table(data), mode="overwrite")

    equal = [
        (1, "x\x1fy", "z", '{"a":1}', '{"b": 1, "a": 2}'),  # jsonb by value; json as written
        (2, "p", "q", '"{\\"a\\": 1}"', "[1, 2]"),
        (3, "p", "q", '"hello"', '"hello"'),
        (4, "p", "q", '{"n":12345678901234567890.123456789}', "7"),
        (5, "p", "q", "[1,2.5,null,true]", '{"a": 1}'),
    ]
    wrong = [
        (1, "x", "y\x1fz", '{"a": 1}', '{"b": 1, "a": 2}'),  # the same text once joined with \x1f
        (2, "p", "q", '{"a": 1}', "[1, 2]"),  # an object, where the source holds a string
        (3, "p", "q", '"hello"', '"hello"'),
        (3, "STALE", "q", '"hello"', '"hello"'),  # a second row of key 3
        (4, "p", "q", '{"n": 12345678901234567890.123456788}', "7"),  # equal as doubles
        (5, "p", "q", "[1, 2.50, null, true]", '{"a":1}'),  # json written otherwise
    ]
    with psycopg2.connect(dsn) as conn:
        lake(equal)
        report = reconcile_table(settings, table, source, conn)
        assert report.ok and (report.source_rows, report.lake_rows) == (5, 5), report
        lake(wrong)
        report = reconcile_table(settings, table, source, conn)
    assert not report.ok and report.lake_rows == 6
    assert (report.duplicate_count, report.duplicate) == (1, [["3"]])
    assert (report.different_count, report.different) == (5, [["1"], ["2"], ["3"], ["4"], ["5"]])
    assert report.different_columns == {"a": 2, "b": 1, "doc": 2, "raw": 1}
