"""`lakeport dev up/status/down`: real services on loopback only, state under the home dir,
stopped by pid."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import psycopg2
import pytest
from helpers import run_cli

from lakeport.dev import postgres
from lakeport.dev.stack import free_port

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("broker", ["tansu", "apache"])
def test_up_status_down(broker: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    kafka, s3, pg = free_port(), free_port(), free_port()
    ports = ["--kafka-port", str(kafka), "--s3-port", str(s3), "--postgres-port", str(pg), "--kafka", broker]
    up = run_cli(["dev", "up", "--home", str(home), *ports], timeout=120)
    assert f"127.0.0.1:{kafka}" in up.stdout and f"127.0.0.1:{pg}" in up.stdout
    try:
        report = json.loads(run_cli(["dev", "status", "--json", "--home", str(home)]).stdout)
        assert report["running"] and {s["name"] for s in report["services"]} == {"kafka", "s3", "postgres"}
        pids = [s["pid"] for s in report["services"]]
        state = json.loads((home / "stack.json").read_text())
        assert [s["pid"] for s in state["services"]] == pids
        for pid in pids:  # every listening socket of every service is on loopback
            for conn in psutil.Process(pid).net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    assert conn.laddr.ip in ("127.0.0.1", "::1"), conn
        with psycopg2.connect(postgres.dsn(pg)) as conn, conn.cursor() as cur:  # a private cluster for CDC
            cur.execute("SHOW wal_level")
            assert cur.fetchone() == ("logical",)
            cur.execute("SHOW data_directory")
            assert not cur.fetchone()[0].startswith("/var/lib/postgresql")  # never the system cluster
        # a second `up` is idempotent: same pids
        run_cli(["dev", "up", "--home", str(home), *ports])
        assert [
            s["pid"] for s in json.loads(run_cli(["dev", "status", "--json", "--home", str(home)]).stdout)["services"]
        ] == pids
    finally:
        down = run_cli(["dev", "down", "--home", str(home)], timeout=60)
    assert "kafka" in down.stdout and "s3" in down.stdout and "postgres" in down.stdout
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert run_cli(["dev", "status", "--home", str(home)], check=False).returncode == 1


def test_an_unknown_broker_is_refused(tmp_path: Path) -> None:
    refused = run_cli(["dev", "up", "--home", str(tmp_path), "--kafka", "redpanda"], check=False)
    assert refused.returncode == 2 and "--kafka must be tansu or apache" in refused.stderr.replace("\n", " ")
