"""The lake: table locations and DuckDB over the Delta tables."""

from __future__ import annotations

from lake.query import connect

__all__ = ["connect"]
