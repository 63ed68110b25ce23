"""Assets generated from the table config: adding a table to lakeport.yaml adds its assets.

``bronze/<table>`` (group ``bronze``): one bounded ``ingest --once`` materializes every bronze
table (or, with ``bronze_mode: observe``, a long-running ingest fills them and the bronze sensor
records it). ``silver/<table>`` and ``silver/<table>_history`` (group ``silver``) apply pending
bronze changes by MERGE.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import dagster as dg

from lakeport.dagster_project.resources import KafkaResource, LakeResource
from lakeport.lake.gold import models
from lakeport.lake.tables import LakeTable, TableFacts, silver_tables
from lakeport.settings import Settings


def bronze_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["bronze", name])


def silver_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", name])


def facts_metadata(facts: TableFacts | None) -> dict[str, Any]:
    return {} if facts is None else asdict(facts)


def bronze_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    specs = [
        dg.AssetSpec(
            bronze_key(t.name),
            group_name="bronze",
            kinds={"kafka", "delta"},
            description=f"Every record of {', '.join(t.subscriptions)} ({t.format}), exactly once.",
        )
        for t in settings.tables
    ]

    @dg.multi_asset(specs=specs, name="bronze_ingest", can_subset=False)
    def bronze_ingest(lake: LakeResource, kafka: KafkaResource) -> Iterator[dg.MaterializeResult]:
        stats = lake.ingest_once()
        lag = kafka.lag()
        for t in settings.tables:
            facts = lake.table_facts("bronze", t.name)
            yield dg.MaterializeResult(
                asset_key=bronze_key(t.name),
                metadata={
                    **facts_metadata(facts),
                    "rows_added": stats.tables.get(t.name, 0),
                    "dead_letters_run": stats.dead_letters,
                    "kafka_lag": dg.MetadataValue.json(lag.get(t.name, {})),
                },
            )

    return [bronze_ingest]


def pool(layer: str, name: str) -> str:
    """One concurrency pool per written table: with the instance's ``default_limit: 1`` (see
    ``lakeport dagster``), the scheduler never runs two applies of one table at once. (Two at once
    would still be correct, fenced by the Delta log; one of them would just redo its reading.)"""
    return f"lakeport.{layer}.{name}"


def silver_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    return [_silver_asset(t) for t in silver_tables(settings)]


_DESCRIPTIONS = {
    "current": "Current state of {source}: one row per live key, by MERGE from bronze.{source}.",
    "history": "SCD type 2 history of {source}: valid_from, valid_to, is_current.",
    "events": "The events of bronze.{source}, each once (deduplicated by its key).",
}
_METADATA = {  # result field -> metadata entry, per kind
    "current": {
        "changes": "changes",
        "keys": "keys_changed",
        "stale": "stale_changes",
        "files_rewritten": "files_rewritten",
        "toast_unavailable": "toast_values_unknown",
    },
    "history": {
        "versions_opened": "versions_opened",
        "versions_closed": "versions_closed",
        "toast_unavailable": "toast_values_unknown",
    },
    "events": {"changes": "changes", "keys": "new_events", "stale": "duplicates"},
}


def _silver_asset(table: LakeTable) -> dg.AssetsDefinition:
    @dg.asset(
        key=silver_key(table.name),
        deps=[bronze_key(table.source.name)],
        group_name="silver",
        kinds={"delta"},
        pool=pool("silver", table.name),
        description=_DESCRIPTIONS[table.kind].format(source=table.source.name),
    )
    def apply(lake: LakeResource) -> dg.MaterializeResult:
        result = _applied(lake.apply_silver(table.name))
        return dg.MaterializeResult(
            metadata={
                **facts_metadata(lake.table_facts("silver", table.name)),
                "bronze_version_applied": result["to_version"],
                **{label: result[field] for field, label in _METADATA[table.kind].items()},
                "seconds": round(result["seconds"], 3),
            }
        )

    return apply


def _applied(result: dict[str, Any]) -> dict[str, Any]:
    """A table that failed fails its own asset (with the library's message); others are not touched."""
    if result.get("error"):
        raise dg.Failure(description=str(result["error"]))
    return result


def gold_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["gold", name])


def gold_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """One asset per SQL model in lake/models/ whose inputs the config has, downstream of them."""
    return [_gold_asset(m.name, m.description, m.inputs) for m in models(settings)]


def _gold_asset(name: str, description: str, inputs: tuple[tuple[str, str], ...]) -> dg.AssetsDefinition:
    @dg.asset(
        key=gold_key(name),
        deps=[dg.AssetKey([layer, table]) for layer, table in inputs],
        group_name="gold",
        kinds={"duckdb", "delta"},
        description=f"{description} (lake/models/{name}.sql, full refresh)",
    )
    def model(lake: LakeResource) -> dg.MaterializeResult:
        (result,) = lake.refresh_gold(name)
        return dg.MaterializeResult(
            metadata={**facts_metadata(lake.table_facts("gold", name)), "rows": result.rows, "seconds": result.seconds}
        )

    return model
