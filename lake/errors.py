"""Errors of the lake layer: transient ones are retried with backoff, terminal ones need a person.

Each carries the table and the bronze versions it was working on, so the message names them.
"""

from __future__ import annotations


class LakeError(Exception):
    """Base of the lake layer's errors."""

    def __init__(self, message: str, *, table: str | None = None, versions: tuple[int, int] | None = None) -> None:
        where = [f"table {table}" if table else "", f"bronze versions {versions[0]}..{versions[1]}" if versions else ""]
        context = ", ".join(w for w in where if w)
        super().__init__(f"{message} ({context})" if context else message)
        self.table = table
        self.versions = versions


class TransientLakeError(LakeError):
    """Worth retrying: a lost commit race, storage briefly unavailable."""


class TerminalLakeError(LakeError):
    """Retrying the same thing cannot help; the message says what to do."""


class ChangeFeedGone(TerminalLakeError):
    """The change data feed of bronze versions silver still needs was vacuumed away."""


class KeyMissing(TerminalLakeError):
    """A configured key column is not in the bronze table."""


class WideningRefused(TerminalLakeError):
    """A wider type that would change values the table holds (a bigint beyond 2**53 as a double)."""
