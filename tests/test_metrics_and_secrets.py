"""A running worker serves Prometheus metrics; secrets never reach logs, outputs or metrics."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import make_topic, read_table, run_cli, send, start_worker, unique, wait_until, write_config

from lakeport.dev.stack import StackState, free_port

pytestmark = pytest.mark.stack
SECRET = "kafka-pw-Zq81xT"  # a credential that librdkafka gets but that must never be printed


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_and_no_secret_anywhere(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic = unique("metrics.t")
    make_topic(local_stack, topic, 2)
    send(local_stack, topic, [json.dumps({"n": i}).encode() for i in range(500)] + [b"{broken"])
    config = write_config(
        tmp_path / "c.yaml",
        local_stack,
        lake_uri=s3_lake,
        ingest={"flush_seconds": 0.5},
        tables=[{"name": "t", "topics": [topic], "format": "json"}],
        kafka_properties={"sasl.username": "lake", "sasl.password": SECRET},
    )
    port = free_port()
    log = tmp_path / "worker.log"
    proc = start_worker(config, log, "--metrics-port", str(port))
    try:
        metrics: dict[str, float] = {}

        def all_counted() -> bool:
            try:
                metrics.update(_scrape(port))
            except OSError:
                return False
            return metrics.get('lakeport_messages_total{table="t"}', 0) >= 501

        wait_until(all_counted, timeout=60)
        assert metrics['lakeport_messages_total{table="t"}'] == 501
        assert metrics['lakeport_rows_total{table="t"}'] == 500
        assert metrics['lakeport_dead_letters_total{table="t"}'] == 1
        assert metrics['lakeport_flush_seconds_count{table="t"}'] >= 1
        assert metrics['lakeport_bytes_total{table="t"}'] > 500 * 8
        time.sleep(6)  # lag is sampled every 5 s
        lag = {k: v for k, v in _scrape(port).items() if k.startswith("lakeport_lag_messages")}
        assert len(lag) == 2 and all(v == 0 for v in lag.values())
        metrics_text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert read_table(f"{s3_lake}/bronze/t", local_stack).num_rows == 500
    outputs = [log.read_text(), metrics_text]
    for args in (["status", "--json"], ["sql", "SELECT * FROM ops.dead_letters", "--format", "json"], ["status"]):
        proc2 = run_cli([*args, "--config", str(config)])
        outputs += [proc2.stdout, proc2.stderr]
    broken = write_config(
        tmp_path / "broken.yaml",
        local_stack,
        lake_uri=s3_lake,
        tables=[{"name": "t", "topics": [topic]}],
        kafka_properties={"sasl.password": SECRET, "bogus.setting.name": "1"},
    )
    proc3 = run_cli(["ingest", "--once", "--config", str(broken)], check=False, timeout=60)
    outputs += [proc3.stdout, proc3.stderr]
    assert proc3.returncode != 0
    for text in outputs:
        assert SECRET not in text
        assert local_stack.secret_key not in text


def test_no_secret_in_quality_alerts_or_dagster_metadata(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    import dagster as dg

    from lakeport.dagster_project.definitions import build

    topic = unique("secrets.t")
    make_topic(local_stack, topic, 1)
    send(local_stack, topic, [json.dumps({"id": i, "email": f"u{i}@example.com"}).encode() for i in range(50)])
    hook_token, salt = f"hook-{SECRET}", f"salt-{SECRET}"
    config = write_config(
        tmp_path / "c.yaml", local_stack, lake_uri=s3_lake, ingest={"once_wait_seconds": 5},
        tables=[{"name": "t", "topics": [topic], "format": "json", "key": ["id"],
                 "column_rules": [{"column": "email", "action": "hash"}]}],
        kafka_properties={"sasl.username": "lake", "sasl.password": SECRET},
        extra={"security": {"hash_salt": salt}, "gold": {"models": []},
               "alerts": {"notifiers": [{"type": "log"},
                                        {"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/{hook_token}"}]}},
    )  # fmt: skip
    result = build(str(config)).resolve_job_def("ingest_and_silver").execute_in_process(raise_on_error=False)
    texts = [str(e.event_specific_data) for e in result.all_events]
    texts += [str(e.message) for e in result.all_events]
    checked = run_cli(["check", "--config", str(config), "--json"], check=False)
    texts += [checked.stdout, checked.stderr]
    assert read_table(f"{s3_lake}/bronze/t", local_stack).num_rows == 50
    assert any(e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION for e in result.all_events)
    for text in texts:
        for secret in (SECRET, hook_token, salt, local_stack.secret_key):
            assert secret not in text
