"""Errors of the quality package, split like every package's: transient ones are retried by the
caller, terminal ones stop the run and name what to fix."""

from __future__ import annotations


class QualityError(Exception):
    """Base of the quality errors."""


class TransientQualityError(QualityError):
    """A dependency (S3, a notifier endpoint) failed; retrying later may succeed."""


class NotifyFailed(TransientQualityError):
    """A notifier could not deliver an alert (the alert is retried at the next evaluation)."""


class TerminalQualityError(QualityError):
    """A suite cannot run as configured (e.g. a reference to a table with a compound key)."""

    def __init__(self, message: str, *, table: str | None = None) -> None:
        super().__init__(f"{table}: {message}" if table else message)
        self.table = table
