"""The OLTP source of the platform: an e-commerce schema for PostgreSQL and a reproducible workload.

``apply_schema`` creates the tables (``schema.sql``, idempotent); ``run_workload`` drives seeded,
committed transactions against them, writing domain events to a transactional ``outbox`` table.
"""

from lakeport.dev.oltp.workload import WorkloadStats, apply_schema, run_workload

__all__ = ["WorkloadStats", "apply_schema", "run_workload"]
