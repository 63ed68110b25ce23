"""Schema conflicts: records whose values do not fit their column's type (a source type change,
e.g. ``ALTER … TYPE``). They are dead letters with stage ``schema`` (never coerced: text is never
read as a number, a number never truncated); before blaming them, the worker re-reads the table's
schema from the Delta log (another worker may have changed it) and decodes again. What still
conflicts pages once per table and kind of conflict, through the configured notifiers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import structlog

from lakeport.ingestion.records import DeadLetter
from lakeport.quality.alerts import Alert, alerter_for
from lakeport.settings import Settings

STAGE = "schema"
log = structlog.get_logger("lakeport.conflicts")


def kind(error: str) -> str:
    """The conflict without its record's numbers: one alert per kind, not per value."""
    return re.sub(r"\d+(\.\d+)?", "N", error.split(": ", 1)[-1])[:200]


class SchemaAlerts:
    """Pages for a table's schema conflicts; once per kind in this process (``ops.alerts`` dedupes
    across processes and repeats after ``alerts.repeat_after_minutes``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.sent = settings, set[str]()

    def report(self, table: str, letters: tuple[DeadLetter, ...]) -> None:
        counts: dict[str, int] = {}
        example: dict[str, str] = {}  # a record's own error per kind: the types as they are, unfolded
        for d in letters:
            if d.stage == STAGE:
                counts[kind(d.error)] = counts.get(kind(d.error), 0) + 1
                example.setdefault(kind(d.error), d.error.split(": ", 1)[-1][:300])
        for what, n in counts.items():
            key = f"schema_conflict:{table}:{what}"
            log.warning("schema_conflict_dead_lettered", table=table, conflict=what, records=n)
            if key in self.sent:
                continue
            self.sent.add(key)
            alert = Alert(
                key=key, table=table, rows=n, title=f"records of {table} do not fit its schema: {example[what]}",
                detail="they are in ops.dead_letters (stage schema), not coerced; when the table or the source is "
                       "fixed: lakeport dead-letters replay --table " + table,
                link=f"lakeport dead-letters list --table {table}",
            )  # fmt: skip
            try:
                alerter_for(self.settings).evaluate(alert, failing=True, now=datetime.now(UTC))
            except Exception as exc:  # the dead letters are the record; a notifier that is down must not stop ingest
                log.error("schema_conflict_alert_failed", table=table, error=str(exc))
