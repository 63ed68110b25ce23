"""The lake's tables: the one place that knows their layers, names, URIs and how to open them.

Layers: ``bronze.<t>`` (what landed), ``silver.<t>`` (current state or deduplicated events),
``silver.<t>_history`` (SCD2), ``gold.<model>``, and ``ops.*`` (dead letters, quality results,
alerts, and per-table bookkeeping: ``ops.<t>_key_map``, ``ops.<t>_deleted_keys``,
``ops.<t>_truncates``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

if TYPE_CHECKING:
    from lakeport.settings import LakeSettings, Settings, TableConfig

LAYERS = ("bronze", "silver", "gold", "ops")


def quote(name: str) -> str:
    """A SQL identifier, quoted for DuckDB and DataFusion."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def open_table(uri: str, storage_options: dict[str, str] | None = None) -> DeltaTable | None:
    """The Delta table at ``uri`` at its latest version, or None if there is none yet."""
    try:
        return DeltaTable(uri, storage_options=storage_options or None)
    except TableNotFoundError:
        return None


@dataclass(frozen=True)
class TableFacts:
    """What the Delta log says of a table at its latest version: no data file is read."""

    version: int
    files: int
    bytes: int
    rows: int


def facts(table: DeltaTable) -> TableFacts:
    adds = table.get_add_actions(flatten=True)
    return TableFacts(
        version=table.version(),
        files=adds.num_rows,
        bytes=sum(v or 0 for v in adds.column("size_bytes").to_pylist()),
        rows=sum(v or 0 for v in adds.column("num_records").to_pylist()),
    )


def table_facts(settings: Settings, layer: str, name: str) -> TableFacts | None:
    """``<layer>.<name>``'s facts, or None if the table does not exist yet."""
    table = open_table(settings.lake.table_uri(layer, name), settings.lake.to_object_store())
    return None if table is None else facts(table)


def history_name(name: str) -> str:
    return f"{name}_history"


def key_map_name(name: str) -> str:
    return f"{name}_key_map"


def deleted_keys_name(name: str) -> str:
    return f"{name}_deleted_keys"


def truncates_name(name: str) -> str:
    return f"{name}_truncates"


def has_silver(table: TableConfig) -> bool:
    """CDC tables with a key get a current-state silver table; keyed event tables a deduplicated one."""
    return bool(table.key)


def is_cdc(table: TableConfig) -> bool:
    return table.format == "debezium-json" and bool(table.key)


@dataclass(frozen=True)
class TableUris:
    """Where each table derived from one configured table lives."""

    name: str
    bronze: str
    silver: str
    history: str | None  # None: history is off for this table
    deleted_keys: str
    truncates: str
    key_map: str | None  # None: no source_key, so no lake_id


def uris(lake: LakeSettings, table: TableConfig) -> TableUris:
    return TableUris(
        name=table.name,
        bronze=lake.table_uri("bronze", table.name),
        silver=lake.table_uri("silver", table.name),
        history=lake.table_uri("silver", history_name(table.name)) if table.history else None,
        deleted_keys=lake.table_uri("ops", deleted_keys_name(table.name)),
        truncates=lake.table_uri("ops", truncates_name(table.name)),
        key_map=lake.table_uri("ops", key_map_name(table.name)) if table.source_key else None,
    )


Kind = Literal["bronze", "current", "history", "events"]


@dataclass(frozen=True)
class LakeTable:
    """One table Lakeport writes for a configured table."""

    layer: Literal["bronze", "silver", "ops"]
    name: str
    kind: Kind  # bronze; silver current state (CDC), its SCD2 history, or deduplicated events
    source: TableConfig

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"


def derived(table: TableConfig) -> list[LakeTable]:
    """What one configured table becomes: bronze always; a keyed CDC table its current state (and
    history when asked); a keyed ``json`` table its deduplicated events."""
    out = [LakeTable(layer="bronze", name=table.name, kind="bronze", source=table)]
    if is_cdc(table):
        out.append(LakeTable(layer="silver", name=table.name, kind="current", source=table))
        if table.history:
            out.append(LakeTable(layer="silver", name=history_name(table.name), kind="history", source=table))
    elif table.key:
        out.append(LakeTable(layer="silver", name=table.name, kind="events", source=table))
    return out


def silver_tables(settings: Settings, *, only: str | None = None) -> list[LakeTable]:
    """Every silver table, in config order (``only``: of one configured table)."""
    return [d for t in settings.tables if only in (None, t.name) for d in derived(t) if d.layer == "silver"]


def lake_tables(settings: Settings) -> list[LakeTable]:
    """Bronze and silver tables of the configuration (gold and ops are listed by their owners)."""
    return [d for t in settings.tables for d in derived(t)]


def ops_tables(settings: Settings) -> list[str]:
    """Per-table bookkeeping in ``ops``: key maps, remembered deletes and truncates."""
    out = []
    for t in settings.tables:
        if is_cdc(t):
            out += [deleted_keys_name(t.name)] + ([truncates_name(t.name)] if t.history else [])
            out += [key_map_name(t.name)] if t.source_key else []
    return out
