"""Gold model files: ``lake/models/*.sql`` (and ``gold.models_dir``), their headers and inputs.

Read by the query layer (which views exist) and by :mod:`lake.gold` (which builds them); it
imports neither, so they do not import each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lakeport.lake import tables
from lakeport.settings import Settings

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
