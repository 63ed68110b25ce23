"""Lakeport settings: one YAML file, validated, with ``${ENV}`` substitution and env overrides.

Settings are built once at the edge (CLI, Dagster resource) with :func:`load_settings` and
passed down; library code never reads the environment itself.

Precedence, highest first: ``LAKEPORT_<SECTION>__<FIELD>`` environment variables, the YAML file,
the defaults below. Values whose key looks like a credential are held as ``SecretStr`` and are
redacted in every ``repr``, log line and error message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lakeport.settings.base import Section, reveal, with_secrets
from lakeport.settings.gold import GoldSettings
from lakeport.settings.quality import AlertSettings, QualitySettings
from lakeport.settings.security import SecuritySettings
from lakeport.settings.sources import SourceSettings
from lakeport.settings.tables import TableConfig

DEFAULT_CONFIG_NAME = "lakeport.yaml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the field."""


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:19092"
    group_id: str = "lakeport"
    properties: dict[str, str | SecretStr] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _secret_properties(cls, data: Any) -> Any:
        return with_secrets(data, "properties")

    def to_librdkafka(self, **overrides: Any) -> dict[str, Any]:
        """The librdkafka configuration; user ``properties`` win over Lakeport's defaults."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        conf.update(overrides)
        conf.update(reveal(self.properties))
        return conf


class LakeSettings(Section):
    uri: str = "s3://lake"
    storage_options: dict[str, str | SecretStr] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _secret_options(cls, data: Any) -> Any:
        return with_secrets(data, "storage_options")

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri or self.uri.startswith("file://")

    def to_object_store(self) -> dict[str, str]:
        """Storage options for delta-rs / object_store (secrets revealed: never log this)."""
        return reveal(self.storage_options)

    def table_uri(self, layer: str, name: str) -> str:
        base = self.uri[len("file://") :] if self.uri.startswith("file://") else self.uri
        if self.is_local:
            base = str(Path(base).resolve())
        return f"{base.rstrip('/')}/{layer}/{name}"


class CdcSettings(Section):
    """How silver applies change streams."""

    delete_retention_hours: float = Field(
        168.0,
        gt=0,
        description="how long a deleted key's delete position is remembered; a replayed change older "
        "than a delete forgotten by then re-inserts the key (keep it above the CDC topics' retention)",
    )
    chunk_rows: int = Field(200_000, gt=0, description="bronze change rows applied per silver commit (bounds memory)")


class IngestSettings(Section):
    flush_rows: int = Field(100_000, gt=0, description="flush a table's buffer at this many rows")
    flush_bytes: int = Field(64 * 1024 * 1024, gt=0, description="... or at this many raw bytes")
    flush_seconds: float = Field(10.0, gt=0, description="... or when its oldest message is this old")
    max_message_bytes: int = Field(1024 * 1024, gt=0, description="larger values: dead letters")
    max_nesting_depth: int = Field(16, gt=0, le=512, description="records nested deeper: dead letters")
    from_timestamp: datetime | None = Field(
        None, description="partitions with no offsets in the lake start at this time (backfill into a fresh table)"
    )
    max_new_columns_per_batch: int = Field(100, ge=0, description="records bringing more new columns: dead letters")
    poll_messages: int = Field(10_000, gt=0, description="messages taken from the client per poll")
    tombstones: Literal["record", "skip"] = "record"
    on_gap: Literal["fail", "skip"] = Field(
        "fail", description="records Kafka deleted before they landed: stop (fail) or read on from the log start (skip)"
    )
    retry_timeout_seconds: float = Field(300.0, gt=0, description="retry a down dependency this long")
    retry_backoff_seconds: float = Field(0.5, gt=0)
    once_wait_seconds: float = Field(120.0, ge=0, description="--once: wait this long for partitions held by others")
    target_file_size: int | None = Field(None, gt=0)
    compression: Literal["ZSTD", "SNAPPY", "LZ4_RAW", "UNCOMPRESSED"] = "ZSTD"
    parquet_dictionary: Literal["metadata", "all"] = Field(
        "metadata", description="dictionary-encode only Kafka/CDC metadata columns, or every column"
    )


class OrchestrationSettings(Section):
    """What the Dagster code location schedules, and the limits its checks enforce."""

    bronze_mode: Literal["materialize", "observe"] = Field(
        "materialize",
        description="materialize: Dagster runs bounded ingests; observe: a long-running ingest fills bronze",
    )
    ingest_cron: str = "*/5 * * * *"
    compaction_cron: str = "0 * * * *"
    vacuum_cron: str = "30 3 * * *"
    freshness_limit_minutes: float = Field(60.0, gt=0, description="newest bronze row older than this: check fails")
    lag_limit_messages: int = Field(100_000, ge=0, description="Kafka lag above this: check fails")
    compaction_target_size: int | None = Field(None, gt=0, description="bytes per file after compaction")
    vacuum_retention_hours: float = Field(168.0, ge=0)
    vacuum_min_retention_hours: float = Field(168.0, ge=0, description="vacuum never goes below this retention")

    @model_validator(mode="after")
    def _retention_floor(self) -> OrchestrationSettings:
        if self.vacuum_retention_hours < self.vacuum_min_retention_hours:
            raise ValueError("vacuum_retention_hours is below vacuum_min_retention_hours")
        return self


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="LAKEPORT_",
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    cdc: CdcSettings = Field(default_factory=CdcSettings)
    tables: list[TableConfig] = Field(default_factory=list)
    sources: list[SourceSettings] = Field(default_factory=list)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    gold: GoldSettings = Field(default_factory=GoldSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)

    @model_validator(mode="after")
    def _unique_routes(self) -> Settings:
        names = [t.name for t in self.tables]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"table names must be unique, repeated: {', '.join(dupes)}")
        for t in self.tables:
            for rule in t.quality:
                if rule.table is not None and rule.table not in names:
                    raise ValueError(f"table {t.name}: rule {rule.label} references unknown table {rule.table!r}")
        for t in self.tables:
            dropped = [r.column for r in t.column_rules if r.action == "drop" and r.column in t.key]
            if dropped:
                raise ValueError(f"table {t.name}: column_rules drop key column(s) {', '.join(dropped)}")
        hashing = [t.name for t in self.tables if any(r.action == "hash" for r in t.column_rules)]
        if hashing and not self.security.hash_salt.get_secret_value():
            raise ValueError(f"security.hash_salt must be set: tables {', '.join(hashing)} hash columns")
        sources = [s.name for s in self.sources]
        if len(set(sources)) != len(sources):
            raise ValueError("source names must be unique")
        return self

    def source(self, name: str | None) -> SourceSettings:
        if not self.sources:
            raise ConfigError("no 'sources' in the configuration")
        if name is None:
            return self.sources[0]
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"no source named {name!r} in the configuration")

    def table(self, name: str) -> TableConfig:
        for table in self.tables:
            if table.name == name:
                return table
        raise ConfigError(f"no table named {name!r} in the configuration")

    def route(self, topic: str) -> TableConfig | None:
        """The table a topic lands in (the first configured match)."""
        return next((t for t in self.tables if t.matches(topic)), None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def substitute_env(text: str, environ: Mapping[str, str], *, source: str) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; a missing variable without default fails."""

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{source}: environment variable {name} is not set (used as ${{{name}}})")

    return _ENV_REF.sub(repl, text)


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {field}: {err['msg']}")
    return "\n".join(lines)


def resolve_config_path(path: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    if path is not None:
        return Path(path)
    if environ.get("LAKEPORT_CONFIG"):
        return Path(environ["LAKEPORT_CONFIG"])
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.exists() else None


def load_settings(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, substitute and validate the configuration; raise :class:`ConfigError` if unusable.

    ``environ`` feeds ``${VAR}`` substitution and ``LAKEPORT_CONFIG``; ``LAKEPORT_<SECTION>__<FIELD>``
    overrides are read by pydantic-settings from the process environment.
    """
    env = dict(os.environ if environ is None else environ)
    config_path = resolve_config_path(path, env)
    source = str(config_path) if config_path else "(defaults)"
    data: Any = {}
    if config_path is not None:
        if not config_path.is_file():
            raise ConfigError(f"{source}: configuration file not found")
        try:
            data = yaml.safe_load(substitute_env(config_path.read_text(), env, source=source))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{source}: not valid YAML{where}") from None
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
