"""Suites as code: the expectations of each (layer, table), from its ``quality:`` rules in
lakeport.yaml plus the rules every table gets (keys not null and unique, rows match offsets,
no new dead letters)."""

from __future__ import annotations

from dataclasses import dataclass

from lakeport.lake.keys import silver_key
from lakeport.settings import Settings, TableConfig
from lakeport.settings.quality import QualityRule

Layer = str  # "bronze" | "silver"
BRONZE_INDEX = ["_topic", "_partition", "_offset"]


@dataclass(frozen=True)
class Suite:
    layer: Layer
    table: str
    rules: tuple[QualityRule, ...]
    index: tuple[str, ...]  # columns that name a failing row (sample keys)
    incremental: bool  # bronze: only rows new since the last validated version

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.table}"

    @property
    def blocking(self) -> bool:
        """An error-severity rule failing stops what is downstream."""
        return any(r.severity == "error" for r in self.rules)


def is_cdc(t: TableConfig) -> bool:
    return t.format == "debezium-json" and bool(t.key)


def _silver_key(t: TableConfig) -> list[str]:
    """A CDC table's silver key (with its source fields); an events table's event key."""
    return silver_key(t.key, t.source_key) if is_cdc(t) else list(t.key)


def default_layer(t: TableConfig) -> Layer:
    return "silver" if is_cdc(t) else "bronze"


def _defaults(t: TableConfig, layer: Layer) -> list[QualityRule]:
    if layer == "silver":
        key = _silver_key(t)
        return [
            QualityRule(expect="not_null", columns=key, name="key_not_null"),
            QualityRule(expect="unique", columns=key, name="key_unique"),
            QualityRule(expect="columns", types=dict.fromkeys(key, "any"), name="key_columns_present"),
        ]
    rules = [
        QualityRule(expect="row_count", name="rows_match_offsets"),
        QualityRule(expect="columns", types=dict.fromkeys(BRONZE_INDEX, "any"), name="kafka_columns_present"),
        QualityRule(expect="not_null", columns=BRONZE_INDEX, name="kafka_position_not_null"),
    ]
    if not is_cdc(t) and t.key:  # events carry their own id: one row per event
        rules += [
            QualityRule(expect="not_null", columns=t.key, name="key_not_null"),
            QualityRule(expect="unique", columns=t.key, name="key_unique"),
        ]
    return rules


def suites_for(settings: Settings, *, table: str | None = None, layer: Layer | None = None) -> list[Suite]:
    """Every suite of the config (or of one table / layer); a layer without rules has no suite."""
    out = []
    for t in settings.tables:
        if table is not None and t.name != table:
            continue
        layers = ["bronze", "silver"] if t.key else ["bronze"]  # keyed: silver current state or events
        for lay in layers:
            if layer is not None and lay != layer:
                continue
            declared = [r for r in t.quality if (r.layer or default_layer(t)) == lay]
            rules = (_defaults(t, lay) if settings.quality.default_rules else []) + declared
            if not rules:
                continue
            index = tuple(_silver_key(t)) if lay == "silver" else tuple(BRONZE_INDEX)
            out.append(Suite(lay, t.name, tuple(rules), index, incremental=lay == "bronze"))
    if layer in (None, "gold"):
        out += [s for s in gold_suites(settings) if table is None or s.table == table]
    return out


def gold_suites(settings: Settings) -> list[Suite]:
    """Each gold model's key is not null and unique; each ``-- total:`` line matches silver."""
    from lakeport.lake.gold import models

    out = []
    for m in models(settings):
        rules = [QualityRule(expect="not_null", columns=list(m.key), name="key_not_null"),
                 QualityRule(expect="unique", columns=list(m.key), name="key_unique")] if m.key else []  # fmt: skip
        rules += [QualityRule(expect="total", column=c, query=q, name=f"total_{c}_matches") for c, q in m.totals]
        if rules:
            out.append(Suite("gold", m.name, tuple(rules), m.key, incremental=False))
    return out


def referenced_key(settings: Settings, rule: QualityRule) -> str:
    """The column of ``silver.<rule.table>`` a reference must hit (its configured key by default)."""
    if rule.key:
        return rule.key
    target = settings.table(rule.table or "")
    if len(target.key) != 1:
        raise ValueError(f"rule {rule.label}: {rule.table} has a compound key; name one column with 'key'")
    return target.key[0]
