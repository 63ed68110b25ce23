"""Processes of the local stack: free loopback ports, spawning detached services, and stopping
them by pid, only if the pid still runs the binary that was started (pids get reused)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


class StackError(RuntimeError):
    """The local stack could not be started, reached or stopped."""


@dataclass(frozen=True)
class Service:
    name: str
    pid: int
    port: int
    binary: str
    log: str
    stop_signal: int = int(signal.SIGTERM)  # PostgreSQL: SIGINT (fast shutdown)


def free_port() -> int:
    """A free loopback port low enough that SeaweedFS's port+10000 gRPC ports stay valid."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 55000 and port_free(port) and port_free(port + 10000):
            return port
    raise StackError("no free loopback port found")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_port(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def spawn(cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )


def is_running(service: Service) -> bool:
    """True if the pid is alive and still runs the binary we started."""
    try:
        proc = psutil.Process(service.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return Path(proc.exe()).name == Path(service.binary).name
    except (psutil.Error, OSError):
        return False


def stop(service: Service, *, grace: float = 5.0) -> None:
    if not is_running(service):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(service.pid, service.stop_signal)
    end = time.monotonic() + grace
    while time.monotonic() < end and is_running(service):
        time.sleep(0.1)
    if is_running(service):
        with contextlib.suppress(ProcessLookupError):
            os.kill(service.pid, signal.SIGKILL)
        end = time.monotonic() + grace
        while time.monotonic() < end and is_running(service):
            time.sleep(0.1)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(service.pid, os.WNOHANG)


def pause(service: Service) -> None:
    """Freeze a service (SIGSTOP), e.g. to simulate a broker outage without losing its data."""
    if is_running(service):
        os.kill(service.pid, signal.SIGSTOP)


def resume(service: Service) -> None:
    os.kill(service.pid, signal.SIGCONT)
