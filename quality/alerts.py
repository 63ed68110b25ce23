"""Alerts people can act on. This module holds the alert and the notifiers; the log notifier is
always on (issue 5 adds webhook and e-mail notifiers, deduplication and recovery messages)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import structlog

log = structlog.get_logger("lakeport.alerts")


@dataclass(frozen=True)
class Alert:
    key: str  # what failed, stable across repeats (deduplication key)
    title: str
    detail: str = ""
    severity: Literal["warn", "error"] = "error"
    table: str | None = None
    version: int | None = None
    link: str | None = None  # where to see more: a URL or a `lakeport …` command


class Notifier(Protocol):
    def notify(self, alert: Alert) -> None: ...


class LogNotifier:
    def notify(self, alert: Alert) -> None:
        log.error("alert_raised", **asdict(alert))


def send(alert: Alert, notifiers: list[Notifier] | None = None) -> None:
    for notifier in notifiers or [LogNotifier()]:
        notifier.notify(alert)
