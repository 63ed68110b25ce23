"""Tools for a developer's machine, which no library imports: the local stack (``stack``,
``processes``, ``postgres``, ``dagster_dev``), the demo, the OLTP workload (``oltp``), synthetic
Kafka traffic (``synthetic_events``), the notebooks runner and Kafka helpers for tests and benchmarks."""
