"""Jobs and schedules. The asset jobs land and apply; the maintenance jobs compact, vacuum
(retention-guarded) and checkpoint every Delta table, each recording its metrics as an
observation of the table's asset. Schedules come from ``orchestration`` in the config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import dagster as dg

from lakeport.dagster_project.resources import LakeResource
from lakeport.lake.tables import lake_tables
from lakeport.settings import Settings

Maintain = Callable[[LakeResource, Any, str], Any]  # (lake, layer, name) -> the library's result
MAINTENANCE: dict[str, Maintain] = {
    "compact": lambda lake, layer, name: lake.compact(layer, name),
    "vacuum": lambda lake, layer, name: lake.vacuum(layer, name),
    "vacuum_dry_run": lambda lake, layer, name: lake.vacuum(layer, name, dry_run=True),
    "checkpoint": lambda lake, layer, name: lake.checkpoint(layer, name),
}


@dataclass(frozen=True)
class Jobs:
    ingest: dg.UnresolvedAssetJobDefinition  # bronze, silver and gold
    silver: dg.UnresolvedAssetJobDefinition  # silver and gold (what the bronze sensor runs)
    maintenance: dict[str, dg.JobDefinition]

    def all(self) -> list[Any]:
        return [self.ingest, self.silver, *self.maintenance.values()]


def jobs(settings: Settings) -> Jobs:
    return Jobs(
        ingest=dg.define_asset_job("ingest_and_silver", selection=dg.AssetSelection.groups("bronze", "silver", "gold")),
        silver=dg.define_asset_job("refresh_silver", selection=dg.AssetSelection.groups("silver", "gold")),
        maintenance={action: _maintenance_job(settings, action) for action in MAINTENANCE},
    )


def schedules(settings: Settings, built: Jobs) -> list[dg.ScheduleDefinition]:
    orch = settings.orchestration
    out = [
        dg.ScheduleDefinition(job=built.maintenance["compact"], cron_schedule=orch.compaction_cron),
        dg.ScheduleDefinition(job=built.maintenance["vacuum"], cron_schedule=orch.vacuum_cron),
        dg.ScheduleDefinition(job=built.maintenance["checkpoint"], cron_schedule=orch.vacuum_cron),
    ]
    if orch.bronze_mode == "materialize":
        out.append(dg.ScheduleDefinition(job=built.ingest, cron_schedule=orch.ingest_cron))
    return out


def _metadata(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(result).items():
        if isinstance(value, tuple | list):
            out[f"{key}_count"] = len(value)
            out[key] = dg.MetadataValue.json([str(v) for v in value[:50]])
        else:
            out[key] = value
    return out


def _maintenance_job(settings: Settings, action: str) -> dg.JobDefinition:
    """``<action>_lake``: one op over every bronze and silver table that exists."""
    tables = [(t.layer, t.name) for t in lake_tables(settings)]
    verb = action.removesuffix("_dry_run")
    suffix = "_dry_run" if action.endswith("_dry_run") else ""
    maintain = MAINTENANCE[action]

    @dg.op(name=f"{verb}_tables{suffix}")
    def run(context, lake: LakeResource) -> None:  # type: ignore[no-untyped-def]  # dagster checks the hint
        for layer, name in tables:
            if lake.table_facts(layer, name) is None:
                continue
            result = maintain(lake, layer, name)
            context.log_event(
                dg.AssetObservation(asset_key=[layer, name], metadata={"action": verb, **_metadata(result)})
            )

    @dg.job(name=f"{verb}_lake{suffix}", description=f"{verb} every Delta table of the lake{suffix.replace('_', ' ')}")
    def job() -> None:
        run()

    return job
