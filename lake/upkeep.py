"""Maintenance of one lake table, as configured: the settings-level entry points that the Dagster
jobs (and anyone else) call. :mod:`lake.maintenance` does the work on a URI; this module only
decides, from the config, what each table needs:

- compaction Z-orders a bronze table by its configured ``z_order`` columns;
- bronze vacuum and log clean-up never go below the oldest version a silver table has not applied
  yet (:func:`lake.maintenance.unapplied_floor` over :func:`lake.refresh.readers_of`).
"""

from __future__ import annotations

from typing import Literal

from lakeport.lake import maintenance
from lakeport.lake.maintenance import CheckpointResult, CompactResult, VacuumResult
from lakeport.lake.refresh import readers_of
from lakeport.settings import Settings

Layer = Literal["bronze", "silver", "gold", "ops"]


def _floor(settings: Settings, layer: Layer, name: str) -> int | None:
    if layer != "bronze":
        return None
    uri = settings.lake.table_uri(layer, name)
    return maintenance.unapplied_floor(uri, readers_of(settings, name), storage_options=settings.lake.to_object_store())


def compact_table(settings: Settings, layer: Layer, name: str) -> CompactResult:
    """Rewrite ``<layer>.<name>``'s small files (bronze: Z-ordered by the table's ``z_order``)."""
    return maintenance.compact(
        settings.lake.table_uri(layer, name),
        storage_options=settings.lake.to_object_store(),
        target_size=settings.orchestration.compaction_target_size,
        z_order=settings.table(name).z_order if layer == "bronze" else (),
    )


def vacuum_table(settings: Settings, layer: Layer, name: str, *, dry_run: bool = False) -> VacuumResult:
    """Delete files older than the retention that no kept version needs (retention-guarded)."""
    orch = settings.orchestration
    return maintenance.vacuum(
        settings.lake.table_uri(layer, name),
        storage_options=settings.lake.to_object_store(),
        retention_hours=orch.vacuum_retention_hours,
        min_retention_hours=orch.vacuum_min_retention_hours,
        dry_run=dry_run,
        keep_from_version=_floor(settings, layer, name),
    )


def checkpoint_table(settings: Settings, layer: Layer, name: str) -> CheckpointResult:
    """Write a checkpoint and clean up the log entries no kept version needs."""
    return maintenance.checkpoint(
        settings.lake.table_uri(layer, name),
        storage_options=settings.lake.to_object_store(),
        keep_from_version=_floor(settings, layer, name),
    )
