"""Lakeport: land Kafka topics in a Delta Lake, exactly once, and query it with DuckDB."""

from __future__ import annotations

__version__ = "0.1.0"
