"""The ground of the house: settings, built once at the edge and passed down.

Every package may import this one; it imports nothing of Lakeport's. ``config`` is the YAML
file's model and loader; ``tables``, ``sources``, ``gold``, ``quality`` and ``security`` are its
larger sections (``base`` what they share);
``log`` and ``runtime`` are the process set-up the edges (CLI, Dagster) apply from them.
"""

from __future__ import annotations

from lakeport.settings.config import (
    DEFAULT_CONFIG_NAME,
    CdcSettings,
    ConfigError,
    IngestSettings,
    KafkaSettings,
    LakeSettings,
    OrchestrationSettings,
    Settings,
    load_settings,
)
from lakeport.settings.sources import PostgresSettings, SourceSettings
from lakeport.settings.tables import TableConfig

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "CdcSettings",
    "ConfigError",
    "IngestSettings",
    "KafkaSettings",
    "LakeSettings",
    "OrchestrationSettings",
    "PostgresSettings",
    "Settings",
    "SourceSettings",
    "TableConfig",
    "load_settings",
]
