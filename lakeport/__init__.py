"""Lakeport: land Kafka topics in a Delta Lake, exactly once, and query it with DuckDB.

One namespace, layered (imports only flow down; ``tests/test_imports_flow_one_way.py`` checks it):
``settings`` at the bottom; the libraries ``ingestion``, ``capture``, ``lake`` and ``quality``;
the adapters ``cli`` and ``dagster_project`` on top; ``dev`` (the local stack, demo, workloads)
apart. The libraries and ``dagster_project`` live in the repository's top-level folders of the
same name, linked in here, so the wheel installs the single top-level name ``lakeport``.
"""

from __future__ import annotations

__version__ = "0.1.0"
