"""Alerts people can act on: what failed, on which table and version, how many rows, sample keys
and the command that shows more; sent through the notifiers chosen in ``alerts.notifiers``.

Deduplication and recovery go through :class:`Alerter`, whose memory is the Delta table
``ops.alerts`` (one row per alert sent, so every process — CLI, Dagster runs, sensors — shares it):

- a failing check pages once; while it keeps failing it pages again only after
  ``repeat_after_minutes``;
- when it passes again after having paged, one recovery message goes out;
- an alert no notifier could deliver is not recorded, so the next evaluation tries again.
"""

from __future__ import annotations

import json
import smtplib
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Literal, Protocol

import pyarrow as pa
import structlog
from deltalake import write_deltalake

from lakeport.quality.errors import NotifyFailed
from lakeport.quality.snapshot import open_at
from lakeport.settings import Settings
from lakeport.settings.quality import AlertSettings, SmtpNotifierConfig, WebhookNotifierConfig

log = structlog.get_logger("lakeport.alerts")
Status = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Alert:
    key: str  # what failed, stable across repeats (deduplication key)
    title: str
    detail: str = ""
    severity: Literal["warn", "error"] = "error"
    table: str | None = None
    version: int | None = None
    link: str | None = None  # where to see more: a URL or a `lakeport …` command
    rows: int | None = None  # rows failing
    sample_keys: tuple[str, ...] = field(default_factory=tuple)
    status: Status = "firing"

    def text(self) -> str:
        head = "RESOLVED" if self.status == "resolved" else self.severity.upper()
        where = f" on {self.table}" + (f" (version {self.version})" if self.version is not None else "")
        lines = [f"[{head}] {self.title}{where if self.table else ''}"]
        if self.detail:
            lines.append(self.detail)
        if self.rows is not None and self.status == "firing":
            lines.append(
                f"{self.rows} row(s) failing" + (f"; e.g. {', '.join(self.sample_keys)}" if self.sample_keys else "")
            )
        if self.link:
            lines.append(f"see more: {self.link}")
        return "\n".join(lines)


class Notifier(Protocol):
    def notify(self, alert: Alert) -> None: ...


class LogNotifier:
    def notify(self, alert: Alert) -> None:
        event = "alert_resolved" if alert.status == "resolved" else "alert_raised"
        (log.info if alert.status == "resolved" else log.error)(event, **asdict(alert))


