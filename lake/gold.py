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

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deltalake import DeltaTable, write_deltalake

from lake import tables
from lakeport.config import Settings

MODELS_DIR = Path(__file__).parent / "models"
_INPUT = re.compile(r"\b(silver|bronze)\.([A-Za-z_][A-Za-z0-9_]*)\b")


@dataclass(frozen=True)
class Model:
    name: str
    sql: str
    description: str
    key: tuple[str, ...]
    totals: tuple[tuple[str, str], ...]  # (column, SQL giving the expected sum)
    inputs: tuple[tuple[str, str], ...]  # (layer, table)


@dataclass(frozen=True)
class GoldResult:
    model: str
    version: int
    rows: int
    files: int
    seconds: float


def parse(path: Path) -> Model:
    text = path.read_text()
    header = [line[2:].strip() for line in text.splitlines() if line.startswith("--")]
    fields: dict[str, list[str]] = {}
    description = ""
    for line in header:
        tag, _, rest = line.partition(":")
        if tag.startswith("gold."):
            description = rest.strip()
        elif tag in ("key", "total"):
            fields.setdefault(tag, []).append(rest.strip())
    key = tuple(c.strip() for c in fields.get("key", [""])[0].split(",") if c.strip())
    totals = tuple((c.strip(), q.strip()) for c, _, q in (t.partition("=") for t in fields.get("total", [])))
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    inputs = tuple(sorted({(m.group(1), m.group(2)) for m in _INPUT.finditer(body)}))
    return Model(path.stem, body.strip(), description, key, totals, inputs)


def models(settings: Settings) -> list[Model]:
    """The models to build: ``gold.models`` (default: all) among those whose inputs are configured."""
    have = {(t.layer, t.name) for t in tables.lake_tables(settings)}
    dirs = [MODELS_DIR] + ([Path(settings.gold.models_dir)] if settings.gold.models_dir else [])
    found = {p.stem: parse(p) for d in dirs for p in sorted(d.glob("*.sql"))}
    wanted = settings.gold.models if settings.gold.models is not None else sorted(found)
    unknown = [name for name in wanted if name not in found]
    if unknown:
        raise ValueError(f"gold.models: no model file for {', '.join(unknown)} in {', '.join(map(str, dirs))}")
    return [found[name] for name in wanted if set(found[name].inputs) <= have]


def refresh_gold(settings: Settings, *, model: str | None = None, mode: Literal["full"] = "full") -> list[GoldResult]:
    """Rebuild ``gold.<model>`` (every available model if None) from the current silver/bronze."""
    from lake.query import connect

    chosen = [m for m in models(settings) if model is None or m.name == model]
    if model is not None and not chosen:
        raise ValueError(f"no gold model {model!r} whose inputs are all configured")
    con = connect(settings)
    out = []
    for m in chosen:
        started = time.monotonic()
        data = con.execute(m.sql).to_arrow_table()
        uri = settings.lake.table_uri("gold", m.name)
        opts = settings.lake.to_object_store() or None
        write_deltalake(uri, data, mode="overwrite", schema_mode="overwrite", storage_options=opts)
        table = DeltaTable(uri, storage_options=opts)
        out.append(GoldResult(m.name, table.version(), data.num_rows, len(table.file_uris()),
                              round(time.monotonic() - started, 3)))  # fmt: skip
    return out
