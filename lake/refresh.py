"""Bring every CDC table's silver current state (and SCD2 history, where configured) up to date.

One entry point for the CLI (``lakeport silver``) and the orchestrator.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from lake.history import apply_history
from lake.silver import apply_changes

if TYPE_CHECKING:
    from lakeport.config import Settings, TableConfig


def cdc_tables(settings: Settings, only: str | None = None) -> list[TableConfig]:
    return [t for t in settings.tables if t.format == "debezium-json" and t.key and only in (None, t.name)]


def key_map_uri(settings: Settings, table: TableConfig) -> str | None:
    return settings.lake.table_uri("ops", f"{table.name}_key_map") if table.source_key else None


def refresh_silver(settings: Settings, *, table: str | None = None) -> list[dict[str, Any]]:
    """Apply pending bronze changes; one result dict per table and kind (current, history)."""
    opts, lake = settings.lake.to_object_store(), settings.lake
    results: list[dict[str, Any]] = []
    for t in cdc_tables(settings, table):
        bronze = lake.table_uri("bronze", t.name)
        done = apply_changes(
            t.name,
            bronze,
            lake.table_uri("silver", t.name),
            key=t.key,
            storage_options=opts,
            source_key=t.source_key,
            key_map_uri=key_map_uri(settings, t),
        )
        results.append({"kind": "current", **asdict(done)})
        if t.history:
            hist = apply_history(
                t.name,
                bronze,
                lake.table_uri("silver", f"{t.name}_history"),
                key=t.key,
                storage_options=opts,
                source_key=t.source_key,
            )
            results.append({"kind": "history", **asdict(hist)})
    return results
