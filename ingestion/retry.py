"""The retry policy: a dependency that is down (S3, the broker, a lost commit race) is retried
with exponential backoff until ``ingest.retry_timeout_seconds``; no offset moves meanwhile. Then
the failure becomes terminal, naming the table and the offsets that did not land. A stop asked
for during the wait abandons the batch at once (it is read again by the next owner)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from lakeport.ingestion.errors import AbandonedError, TerminalError, TransientError
from lakeport.ingestion.records import Decoded

log = structlog.get_logger("lakeport.ingest")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    backoff_seconds: float  # the first wait; doubled after each failure
    timeout_seconds: float  # no attempt starts later than this after the first
    max_backoff_seconds: float = 10.0


class Retrier:
    """Calls a function under the policy. ``stopping`` says a shutdown was asked for;
    ``on_retry(table)`` counts a retry (a metric)."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        stopping: Callable[[], bool] = lambda: False,
        on_retry: Callable[[str], None] = lambda table: None,
    ) -> None:
        self.policy, self._stopping, self._on_retry = policy, stopping, on_retry

    def __call__(self, fn: Callable[[], T], *, what: str = "read", batch: Decoded | None = None) -> T:
        delay = self.policy.backoff_seconds
        deadline = time.monotonic() + self.policy.timeout_seconds
        table = batch.table if batch else None
        while True:
            try:
                return fn()
            except TransientError as exc:
                if self._stopping():  # SIGTERM during an outage: do not hold the shutdown for the retry budget
                    raise AbandonedError(f"stopped while retrying: {exc}", table=table) from None
                if time.monotonic() + delay > deadline:
                    raise TerminalError(
                        f"gave up after retrying: {exc}", table=table, offsets=batch.ranges if batch else None
                    ) from None
                log.warning(f"{what}_retried", table=table, error=str(exc), backoff=delay)
                if table:
                    self._on_retry(table)
                time.sleep(delay)
                delay = min(delay * 2, self.policy.max_backoff_seconds)
