"""Bring every CDC table's silver current state (and SCD2 history, where configured) up to date.

One entry point for the CLI (``lakeport silver``) and the orchestrator. Each table is applied on
its own: one table's failure is reported in its result and never stops the others.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from lake import tables
from lake.history import apply_history
from lake.silver import apply_changes

if TYPE_CHECKING:
    from lakeport.config import Settings, TableConfig

log = structlog.get_logger("lakeport.silver")


def cdc_tables(settings: Settings, only: str | None = None) -> list[TableConfig]:
    return [t for t in settings.tables if tables.is_cdc(t) and only in (None, t.name)]


def key_map_uri(settings: Settings, table: TableConfig) -> str | None:
    return tables.uris(settings.lake, table).key_map


def refresh_table(settings: Settings, table: TableConfig, *, kind: str = "current") -> dict[str, Any]:
    """Apply one table (``kind``: current or history); a failure becomes a result with ``error``."""
    uris = tables.uris(settings.lake, table)
    opts = settings.lake.to_object_store()
    retention = timedelta(hours=settings.cdc.delete_retention_hours)
    try:
        if kind == "history":
            assert uris.history is not None
            hist = apply_history(
                table.name,
                uris.bronze,
                uris.history,
                key=table.key,
                storage_options=opts,
                source_key=table.source_key,
                truncates_uri=uris.truncates,
                chunk_rows=settings.cdc.chunk_rows,
            )
            return {"kind": kind, **asdict(hist), "error": None}
        done = apply_changes(
            table.name,
            uris.bronze,
            uris.silver,
            key=table.key,
            storage_options=opts,
            source_key=table.source_key,
            key_map_uri=uris.key_map,
            deleted_keys_uri=uris.deleted_keys,
            delete_retention=retention,
            chunk_rows=settings.cdc.chunk_rows,
        )
        return {"kind": kind, **asdict(done), "error": None}
    except Exception as exc:
        message = f"{type(exc).__name__}: {_first_lines(str(exc))}"
        log.error("silver_failed", table=table.name, kind=kind, error=message)
        return {"kind": kind, "table": table.name, "error": message}


def _first_lines(text: str) -> str:
    """The message without the native backtrace delta-rs appends."""
    head = text.split("\n   0:")[0].split("\nStack backtrace")[0].strip()
    return head[:800]


def refresh_silver(settings: Settings, *, table: str | None = None) -> list[dict[str, Any]]:
    """Apply pending bronze changes; one result dict per table and kind (current, history). A
    result with a non-empty ``error`` failed; the other tables were applied all the same."""
    results: list[dict[str, Any]] = []
    for t in cdc_tables(settings, table):
        results.append(refresh_table(settings, t))
        if t.history:
            results.append(refresh_table(settings, t, kind="history"))
    return results


def failed(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r.get("error")]
