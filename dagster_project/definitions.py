"""The Dagster code location. This module only wires: assets, checks, jobs, schedules and sensors
are built from the table config by the modules next to it.

Load with ``dagster dev -m lakeport.dagster_project.definitions`` (``LAKEPORT_CONFIG`` names the config).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from lakeport.dagster_project.assets import bronze_assets, gold_assets, silver_assets
from lakeport.dagster_project.checks import freshness_checks, quality_checks
from lakeport.dagster_project.jobs import jobs, schedules
from lakeport.dagster_project.resources import KafkaResource, LakeResource
from lakeport.dagster_project.sensors import bronze_version_sensor, run_failure_sensors
from lakeport.settings import load_settings


def build(config_path: str | None = None, *, resources: dict[str, Any] | None = None) -> dg.Definitions:
    """The definitions of the lake ``config_path`` describes; ``resources`` replaces the real
    ``lake`` and ``kafka`` resources (tests pass fakes)."""
    settings = load_settings(config_path)
    path = config_path or ""
    built = jobs(settings)
    return dg.Definitions(
        assets=[*bronze_assets(settings), *silver_assets(settings), *gold_assets(settings)],
        asset_checks=[*freshness_checks(settings), *quality_checks(settings)],
        jobs=built.all(),
        schedules=schedules(settings, built),
        sensors=[bronze_version_sensor(settings, built.silver), *run_failure_sensors(settings)],
        resources=resources or {"lake": LakeResource(config_path=path), "kafka": KafkaResource(config_path=path)},
    )


defs = build(os.environ.get("LAKEPORT_CONFIG"))
