"""The Dagster code location. This module only wires: assets, checks, jobs, schedules and sensors
are built from the table config by the modules next to it.

Load with ``dagster dev -m dagster_project.definitions`` (``LAKEPORT_CONFIG`` names the config).
"""

from __future__ import annotations

import os

import dagster as dg

from lakeport.dagster_project.assets import bronze_assets, gold_assets, silver_assets
from lakeport.dagster_project.checks import freshness_checks, quality_checks
from lakeport.dagster_project.maintenance import maintenance_jobs
from lakeport.dagster_project.resources import KafkaResource, LakeResource
from lakeport.dagster_project.sensors import bronze_version_sensor, run_failure_sensors
from lakeport.settings import load_settings


def build(config_path: str | None = None) -> dg.Definitions:
    settings = load_settings(config_path)
    orch = settings.orchestration
    path = config_path or ""
    ingest_job = dg.define_asset_job(
        "ingest_and_silver", selection=dg.AssetSelection.groups("bronze", "silver", "gold")
    )
    silver_job = dg.define_asset_job("refresh_silver", selection=dg.AssetSelection.groups("silver", "gold"))
    maintenance = maintenance_jobs(settings)
    by_name = {job.name: job for job in maintenance}
    schedules = [
        dg.ScheduleDefinition(job=by_name["compact_lake"], cron_schedule=orch.compaction_cron),
        dg.ScheduleDefinition(job=by_name["vacuum_lake"], cron_schedule=orch.vacuum_cron),
        dg.ScheduleDefinition(job=by_name["checkpoint_lake"], cron_schedule=orch.vacuum_cron),
    ]
    if orch.bronze_mode == "materialize":
        schedules.append(dg.ScheduleDefinition(job=ingest_job, cron_schedule=orch.ingest_cron))
    return dg.Definitions(
        assets=[*bronze_assets(settings), *silver_assets(settings), *gold_assets(settings)],
        asset_checks=[*freshness_checks(settings), *quality_checks(settings)],
        jobs=[ingest_job, silver_job, *maintenance],
        schedules=schedules,
        sensors=[bronze_version_sensor(settings, silver_job), *run_failure_sensors(settings)],
        resources={"lake": LakeResource(config_path=path), "kafka": KafkaResource(config_path=path)},
    )


defs = build(os.environ.get("LAKEPORT_CONFIG"))
