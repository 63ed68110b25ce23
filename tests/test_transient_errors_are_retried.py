"""Transient failures (S3 or the Delta log unreachable) are retried with backoff; past the
configured time they become a terminal error that names the table and offsets."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakeport.ingestion.errors import TerminalError, TransientError
from lakeport.ingestion.records import Decoded
from lakeport.ingestion.retry import Retrier
from lakeport.ingestion.worker import Worker
from lakeport.settings import Settings


def retry(timeout: float) -> Retrier:
    """The retry policy a worker configured this way uses."""
    settings = Settings(
        lake={"uri": "/tmp/unused"},
        ingest={"retry_backoff_seconds": 0.01, "retry_timeout_seconds": timeout},
        tables=[{"name": "t", "topics": ["t"]}],
    )
    return Worker(settings).retry


def test_retries_until_the_dependency_answers() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("S3 unreachable")
        return "landed"

    assert retry(5)(flaky) == "landed" and len(calls) == 3


def test_gives_up_with_context() -> None:
    batch = Decoded("t", pa.table({}), (), {("t", 0): (10, 19)}, 10, 100)

    def down() -> None:
        raise TransientError("S3 unreachable")

    with pytest.raises(TerminalError) as err:
        retry(0.05)(down, what="commit", batch=batch)
    assert err.value.table == "t" and err.value.context()["offsets"] == {"t[0]": [10, 19]}
