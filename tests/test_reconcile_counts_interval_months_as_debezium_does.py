"""``reconcile`` compares PostgreSQL intervals with what the lake holds exactly, months included:
Debezium's ``MicroDuration`` counts a month as 365.25 / 12 days, while psycopg2 would read one as
30 days, so a source with ``1 mon`` used to differ from a correct lake forever. Against a real
PostgreSQL (the stack's private cluster): every interval the lake holds as Debezium sent it
(decoded to ISO text), in Debezium's string mode, or as PostgreSQL's own text reconciles, and a
value one microsecond off is reported."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from helpers import unique

from lakeport.dev import postgres
from lakeport.dev.stack import StackState
from lakeport.ingestion.connect_types import iso_duration
from lakeport.lake.reconcile import reconcile_table
from lakeport.settings import Settings

pytestmark = [pytest.mark.stack]
MONTH_US = 2_629_800_000_000  # Debezium: 365.25 / 12 days
DAY_US = 86_400_000_000
SPANS = {  # id: (PostgreSQL literal, microseconds as Debezium's MicroDuration counts them)
    1: ("1 mon", MONTH_US),
    2: ("1 year 2 mons 3 days 04:05:06.5", 14 * MONTH_US + 3 * DAY_US + 14_706_500_000),
    3: ("-1 mon +2 days", -MONTH_US + 2 * DAY_US),
    4: ("3 days -00:00:01", 3 * DAY_US - 1_000_000),
    5: ("00:00:00.000004", 4),
    6: ("7 years", 84 * MONTH_US),
}


def test_intervals_with_months_reconcile_and_a_wrong_one_is_reported(local_stack: StackState, tmp_path: Path) -> None:
    db = unique("spans_")
    postgres.create_database(local_stack.postgres_port, db)
    dsn = postgres.dsn(local_stack.postgres_port, database=db)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE spans (id int PRIMARY KEY, span interval, span_text interval, span_pg interval)")
        for i, (literal, _) in SPANS.items():
            cur.execute("INSERT INTO spans VALUES (%s, %s, %s, %s)", (i, literal, literal, literal))
    pg = {"port": local_stack.postgres_port, "database": db, "password": postgres.DEV_PASSWORD}
    settings = Settings(
        lake={"uri": str(tmp_path / "lake")},
        tables=[{"name": "spans", "topics": ["shop.public.spans"], "format": "debezium-json", "key": ["id"]}],
        sources=[{"name": "shop", "tables": ["public.spans"], "outbox_table": None, "postgres": pg}],
    )
    ids = sorted(SPANS)
    lake = {
        "id": pa.array(ids, pa.int32()),
        "span": [iso_duration(SPANS[i][1]) for i in ids],  # MicroDuration, decoded by Lakeport
        "span_text": [_debezium_string(SPANS[i][1]) for i in ids],  # interval.handling.mode=string
        "span_pg": [SPANS[i][0] for i in ids],  # PostgreSQL's text, as lakeport capture sends it
    }
    uri = settings.lake.table_uri("silver", "spans")
    write_deltalake(uri, pa.table(lake))
    [table], [source] = settings.tables, settings.sources
    with psycopg2.connect(dsn) as conn:
        report = reconcile_table(settings, table, source, conn)
        assert report.ok and report.source_rows == len(SPANS), report
        lake["span"][4] = iso_duration(SPANS[5][1] + 1)  # one microsecond off
        write_deltalake(uri, pa.table(lake), mode="overwrite")
        report = reconcile_table(settings, table, source, conn)
        assert (report.different_count, report.different, report.different_columns) == (1, [["5"]], {"span": 1})


def _debezium_string(micros: int) -> str:
    """Debezium's string mode writes ``P<y>Y<m>M<d>DT<h>H<m>M<s>S``; the same duration, in whole months here."""
    months, rest = divmod(micros, MONTH_US) if micros >= 0 else (0, micros)
    return f"P0Y{months}M0DT0H0M{rest / 1_000_000:.6f}S"
