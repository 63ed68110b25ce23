"""Asset checks: each bronze table is fresh (newest row age) and caught up (Kafka lag)."""

from __future__ import annotations

import dagster as dg

from dagster_project.assets import bronze_key
from dagster_project.resources import KafkaResource, LakeResource
from lakeport.config import Settings


def freshness_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    orch = settings.orchestration
    return [_freshness(t.name, orch.freshness_limit_minutes, orch.lag_limit_messages) for t in settings.tables]


def _freshness(name: str, limit_minutes: float, lag_limit: int) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=bronze_key(name), name="fresh_and_caught_up", description="newest row age and Kafka lag")
    def check(lake: LakeResource, kafka: KafkaResource) -> dg.AssetCheckResult:
        age = lake.newest_age_seconds(name)
        lag = kafka.lag().get(name, {})
        total = sum(lag.values())
        fresh = age is not None and age <= limit_minutes * 60
        return dg.AssetCheckResult(
            passed=fresh and total <= lag_limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "newest_row_age_minutes": None if age is None else round(age / 60, 2),
                "limit_minutes": limit_minutes,
                "kafka_lag": total,
                "lag_limit": lag_limit,
                "lag_per_partition": dg.MetadataValue.json(lag),
            },
        )

    return check
