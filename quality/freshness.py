"""The freshness rule of a bronze table: its newest row is young enough and Kafka's lag is small
enough (``orchestration.freshness_limit_minutes`` and ``lag_limit_messages``). A breach pages
once (deduplicated through ``ops.alerts``); the first pass after it sends the recovery."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pyarrow.compute as pc

from lakeport.lake.tables import open_table
from lakeport.quality.alerts import Alert, Status, alerter_for
from lakeport.settings import Settings


@dataclass(frozen=True)
class FreshnessReport:
    table: str  # the bronze table's name
    newest_age_seconds: float | None  # None: the table is empty or missing
    lag: Mapping[str, int] = field(default_factory=dict)  # "topic[partition]" -> messages not landed
    limit_minutes: float = 0.0
    lag_limit: int = 0
    alert_sent: Status | None = None  # "firing" | "resolved" | None (nothing due)

    @property
    def newest_age_minutes(self) -> float | None:
        return None if self.newest_age_seconds is None else round(self.newest_age_seconds / 60, 2)

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    @property
    def passed(self) -> bool:
        fresh = self.newest_age_seconds is not None and self.newest_age_seconds <= self.limit_minutes * 60
        return fresh and self.total_lag <= self.lag_limit


def newest_age_seconds(settings: Settings, name: str) -> float | None:
    """Seconds since the newest Kafka timestamp that landed in ``bronze.<name>`` (None: empty)."""
    table = open_table(settings.lake.table_uri("bronze", name), settings.lake.to_object_store())
    if table is None:
        return None
    newest = pc.max(table.to_pyarrow_dataset().to_table(columns=["_timestamp"])["_timestamp"]).as_py()
    return None if newest is None else max(time.time() - newest.timestamp(), 0.0)


def alert_for(report: FreshnessReport) -> Alert:
    name = report.table
    return Alert(
        key=f"freshness:bronze.{name}",
        title=f"bronze.{name} is fresh again" if report.passed else f"bronze.{name} is late or behind",
        detail=f"newest row {report.newest_age_minutes} min old (limit {report.limit_minutes}); "
        f"Kafka lag {report.total_lag} (limit {report.lag_limit})",
        severity="warn",
        table=f"bronze.{name}",
        link="lakeport status",
    )


def check_freshness(settings: Settings, name: str, *, lag: Mapping[str, int]) -> FreshnessReport:
    """Judge ``bronze.<name>`` (``lag``: its partitions' lag) and page or recover as due."""
    orch = settings.orchestration
    report = FreshnessReport(
        table=name,
        newest_age_seconds=newest_age_seconds(settings, name),
        lag=dict(lag),
        limit_minutes=orch.freshness_limit_minutes,
        lag_limit=orch.lag_limit_messages,
    )
    sent = alerter_for(settings).evaluate(alert_for(report), failing=not report.passed, now=datetime.now(UTC))
    return replace(report, alert_sent=sent)
