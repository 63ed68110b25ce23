"""Maintenance jobs over every Delta table: compaction, vacuum (retention-guarded), checkpoints.
Each records its metrics as an observation of the table's asset."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import dagster as dg

from lakeport.dagster_project.resources import LakeResource
from lakeport.lake.tables import lake_tables as written_tables
from lakeport.settings import Settings


def lake_tables(settings: Settings) -> list[tuple[str, str]]:
    """(layer, name) of every bronze and silver table Lakeport writes."""
    return [(t.layer, t.name) for t in written_tables(settings)]


def _metadata(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(result).items():
        if isinstance(value, tuple | list):
            out[f"{key}_count"] = len(value)
            out[key] = dg.MetadataValue.json([str(v) for v in value[:50]])
        else:
            out[key] = value
    return out


def _maintenance_job(settings: Settings, action: str, *, dry_run: bool = False) -> dg.JobDefinition:
    tables = lake_tables(settings)
    suffix = "_dry_run" if dry_run else ""

    @dg.op(name=f"{action}_tables{suffix}")
    def run(context, lake: LakeResource) -> None:  # type: ignore[no-untyped-def]  # dagster checks the hint
        for layer, name in tables:
            if not lake.table_facts(layer, name).get("exists"):
                continue
            result = lake.maintain(action, layer, name, dry_run=dry_run)
            context.log_event(
                dg.AssetObservation(asset_key=[layer, name], metadata={"action": action, **_metadata(result)})
            )

    @dg.job(
        name=f"{action}_lake{suffix}", description=f"{action} every Delta table of the lake{suffix.replace('_', ' ')}"
    )
    def job() -> None:
        run()

    return job


def maintenance_jobs(settings: Settings) -> list[dg.JobDefinition]:
    return [
        _maintenance_job(settings, "compact"),
        _maintenance_job(settings, "vacuum"),
        _maintenance_job(settings, "vacuum", dry_run=True),
        _maintenance_job(settings, "checkpoint"),
    ]
