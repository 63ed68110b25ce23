"""Asset checks: each bronze table is fresh (newest row age) and caught up (Kafka lag); each table
with a quality suite passes it (Great Expectations, see quality/). Error-severity suites block
what is downstream; breaches and failures page through the configured notifiers."""

from __future__ import annotations

import json

import dagster as dg

from lakeport.dagster_project.assets import bronze_key, gold_key, silver_key
from lakeport.dagster_project.resources import KafkaResource, LakeResource
from lakeport.quality.suites import Suite, suites_for
from lakeport.settings import Settings


def freshness_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    orch = settings.orchestration
    return [_freshness(t.name, orch.freshness_limit_minutes, orch.lag_limit_messages) for t in settings.tables]


def quality_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    return [_quality(suite) for suite in suites_for(settings)]


def _freshness(name: str, limit_minutes: float, lag_limit: int) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=bronze_key(name),
        name="fresh_and_caught_up",
        description=f"newest row at most {limit_minutes} min old and Kafka lag at most {lag_limit}",
    )
    def check(lake: LakeResource, kafka: KafkaResource) -> dg.AssetCheckResult:
        report = lake.check_freshness(name, kafka.lag().get(name, {}))
        return dg.AssetCheckResult(
            passed=report.passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "newest_row_age_minutes": report.newest_age_minutes,
                "limit_minutes": report.limit_minutes,
                "kafka_lag": report.total_lag,
                "lag_limit": report.lag_limit,
                "lag_per_partition": dg.MetadataValue.json(dict(report.lag)),
                "alert_sent": report.alert_sent or "none",
            },
        )

    return check


def _quality(suite: Suite) -> dg.AssetChecksDefinition:
    key = {"bronze": bronze_key, "silver": silver_key, "gold": gold_key}[suite.layer](suite.table)
    rules = ", ".join(r.label for r in suite.rules)

    @dg.asset_check(
        asset=key,
        name="quality",
        blocking=suite.blocking,
        description=f"Great Expectations suite {suite.name}" + (" (new rows only)" if suite.incremental else "")
        + f": {rules}",
    )  # fmt: skip
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        result = lake.check_quality(suite.layer, suite.table)
        failed = [o for o in result.outcomes if not o.success]
        return dg.AssetCheckResult(
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR if result.errors else dg.AssetCheckSeverity.WARN,
            metadata={
                "delta_version": result.version,
                "rows_checked": result.rows_checked,
                "expectations": len(result.outcomes),
                "failed": dg.MetadataValue.json(
                    {
                        o.expectation: {
                            "severity": o.severity,
                            "unexpected": o.unexpected_count,
                            "sample_keys": list(o.sample_keys),
                        }
                        for o in failed
                    }
                ),
                "alerts_sent": dg.MetadataValue.json(json.loads(json.dumps(result.alerts_sent))),
                "see_more": f"lakeport sql \"SELECT * FROM ops.quality_results WHERE suite = '{suite.name}' "
                'ORDER BY run_at DESC"',
            },
        )

    return check
