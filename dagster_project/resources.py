"""Thin Dagster resources over the library. Each loads its settings once (on first use) and each
method is a single call into ``lake``, ``ingestion`` or ``quality``, the same call the CLI makes.
Tests swap them for fakes (subclasses), the way one swaps a client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from lakeport.ingestion.records import RunStats
from lakeport.ingestion.worker import Worker
from lakeport.lake import status, upkeep
from lakeport.lake.gold import GoldResult, refresh_gold
from lakeport.lake.maintenance import CheckpointResult, CompactResult, VacuumResult
from lakeport.lake.refresh import refresh_one
from lakeport.lake.tables import TableFacts, table_facts
from lakeport.lake.upkeep import Layer
from lakeport.quality.alerts import Alert, Status, alerter_for
from lakeport.quality.freshness import FreshnessReport, check_freshness
from lakeport.quality.run import SuiteResult, check
from lakeport.settings import Settings, load_settings


class _Configured(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A resource over the lake a ``lakeport.yaml`` describes (empty path: ``$LAKEPORT_CONFIG`` or
    ./lakeport.yaml); the file is read once, when a method first needs it."""

    config_path: str = ""
    _settings: Settings | None = PrivateAttr(default=None)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path or None)
        return self._settings


class LakeResource(_Configured):
    """The lake: land, apply, rebuild, check and maintain its tables."""

    def ingest_once(self) -> RunStats:
        """``lakeport ingest --once``: drain every topic to the high watermarks seen at start."""
        return Worker(self.settings, once=True).run()

    def apply_silver(self, name: str) -> dict[str, Any]:
        """``lakeport silver`` for one silver table (``orders``, ``orders_history``, ``domain_events``)."""
        return refresh_one(self.settings, name)

    def refresh_gold(self, name: str) -> list[GoldResult]:
        """``lakeport gold --model NAME``."""
        return refresh_gold(self.settings, model=name)

    def table_facts(self, layer: str, name: str) -> TableFacts | None:
        """Delta version, files, bytes and rows of ``<layer>.<name>`` (None: no table yet)."""
        return table_facts(self.settings, layer, name)

    def check_quality(self, layer: str, name: str) -> SuiteResult:
        """``lakeport check --table NAME``: run the suite (results kept, alerts sent)."""
        (result,) = check(self.settings, table=name, layer=layer)
        return result

    def check_freshness(self, name: str, lag: dict[str, int]) -> FreshnessReport:
        """The freshness rule of ``bronze.<name>`` (pages and recovers as due)."""
        return check_freshness(self.settings, name, lag=lag)

    def evaluate_alert(self, alert: Alert, *, failing: bool) -> Status | None:
        """Page (deduplicated) for a failing check, or send its recovery."""
        return alerter_for(self.settings).evaluate(alert, failing=failing, now=datetime.now(UTC))

    def compact(self, layer: Layer, name: str) -> CompactResult:
        return upkeep.compact_table(self.settings, layer, name)

    def vacuum(self, layer: Layer, name: str, *, dry_run: bool = False) -> VacuumResult:
        return upkeep.vacuum_table(self.settings, layer, name, dry_run=dry_run)

    def checkpoint(self, layer: Layer, name: str) -> CheckpointResult:
        return upkeep.checkpoint_table(self.settings, layer, name)


class KafkaResource(_Configured):
    """Kafka as Lakeport sees it: per bronze table, the lake's offsets against the high watermarks."""

    def lag(self) -> dict[str, dict[str, int]]:
        """``lakeport status``'s lag: table → {"topic[partition]": lag}."""
        return status.lag_by_table(self.settings)
