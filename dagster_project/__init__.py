"""The Dagster code location over Lakeport's tables (see issue 4)."""
