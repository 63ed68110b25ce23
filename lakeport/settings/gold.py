"""Settings for the gold layer: which SQL models are materialized, and where more of them live."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GoldSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = Field(
        None, description="model names to build; default: every model whose input tables are configured"
    )
    models_dir: str | None = Field(None, description="a directory of your own *.sql models, next to the built-in ones")
