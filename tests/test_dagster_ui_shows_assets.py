"""End to end: `dagster dev` on the real code location (dagster_project.definitions), configured by a
lakeport.yaml pointing at the local stack, shows the tables' assets in the Dagster UI, as seen by a
headless Chromium. The screenshot lands in .lakeport/screenshots/ for a human to look at."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import browser
import psutil
import pytest
from helpers import unique, write_config
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from lakeport.dev import dagster_dev
from lakeport.dev.stack import StackState, free_port

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / ".lakeport" / "screenshots" / "dagster-assets.png"
# Asset keys are rendered "<layer> / <table>"; only CDC tables (with a key) get a silver asset.
EXPECTED = ("bronze / customers", "bronze / domain_events", "silver / customers")
UI_WAIT = 60.0


def test_dagster_ui_lists_bronze_and_silver_assets(local_stack: StackState, tmp_path: Path) -> None:
    assert browser.available(), "no /usr/bin/chromium or /usr/bin/chromedriver: run `make e2e-deps`"

    prefix = unique("ui")
    config = write_config(
        tmp_path / "lakeport.yaml",
        local_stack,
        lake_uri=f"s3://{local_stack.bucket}/tests/{prefix}",
        tables=[
            {"name": "customers", "topics": [f"{prefix}.public.customers"], "format": "debezium-json", "key": ["id"]},
            {"name": "domain_events", "topics": [f"{prefix}_events"], "format": "json", "key": ["event_id"]},
        ],
    )
    port = free_port()
    started = time.monotonic()
    service = dagster_dev.start(home=tmp_path, config=config, port=port)
    startup = time.monotonic() - started
    log = Path(service.log)
    try:
        assert dagster_dev.is_dagster_running(service)
        with browser.chromium() as driver:
            driver.get(f"http://127.0.0.1:{port}/assets")

            def page_text(d: WebDriver) -> str:
                return str(d.find_element(By.TAG_NAME, "body").text)

            try:
                WebDriverWait(driver, UI_WAIT, poll_frequency=0.5).until(
                    lambda d: all(name in page_text(d) for name in EXPECTED)
                )
            except TimeoutException:
                pytest.fail(
                    f"the assets page did not list {EXPECTED} within {UI_WAIT:.0f}s "
                    f"(dagster dev took {startup:.1f}s to answer).\npage text:\n{page_text(driver)[:3000]}\n"
                    f"dagster log ({log}):\n{log.read_text(errors='replace')[-4000:]}"
                )
            text = page_text(driver)
            for name in EXPECTED:
                assert name in text
            assert "silver / domain_events" in text  # a keyed json table: its events, deduplicated

            # Dagster's first-visit "join the community" dialog would cover the page in the screenshot.
            for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
                if button.is_displayed():
                    button.click()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            SCREENSHOT.unlink(missing_ok=True)
            assert driver.save_screenshot(str(SCREENSHOT))
        png = SCREENSHOT.read_bytes()
        assert len(png) > 1000 and png.startswith(b"\x89PNG\r\n\x1a\n")
    finally:
        dagster_dev.stop_dagster(service)
    assert not dagster_dev.is_dagster_running(service), f"processes of dagster dev still run; see {log}"
    assert not psutil.pid_exists(service.pid)


def _dagster_processes(dagster_home: Path) -> list[psutil.Process]:
    """Processes whose DAGSTER_HOME is ``dagster_home`` (the supervisor, webserver, daemon, code server)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("DAGSTER_HOME") == str(dagster_home):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def test_lakeport_dagster_serves_until_interrupted(local_stack: StackState, tmp_path: Path) -> None:
    prefix = unique("cli")
    config = write_config(
        tmp_path / "lakeport.yaml",
        local_stack,
        lake_uri=f"s3://{local_stack.bucket}/tests/{prefix}",
        tables=[{"name": "orders", "topics": [f"{prefix}.public.orders"], "format": "debezium-json", "key": ["id"]}],
    )
    port = free_port()
    home = tmp_path / "home"
    cmd = [str(REPO / ".venv" / "bin" / "lakeport"), "dagster", "-c", str(config), "--home", str(home)]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # printed once the webserver answers
        assert f"http://127.0.0.1:{port}" in banner, banner
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as resp:
            assert resp.status == 200
        running = _dagster_processes((home / "dagster").resolve())
        assert len(running) >= 3  # supervisor, webserver, daemon (plus code servers)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not [p for p in running if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
