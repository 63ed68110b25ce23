"""Alerting: the SMTP notifier mails a real (local) SMTP server; the alerter pages once per failure,
repeats only after the configured interval, sends one recovery, and retries an alert nobody could
deliver. State lives in the Delta table ops.alerts (here on a local-directory lake)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from lakeport.dev.stack import free_port
from lakeport.quality.alerts import Alert, Alerter, SmtpNotifier, WebhookNotifier, send
from lakeport.settings import ConfigError, load_settings
from lakeport.settings.quality import SmtpNotifierConfig, WebhookNotifierConfig


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def inbox() -> Any:
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


ALERT = Alert(
    key="quality:silver.orders:total_not_negative",
    title="total_not_negative failed",
    table="silver.orders",
    version=12,
    rows=3,
    sample_keys=("id=11: -3.5", "id=40: -1.0"),
    link='lakeport sql "SELECT * FROM ops.quality_results"',
)


def test_smtp_notifier_mails_what_failed_where_and_how_to_see_more(inbox: Any, tmp_path: Path) -> None:
    box, port = inbox
    config = SmtpNotifierConfig(type="smtp", host="127.0.0.1", port=port, sender="lakeport@example.com",
                                recipients=["oncall@example.com", "data@example.com"])  # fmt: skip
    alerter = Alerter(str(tmp_path / "ops" / "alerts"), notifiers=[SmtpNotifier(config)],
                      repeat_after=timedelta(hours=4), storage_options=None)  # fmt: skip
    t0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

    assert alerter.evaluate(ALERT, failing=True, now=t0) == "firing"
    assert alerter.evaluate(ALERT, failing=True, now=t0 + timedelta(minutes=5)) is None  # deduplicated
    assert alerter.evaluate(ALERT, failing=True, now=t0 + timedelta(hours=5)) == "firing"  # reminder
    assert alerter.evaluate(ALERT, failing=False, now=t0 + timedelta(hours=6)) == "resolved"
    assert alerter.evaluate(ALERT, failing=False, now=t0 + timedelta(hours=7)) is None

    assert len(box.messages) == 3
    first, _, recovery = box.messages
    assert first["To"] == "oncall@example.com, data@example.com" and first["From"] == "lakeport@example.com"
    assert first["Subject"] == "[ERROR] total_not_negative failed on silver.orders (version 12)"
    body = first.get_payload()
    assert "3 row(s) failing; e.g. id=11: -3.5, id=40: -1.0" in body and "lakeport sql" in body
    assert recovery["Subject"].startswith("[RESOLVED] total_not_negative failed on silver.orders")


def test_undelivered_alert_is_retried_and_the_webhook_secret_never_leaks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "https://hooks.example.invalid/T000/B000/very-secret-token"
    dead = WebhookNotifier(WebhookNotifierConfig(type="webhook", url=SecretStr(f"http://127.0.0.1:{free_port()}/x")))
    alerter = Alerter(str(tmp_path / "alerts"), notifiers=[dead], repeat_after=timedelta(hours=1), storage_options=None)
    now = datetime(2026, 11, 22, tzinfo=UTC)
    assert alerter.evaluate(ALERT, failing=True, now=now) is None  # nobody reached: not recorded
    assert alerter.last(ALERT.key) is None
    assert send(ALERT, [WebhookNotifier(WebhookNotifierConfig(type="webhook", url=SecretStr(secret)))]) == 0
    assert "very-secret-token" not in capsys.readouterr().out


def test_bad_alert_config_fails_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "lakeport.yaml"
    path.write_text("alerts:\n  notifiers:\n    - {type: smtp, host: 127.0.0.1, sender: a@b.c}\n")
    with pytest.raises(ConfigError, match="recipients"):
        load_settings(path)
    path.write_text("tables:\n  - {name: t, topics: [t], quality: [{expect: between, column: x}]}\n")
    with pytest.raises(ConfigError, match="min or max"):
        load_settings(path)
    path.write_text("tables:\n  - {name: t, topics: [t], quality: [{expect: references, column: x, table: nope}]}\n")
    with pytest.raises(ConfigError, match="unknown table 'nope'"):
        load_settings(path)


def test_failed_dagster_run_pages_once_and_its_next_success_recovers(tmp_path: Path) -> None:
    import dagster as dg

    from lakeport.dagster_project.sensors import run_failure_sensors

    path = tmp_path / "lakeport.yaml"
    path.write_text(f"lake: {{uri: {tmp_path / 'lake'}}}\n")
    settings = load_settings(path)
    on_failure, on_success = run_failure_sensors(settings)
    should_fail = {"now": True}

    @dg.op
    def land() -> None:
        if should_fail["now"]:
            raise RuntimeError("S3 said no")

    @dg.job
    def nightly() -> None:
        land()

    instance = dg.DagsterInstance.ephemeral()
    alerts = tmp_path / "lake" / "ops" / "alerts"

    def sent() -> list[dict[str, Any]]:
        from deltalake import DeltaTable

        return DeltaTable(str(alerts)).to_pyarrow_table().to_pylist() if alerts.exists() else []

    for _ in range(2):  # two failures in a row: one page
        failed = nightly.execute_in_process(instance=instance, raise_on_error=False)
        event = next(e for e in failed.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failures", dagster_instance=instance, dagster_run=failed.dagster_run, dagster_event=event
        ).for_run_failure()
        on_failure(context)
    assert [(a["key"], a["status"]) for a in sent()] == [("run-failed:nightly", "firing")]
    assert "S3 said no" in sent()[0]["text"]

    should_fail["now"] = False
    ok = nightly.execute_in_process(instance=instance)
    success = next(e for e in ok.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    on_success(dg.build_run_status_sensor_context(
        sensor_name="run_recoveries", dagster_instance=instance, dagster_run=ok.dagster_run, dagster_event=success
    ))  # fmt: skip
    assert sorted(a["status"] for a in sent()) == ["firing", "resolved"]
