"""Bring every CDC table's silver current state (and SCD2 history, where configured) up to date.

One entry point for the CLI (``lakeport silver``) and the orchestrator. Each table is applied on
its own: one table's failure is reported in its result and never stops the others.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from lakeport.lake import tables
from lakeport.lake.events import app_id as events_app
from lakeport.lake.events import apply_events
from lakeport.lake.history import app_id as history_app
from lakeport.lake.history import apply_history
from lakeport.lake.silver import app_id as silver_app
from lakeport.lake.silver import apply_changes

if TYPE_CHECKING:
    from lakeport.settings import Settings, TableConfig

log = structlog.get_logger("lakeport.silver")


def cdc_tables(settings: Settings, only: str | None = None) -> list[TableConfig]:
    return [t for t in settings.tables if tables.is_cdc(t) and only in (None, t.name)]


def key_map_uri(settings: Settings, table: TableConfig) -> str | None:
    return tables.uris(settings.lake, table).key_map


def refresh_table(settings: Settings, table: tables.LakeTable) -> dict[str, Any]:
    """Apply one silver table (current state, history or events); a failure becomes a result
    with ``error`` set, so the caller can go on with the other tables."""
    source, uris = table.source, tables.uris(settings.lake, table.source)
    opts, chunk_rows = settings.lake.to_object_store(), settings.cdc.chunk_rows
    try:
        done: Any
        if table.kind == "history":
            assert uris.history is not None
            done = apply_history(
                source.name,
                uris.bronze,
                uris.history,
                key=source.key,
                storage_options=opts,
                source_key=source.source_key,
                truncates_uri=uris.truncates,
                chunk_rows=chunk_rows,
            )
        elif table.kind == "events":
            done = apply_events(source.name, uris.bronze, uris.silver, key=source.key, storage_options=opts,
                                chunk_rows=chunk_rows)  # fmt: skip
        else:
            done = apply_changes(
                source.name,
                uris.bronze,
                uris.silver,
                key=source.key,
                storage_options=opts,
                source_key=source.source_key,
                key_map_uri=uris.key_map,
                deleted_keys_uri=uris.deleted_keys,
                delete_retention=timedelta(hours=settings.cdc.delete_retention_hours),
                chunk_rows=chunk_rows,
            )
        return {"kind": table.kind, **asdict(done), "error": None}
    except Exception as exc:
        message = f"{type(exc).__name__}: {_first_lines(str(exc))}"
        log.error("silver_failed", table=source.name, kind=table.kind, error=message)
        return {"kind": table.kind, "table": source.name, "error": message}


def _first_lines(text: str) -> str:
    """The message without the native backtrace delta-rs appends."""
    head = text.split("\n   0:")[0].split("\nStack backtrace")[0].strip()
    return head[:800]


def refresh_silver(settings: Settings, *, table: str | None = None) -> list[dict[str, Any]]:
    """Apply pending bronze changes to every silver table (or those of one configured table); one
    result dict per silver table. A result with ``error`` failed; the others were applied anyway."""
    return [refresh_table(settings, t) for t in tables.silver_tables(settings, only=table)]


def refresh_one(settings: Settings, name: str) -> dict[str, Any]:
    """Apply the one silver table called ``name`` (``orders``, ``orders_history``, ``domain_events``)."""
    [table] = [t for t in tables.silver_tables(settings) if t.name == name]
    return refresh_table(settings, table)


def readers_of(settings: Settings, name: str) -> list[tuple[str, str]]:
    """(uri, app id of its watermark) of each silver table that reads ``bronze.<name>``: what
    bronze vacuum and log cleanup must wait for (see :func:`lake.maintenance.unapplied_floor`)."""
    apps = {"current": silver_app, "history": history_app, "events": events_app}
    return [
        (settings.lake.table_uri("silver", t.name), apps[t.kind](name))
        for t in tables.silver_tables(settings, only=name)
    ]


def failed(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r.get("error")]
