"""Run the suites: snapshot → validate (GX) → keep results (``ops.quality_results``) → alert.

Bronze suites are incremental: they validate the rows new since the version their last run
checked. A bronze run with no new rows records its results but changes no alert (no new data is
no evidence that the feed is clean again). Silver suites validate the whole table every time, so
a fixed row makes the check pass and sends the recovery.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import structlog

from lakeport.quality import results, snapshot
from lakeport.quality.alerts import Alert, Alerter, alerter_for
from lakeport.quality.errors import TerminalQualityError
from lakeport.quality.gx_context import docs_index
from lakeport.quality.suites import Suite, referenced_key, suites_for
from lakeport.quality.validate import Context, Outcome, key_strings, run_suite
from lakeport.settings import Settings

log = structlog.get_logger("lakeport.quality")


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    layer: str
    table: str
    version: int | None  # None: the table does not exist yet (nothing validated)
    since_version: int | None
    rows_checked: int
    outcomes: tuple[Outcome, ...] = ()
    alerts_sent: dict[str, str] = field(default_factory=dict)  # expectation -> firing|resolved

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "error"]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "warn"]

    @property
    def passed(self) -> bool:
        """No error-severity expectation failed (warnings do not block)."""
        return not self.errors


def check(
    settings: Settings, *, table: str | None = None, layer: str | None = None, alert: bool = True
) -> list[SuiteResult]:
    """Run every suite of the config (or of one table / layer); results are kept and alerted."""
    alerter = alerter_for(settings) if alert else None
    run_id = uuid.uuid4().hex[:12]
    suites = suites_for(settings, table=table, layer=layer)
    return [check_suite(settings, s, alerter=alerter, run_id=run_id) for s in suites]


def _context(settings: Settings, suite: Suite, snap: snapshot.Snapshot) -> Context:
    opts, refs, dups, totals = settings.lake.to_object_store(), {}, {}, {}
    for rule in suite.rules:
        if rule.expect == "total" and rule.query:
            from lakeport.lake.query import Lake

            with Lake(settings) as lake:
                row = lake.execute(rule.query).fetchone()
            totals[rule.label] = None if row is None or row[0] is None else float(row[0])
        if rule.expect == "references":
            try:
                column = referenced_key(settings, rule)
            except ValueError as exc:
                raise TerminalQualityError(str(exc), table=suite.name) from None
            uri = settings.lake.table_uri("silver", rule.table or "")
            keys = snapshot.key_column(uri, column=column, storage_options=opts)
            refs[rule.label] = keys if keys is not None else pa.array([], pa.string())
        if rule.expect == "unique" and suite.incremental and set(rule.targets) <= set(snap.rows.column_names):
            uri = settings.lake.table_uri(suite.layer, suite.table)
            whole = snapshot.open_at(uri, opts)
            assert whole is not None
            keys = key_strings(whole.to_pyarrow_dataset().to_table(columns=rule.targets), rule.targets)
            counts = pc.value_counts(keys.drop_null())
            dups[rule.label] = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    q = settings.quality
    return Context(refs, dups, totals, tolerance=q.row_count_tolerance, sample_size=q.sample_keys)


def _snapshot(settings: Settings, suite: Suite) -> snapshot.Snapshot | None:
    lake, opts = settings.lake, settings.lake.to_object_store()
    uri = lake.table_uri(suite.layer, suite.table)
    if not suite.incremental:
        return snapshot.whole(uri, layer=suite.layer, table=suite.table, storage_options=opts)
    since = results.last_version(lake.table_uri(results.LAYER, results.TABLE), suite=suite.name, storage_options=opts)
    return snapshot.bronze(uri, table=suite.table, letters_uri=lake.table_uri("ops", "dead_letters"),
                           since_version=since, storage_options=opts)  # fmt: skip


def check_suite(settings: Settings, suite: Suite, *, alerter: Alerter | None, run_id: str) -> SuiteResult:
    snap = _snapshot(settings, suite)
    if snap is None:
        log.info("suite_skipped", suite=suite.name, reason="table does not exist yet")
        return SuiteResult(suite.name, suite.layer, suite.table, None, None, 0)
    outcomes = run_suite(suite, snap, _context(settings, suite, snap), docs_dir=settings.quality.docs_dir)
    now = datetime.now(UTC)
    opts = settings.lake.to_object_store()
    results.append(
        settings.lake.table_uri(results.LAYER, results.TABLE), outcomes, run_id=run_id, run_at=now,
        suite=suite.name, layer=suite.layer, table=suite.table, version=snap.version,
        since_version=snap.since_version, rows_checked=snap.rows.num_rows, storage_options=opts,
    )  # fmt: skip
    sent: dict[str, str] = {}
    letters = snap.dead_letters.num_rows if snap.dead_letters is not None else 0
    if alerter is not None and not (suite.incremental and snap.rows.num_rows == 0 and letters == 0):
        for o in outcomes:
            status = alerter.evaluate(_alert(settings, suite, snap.version, o), failing=not o.success, now=now)
            if status is not None:
                sent[o.expectation] = status
    result = SuiteResult(suite.name, suite.layer, suite.table, snap.version, snap.since_version,
                         snap.rows.num_rows, tuple(outcomes), sent)  # fmt: skip
    log.info("suite_validated", suite=suite.name, version=snap.version, rows=snap.rows.num_rows,
             errors=len(result.errors), warnings=len(result.warnings), alerts=sent or None,
             docs=str(docs_index(settings.quality.docs_dir)))  # fmt: skip
    return result


def _alert(settings: Settings, suite: Suite, version: int, o: Outcome) -> Alert:
    hint = settings.alerts.console_hint
    query = (
        "SELECT run_at, version, success, unexpected_count, sample_keys FROM ops.quality_results "
        f"WHERE suite = '{suite.name}' AND expectation = '{o.expectation}' ORDER BY run_at DESC LIMIT 10"
    )
    return Alert(
        key=f"quality:{suite.name}:{o.expectation}",
        title=f"{o.expectation} ({o.kind}) " + ("passes again" if o.success else "failed"),
        detail=f"observed: {o.observed}" if o.observed and not o.success else "",
        severity="error" if o.severity == "error" else "warn",
        table=suite.name,
        version=version,
        link=f'{hint} sql "{query}"',
        rows=o.unexpected_count,
        sample_keys=o.sample_keys,
    )