class WebhookNotifier:
    """POSTs Slack-compatible JSON (``text`` and ``blocks``; Mattermost and Teams workflows read
    ``text``) plus a ``lakeport`` object with the alert's fields for machines."""

    def __init__(self, config: WebhookNotifierConfig) -> None:
        self._url = config.url  # kept as a secret: never printed
        self._timeout = config.timeout_seconds

    def notify(self, alert: Alert) -> None:
        body = {
            "text": alert.text(),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": alert.text()}}],
            "lakeport": asdict(alert),
        }
        req = urllib.request.Request(
            self._url.get_secret_value(),
            data=json.dumps(body, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                if resp.status >= 300:
                    raise NotifyFailed(f"webhook answered HTTP {resp.status}")
        except OSError as exc:  # URLError, HTTPError, timeouts; the URL (a secret) is not in the message
            raise NotifyFailed(f"webhook failed: {type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None


class SmtpNotifier:
    def __init__(self, config: SmtpNotifierConfig) -> None:
        self._c = config

    def notify(self, alert: Alert) -> None:
        c = self._c
        msg = EmailMessage()
        msg["From"], msg["To"] = c.sender, ", ".join(c.recipients)
        msg["Subject"] = alert.text().splitlines()[0]
        msg.set_content(alert.text())
        try:
            cls = smtplib.SMTP_SSL if c.ssl else smtplib.SMTP
            with cls(c.host, c.port, timeout=c.timeout_seconds) as smtp:
                if c.starttls:
                    smtp.starttls()
                if c.username and c.password is not None:
                    smtp.login(c.username, c.password.get_secret_value())
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyFailed(f"smtp to {c.host}:{c.port} failed: {type(exc).__name__}") from None


def notifiers_from(settings: AlertSettings) -> list[Notifier]:
    out: list[Notifier] = []
    for n in settings.notifiers:
        if isinstance(n, WebhookNotifierConfig):
            out.append(WebhookNotifier(n))
        elif isinstance(n, SmtpNotifierConfig):
            out.append(SmtpNotifier(n))
        else:
            out.append(LogNotifier())
    return out


def send(alert: Alert, notifiers: Sequence[Notifier] | None = None) -> int:
    """Deliver ``alert`` through every notifier; returns how many delivered (failures are logged)."""
    delivered = 0
    for notifier in notifiers or [LogNotifier()]:
        try:
            notifier.notify(alert)
            delivered += 1
        except NotifyFailed as exc:
            log.warning("alert_not_delivered", key=alert.key, notifier=type(notifier).__name__, error=str(exc))
    return delivered


STATE_SCHEMA = pa.schema(
    [("key", pa.string()), ("status", pa.string()), ("sent_at", pa.timestamp("us", tz="UTC")),
     ("title", pa.string()), ("table_name", pa.string()), ("version", pa.int64()), ("severity", pa.string()),
     ("rows", pa.int64()), ("text", pa.string())]
)  # fmt: skip


class Alerter:
    """Sends firing and recovery alerts once, remembering what it sent in ``ops.alerts``."""

    def __init__(
        self,
        uri: str,
        *,
        notifiers: Sequence[Notifier],
        repeat_after: timedelta,
        storage_options: dict[str, str] | None,
    ) -> None:
        self.uri, self.notifiers, self.repeat_after, self._opts = uri, list(notifiers), repeat_after, storage_options
        self._latest: dict[str, tuple[Status, datetime]] | None = None  # read once per Alerter

    def last(self, key: str) -> tuple[Status, datetime] | None:
        """The last alert sent for ``key``: (status, when). ``ops.alerts`` is read on first use only:
        an Alerter lives for one evaluation run (a ``lakeport check``, one Dagster check)."""
        if self._latest is None:
            self._latest = {}
            table = open_at(self.uri, self._opts)
            if table is not None:
                rows = table.to_pyarrow_dataset().to_table(columns=["key", "status", "sent_at"])
                for k, status, at in sorted(zip(*(rows[c].to_pylist() for c in ("key", "status", "sent_at")),
                                                strict=True), key=lambda r: r[2]):  # fmt: skip
                    self._latest[k] = (status, at)
        return self._latest.get(key)

    def evaluate(self, alert: Alert, *, failing: bool, now: datetime) -> Status | None:
        """Page for a failing check or announce its recovery, as due; returns what was sent."""
        last = self.last(alert.key)
        if failing:
            due = last is None or last[0] == "resolved" or now - last[1] >= self.repeat_after
            return self._send(replace(alert, status="firing"), now) if due else None
        if last is not None and last[0] == "firing":
            return self._send(replace(alert, status="resolved", rows=None, sample_keys=()), now)
        return None

    def _send(self, alert: Alert, now: datetime) -> Status | None:
        if send(alert, self.notifiers) == 0:
            return None  # nobody told: try again next time
        row = {"key": alert.key, "status": alert.status, "sent_at": now, "title": alert.title,
               "table_name": alert.table, "version": alert.version, "severity": alert.severity,
               "rows": alert.rows, "text": alert.text()}  # fmt: skip
        write_deltalake(self.uri, pa.Table.from_pylist([row], STATE_SCHEMA), mode="append",
                        storage_options=self._opts or None)  # fmt: skip
        if self._latest is not None:
            self._latest[alert.key] = (alert.status, now)
        return alert.status


def alerter_for(settings: Settings) -> Alerter:
    """The alerter of a configuration: its notifiers, its repeat interval, ``ops.alerts``."""
    return Alerter(
        settings.lake.table_uri("ops", "alerts"),
        notifiers=notifiers_from(settings.alerts),
        repeat_after=timedelta(minutes=settings.alerts.repeat_after_minutes),
        storage_options=settings.lake.to_object_store(),
    )
