"""Ingestion errors: transient ones are retried with backoff, terminal ones stop the worker.

Bad *records* are not errors here: they become rows in ``ops.dead_letters``.
Every error carries its context (table, topic-partition offsets) for logs and alerts.
"""

from __future__ import annotations

from collections.abc import Mapping


class IngestError(Exception):
    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        offsets: Mapping[tuple[str, int], tuple[int, int]] | None = None,
    ) -> None:
        self.table = table
        self.offsets = dict(offsets or {})
        super().__init__(message)

    def context(self) -> dict[str, object]:
        return {
            "table": self.table,
            "offsets": {f"{t}[{p}]": list(r) for (t, p), r in sorted(self.offsets.items())},
        }

    def __str__(self) -> str:
        where = f" (table {self.table})" if self.table else ""
        return f"{self.args[0]}{where}"


class TransientError(IngestError):
    """A dependency is down or busy (S3, the broker, a commit race): retry, move no offset."""


class TerminalError(IngestError):
    """Retrying will not help (bad credentials, a table we may not write): stop and alert."""


class AbandonedError(IngestError):
    """Shutdown was asked for while a batch was still being retried: it is left unlanded (no Delta
    commit, no offset moved) and the next owner of its partitions reads it again."""
