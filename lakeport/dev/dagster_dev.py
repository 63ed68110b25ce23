"""``dagster dev`` for the local stack: the Dagster UI, daemon and code server on 127.0.0.1, with
their state under ``<home>/dagster`` and the code location pointed at a lakeport.yaml.

``dagster dev`` is a supervisor: it runs the webserver, the daemon and a code server as child
processes. It is started in its own session (so its pid is also its process group id) and stopped
by signalling that whole group, never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from lakeport.dev.processes import Service, StackError, port_free

DEFAULT_MODULE = "lakeport.dagster_project.definitions"
# one run at a time per pool: each silver table's apply is its own pool (dagster_project.assets.pool)
DAGSTER_YAML = "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n"


def dagster_binary() -> Path:
    """The ``dagster`` console script of the running interpreter's environment."""
    return Path(sys.executable).parent / "dagster"


def start(
    *,
    home: Path,
    config: Path | None,
    port: int = 3000,
    module: str = DEFAULT_MODULE,
    timeout: float = 120,
) -> Service:
    """Start ``dagster dev -m <module>`` on 127.0.0.1:<port>, detached, and wait until it answers.

    State goes to ``<home>/dagster`` (DAGSTER_HOME), output to ``<home>/logs/dagster.log``. The
    code location finds its tables through ``LAKEPORT_CONFIG`` (the absolute path of ``config``).
    Raises :class:`StackError`, naming the log, if it does not answer within ``timeout`` seconds.
    """
    binary = dagster_binary()
    if not binary.exists():
        raise StackError(f"dagster is not installed next to {sys.executable} ({binary} missing)")
    if not port_free(port):
        # Otherwise another server answering /server_info there would pass for ours.
        raise StackError(f"127.0.0.1:{port} is already in use; choose another port for dagster dev")
    dagster_home = (home / "dagster").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    log = (home / "logs" / "dagster.log").resolve()
    log.parent.mkdir(parents=True, exist_ok=True)

    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    if config is not None:
        env["LAKEPORT_CONFIG"] = str(config.resolve())
    cmd = [str(binary), "dev", "-m", module, "-h", "127.0.0.1", "-p", str(port)]
    # Like processes.spawn (own session, output to the log), plus the environment above.
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path.cwd(),
            env=env,
            start_new_session=True,
        )
    # The console script runs under the interpreter: /proc/<pid>/exe is the real python binary,
    # which is what processes.is_running compares against.
    service = Service("dagster", proc.pid, port, os.path.realpath(sys.executable), str(log))

    url = f"http://127.0.0.1:{port}/server_info"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_dagster(service)
            raise StackError(f"dagster dev exited with code {proc.returncode} before answering; see {log}")
        if _answers(url):
            return service
        time.sleep(0.5)
    stop_dagster(service)
    raise StackError(f"dagster dev did not answer {url} within {timeout:.0f}s; see {log}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _group(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (psutil.Error, OSError):
            continue
    return members


def _runs_dagster(proc: psutil.Process) -> bool:
    try:
        return any("dagster" in part for part in proc.cmdline())
    except (psutil.Error, OSError):
        return False


def dagster_group(service: Service) -> list[psutil.Process]:
    """The processes of a started ``dagster dev`` (supervisor and children) that still run.

    Empty if the group is gone, or if its id now belongs to processes that are not Dagster's
    (the supervisor's pid was reused by a new session leader)."""
    members = _group(service.pid)
    return members if any(_runs_dagster(p) for p in members) else []


def is_dagster_running(service: Service) -> bool:
    return bool(dagster_group(service))


def _reap(pid: int) -> None:
    """Collect the supervisor's exit status if it is our child, so no zombie keeps its pid."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(pgid: int, sig: int, grace: float) -> bool:
    """Send ``sig`` to the group, then wait up to ``grace`` s for it to empty; True if it did."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        _reap(pgid)
        if not _group(pgid):
            return True
        time.sleep(0.2)
    _reap(pgid)
    return not _group(pgid)


def stop_dagster(service: Service, *, grace: float = 20.0) -> None:
    """Stop ``dagster dev`` and all its children: SIGTERM to the process group, then SIGKILL.

    Does nothing if the group no longer runs Dagster. Raises :class:`StackError` if processes of
    the group survive SIGKILL."""
    if not dagster_group(service):
        _reap(service.pid)
        return
    if _signal_group(service.pid, signal.SIGTERM, grace):
        return
    if _signal_group(service.pid, signal.SIGKILL, 5.0):
        return
    left = ", ".join(str(p.pid) for p in _group(service.pid))
    raise StackError(f"dagster dev (process group {service.pid}) did not stop; still running: {left}")
