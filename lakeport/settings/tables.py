"""One configured table: where its records come from, their format and key, and what is kept."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from lakeport.settings.base import IDENT, Section
from lakeport.settings.quality import QualityRule
from lakeport.settings.security import ColumnRule


class TableConfig(Section):
    name: str = Field(pattern=IDENT)
    topics: list[str] = Field(default_factory=list)
    topic_pattern: str | None = None
    format: Literal["debezium-json", "json"] = "json"
    key: list[str] = Field(default_factory=list)
    partition_by: list[str] = Field(default_factory=list)
    history: bool = False  # keep silver.<name>_history (SCD type 2)
    z_order: list[str] = Field(default_factory=list, description="columns to Z-order by when compacting")
    source_key: list[Literal["source_db", "source_schema", "topic"]] = Field(
        default_factory=list, description="prefix the silver key with these, and assign a stable lake_id"
    )
    quality: list[QualityRule] = Field(default_factory=list, description="expectations on this table")
    column_rules: list[ColumnRule] = Field(default_factory=list, description="drop / hash / mask before landing")
    unnest: list[str] = Field(
        default_factory=list,
        description="struct columns whose fields become top-level columns (e.g. an outbox 'payload')",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TableConfig:
        if bool(self.topics) == bool(self.topic_pattern):
            raise ValueError("give exactly one of 'topics' or 'topic_pattern'")
        if self.topic_pattern is not None:
            try:
                re.compile(self.topic_pattern)
            except re.error as exc:
                raise ValueError(f"topic_pattern is not a valid regex: {exc}") from None
        return self

    def matches(self, topic: str) -> bool:
        if self.topic_pattern is not None:
            return re.fullmatch(self.topic_pattern.removeprefix("^"), topic) is not None
        return topic in self.topics

    @property
    def subscriptions(self) -> list[str]:
        if self.topic_pattern is not None:
            pattern = self.topic_pattern
            return [pattern if pattern.startswith("^") else f"^{pattern}"]
        return list(self.topics)
