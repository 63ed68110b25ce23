"""The lake: table locations, DuckDB over the Delta tables, time travel, gold models."""

from __future__ import annotations

from lakeport.lake.query import as_of, at_version, connect, versions

__all__ = ["as_of", "at_version", "connect", "versions"]
