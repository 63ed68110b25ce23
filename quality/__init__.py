"""Data quality over the lake: suites from the config (``suites``) validated by Great Expectations
(``validate``) on a snapshot (``snapshot``), results kept in ``ops.quality_results`` (``results``),
the freshness rule (``freshness``), and deduplicated alerts (``alerts``). ``run`` ties them."""
