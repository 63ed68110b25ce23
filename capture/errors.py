"""Errors of change capture, carrying the source and slot they concern."""

from __future__ import annotations


class CaptureError(RuntimeError):
    """Terminal: capture stopped; nothing past the last confirmed position was acknowledged, so a
    restart resumes there (messages after it may be published twice; the lake deduplicates)."""

    def __init__(self, message: str, *, source: str, slot: str) -> None:
        super().__init__(f"{message} (source {source}, slot {slot})")
        self.source, self.slot = source, slot
