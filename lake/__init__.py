"""The lake: its tables (``tables``), silver and history from bronze's change feed (``refresh``),
gold models (``gold``), maintenance (``upkeep``), and DuckDB over all of it (``Lake``)."""

from __future__ import annotations

from lakeport.lake.query import Lake

__all__ = ["Lake"]
