"""Data quality checks over the lake (Great Expectations suites and alerting: see issue 5)."""
