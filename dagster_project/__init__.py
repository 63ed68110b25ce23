"""The Dagster code location over Lakeport's tables: ``definitions`` wires ``assets``, ``checks``,
``jobs`` (and schedules) and ``sensors`` to the thin ``resources`` over the library."""
