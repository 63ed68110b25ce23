"""Gold models: one SQL file per model in ``lake/models/``, materialized as Delta tables
``gold.<model>`` by a full refresh (the query runs in DuckDB over the silver/bronze views, the
result replaces the table in one Delta commit, so readers see the old or the new table, never half).

A model file starts with comment lines the platform reads:

    -- gold.<name>: what it is (the description)
    -- key: col[, col]                     (unique and not null: a quality rule)
    -- total: <column> = <SQL returning one number>   (sum(column) must equal it: a quality rule)

Its inputs are the ``silver.<t>`` / ``bronze.<t>`` it names; a model whose inputs are not all in
the configuration is left out (and so is its Dagster asset).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from deltalake import DeltaTable, write_deltalake

from lakeport.lake.gold_models import MODELS_DIR, Model, models, parse
from lakeport.lake.query import Lake
from lakeport.settings import Settings

__all__ = ["MODELS_DIR", "GoldResult", "Model", "models", "parse", "refresh_gold"]


@dataclass(frozen=True)
class GoldResult:
    model: str
    version: int
    rows: int
    files: int
    seconds: float


def refresh_gold(settings: Settings, *, model: str | None = None, mode: Literal["full"] = "full") -> list[GoldResult]:
    """Rebuild ``gold.<model>`` (every available model if None) from the current silver/bronze."""
    chosen = [m for m in models(settings) if model is None or m.name == model]
    if model is not None and not chosen:
        raise ValueError(f"no gold model {model!r} whose inputs are all configured")
    out = []
    with Lake(settings) as lake:
        for m in chosen:
            started = time.monotonic()
            data = lake.execute(m.sql).to_arrow_table()
            uri = settings.lake.table_uri("gold", m.name)
            opts = settings.lake.to_object_store() or None
            write_deltalake(uri, data, mode="overwrite", schema_mode="overwrite", storage_options=opts)
            table = DeltaTable(uri, storage_options=opts)
            seconds = round(time.monotonic() - started, 3)
            out.append(GoldResult(model=m.name, version=table.version(), rows=data.num_rows,
                                  files=len(table.file_uris()), seconds=seconds))  # fmt: skip
    return out
