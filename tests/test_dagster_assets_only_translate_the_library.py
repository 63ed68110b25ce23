"""The Dagster project only wires: with its resources swapped for fakes (the library's results,
made up), the assets and checks report exactly what the fakes returned, a failed table fails its
own asset with the library's message, and nothing reads the config file or touches a lake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from helpers import write_config

from lakeport.dagster_project.definitions import build
from lakeport.dagster_project.resources import KafkaResource, LakeResource
from lakeport.ingestion.records import RunStats
from lakeport.lake.tables import TableFacts
from lakeport.quality.freshness import FreshnessReport
from lakeport.quality.run import SuiteResult

MISSING = "/nonexistent/lakeport.yaml"  # a fake that read its settings would fail on this


class FakeLake(LakeResource):
    failing: str = ""  # the silver table whose apply fails

    def ingest_once(self) -> RunStats:
        return RunStats(messages=12, rows=12, dead_letters=1, commits=2, tables={"orders": 12})

    def apply_silver(self, name: str) -> dict[str, Any]:
        if name == self.failing:
            return {
                "kind": "current",
                "table": name,
                "error": "ChangeFeedGone: bronze.orders versions 3..5 were vacuumed",
            }
        common = {"table": "orders", "from_version": 0, "to_version": 7, "seconds": 0.25, "error": None}
        if name.endswith("_history"):
            return {**common, "kind": "history", "versions_opened": 5, "versions_closed": 3,
                    "toast_unavailable": 0}  # fmt: skip
        return {**common, "kind": "current", "changes": 12, "keys": 9, "stale": 2, "files_rewritten": 1,
                "toast_unavailable": 3}  # fmt: skip

    def table_facts(self, layer: str, name: str) -> TableFacts | None:
        return TableFacts(version=7, files=2, bytes=2048, rows=9 if layer == "silver" else 12)

    def check_quality(self, layer: str, name: str) -> SuiteResult:
        return SuiteResult(suite=f"{layer}.{name}", layer=layer, table=name, version=7, since_version=None,
                           rows_checked=9)  # fmt: skip

    def check_freshness(self, name: str, lag: dict[str, int]) -> FreshnessReport:
        return FreshnessReport(table=name, newest_age_seconds=5400.0, lag=lag, limit_minutes=30.0, lag_limit=100,
                               alert_sent="firing")  # fmt: skip


class FakeKafka(KafkaResource):
    def lag(self) -> dict[str, dict[str, int]]:
        return {"orders": {"orders[0]": 40, "orders[1]": 2}}


def _defs(tmp_path: Path, lake: FakeLake) -> dg.Definitions:
    tables = [{"name": "orders", "topics": ["orders"], "format": "debezium-json", "key": ["id"], "history": True}]
    config = write_config(tmp_path / "lakeport.yaml", None, tables=tables, lake_uri=str(tmp_path / "lake"),
                          extra={"gold": {"models": []}})  # fmt: skip
    return build(str(config), resources={"lake": lake, "kafka": FakeKafka(config_path=MISSING)})


def test_assets_and_checks_report_what_the_library_returned(tmp_path: Path) -> None:
    result = _defs(tmp_path, FakeLake(config_path=MISSING)).resolve_job_def("ingest_and_silver").execute_in_process()
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert meta["bronze/orders"]["rows_added"].value == 12
    assert meta["bronze/orders"]["dead_letters_run"].value == 1
    assert meta["bronze/orders"]["rows"].value == 12
    assert meta["silver/orders"]["stale_changes"].value == 2
    assert meta["silver/orders"]["keys_changed"].value == 9
    assert meta["silver/orders"]["toast_values_unknown"].value == 3
    assert meta["silver/orders"]["bronze_version_applied"].value == 7
    assert meta["silver/orders"]["rows"].value == 9
    assert meta["silver/orders_history"]["versions_opened"].value == 5
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["quality"].passed and checks["quality"].metadata["rows_checked"].value == 9
    fresh = checks["fresh_and_caught_up"]
    assert not fresh.passed
    assert fresh.metadata["newest_row_age_minutes"].value == 90.0
    assert fresh.metadata["kafka_lag"].value == 42
    assert fresh.metadata["alert_sent"].value == "firing"


def test_a_failed_silver_table_fails_its_own_asset_with_the_library_message(tmp_path: Path) -> None:
    lake = FakeLake(config_path=MISSING, failing="orders")
    result = _defs(tmp_path, lake).resolve_job_def("refresh_silver").execute_in_process(raise_on_error=False)
    assert not result.success
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert done == {"silver/orders_history"}  # the other table was applied anyway
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "ChangeFeedGone: bronze.orders versions 3..5" in str(failure.event_specific_data)
