"""The local stack: a Kafka-API broker (Tansu) and S3 (SeaweedFS), started from their wheels, and
a private PostgreSQL cluster as the CDC source (:mod:`lakeport.dev.postgres`).

Everything binds 127.0.0.1. State (ports, pids, data dirs, logs) lives in one directory,
``.lakeport/`` by default, in ``stack.json``. ``down`` stops only the pids recorded there, and only
if the process at that pid is still the binary we started (pids get reused).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from lakeport.dev import jvm, seaweed, tansu
from lakeport.dev.processes import (
    Service,
    StackError,
    free_port,
    is_running,
    port_free,
    stop,
)

if TYPE_CHECKING:
    from lakeport.settings import Settings

STATE_FILE = "stack.json"
DEFAULT_PORTS = {"kafka": 19092, "s3": 18333, "postgres": 15432}
DEFAULT_BUCKET = "lake"
DEV_ACCESS_KEY = "lakeport"
DEV_SECRET_KEY = "lakeport-dev-secret"  # local stack only; production reads its keys from secrets


@dataclass(frozen=True)
class StackState:
    home: str
    kafka_bootstrap: str
    s3_endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    services: list[Service] = field(default_factory=list)
    postgres_port: int = 0  # 0: started without PostgreSQL
    registry_url: str = ""  # the Schema Registry's Confluent-compatible API; "": not started

    @property
    def postgres_dsn(self) -> str:
        from lakeport.dev.postgres import dsn

        return dsn(self.postgres_port)

    def storage_options(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
            "aws_conditional_put": "etag",
        }

    def env(self) -> dict[str, str]:
        """Environment overrides that point a Lakeport config at this stack."""
        env = {
            "LAKEPORT_KAFKA__BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "LAKEPORT_LAKE__URI": f"s3://{self.bucket}",
        }
        env.update({f"LAKEPORT_LAKE__STORAGE_OPTIONS__{k}": v for k, v in self.storage_options().items()})
        return env


def ports_for(settings: Settings) -> tuple[int, int]:
    """The (Kafka, S3) loopback ports a configuration expects the local stack on."""
    first = settings.kafka.bootstrap_servers.split(",")[0]
    kafka = int(first.rsplit(":", 1)[1]) if ":" in first else DEFAULT_PORTS["kafka"]
    endpoint = urlparse(settings.lake.to_object_store().get("AWS_ENDPOINT_URL", ""))
    return kafka, endpoint.port or DEFAULT_PORTS["s3"]


def postgres_port_for(settings: Settings) -> int:
    """The loopback port of the first configured source database (the local stack's PostgreSQL)."""
    return settings.sources[0].postgres.port if settings.sources else DEFAULT_PORTS["postgres"]


def load_state(home: Path) -> StackState | None:
    path = home / STATE_FILE
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    raw["services"] = [Service(**s) for s in raw.get("services", [])]
    return StackState(**raw)


def _save_state(state: StackState) -> None:
    path = Path(state.home) / STATE_FILE
    path.write_text(json.dumps(asdict(state), indent=2))
    path.chmod(0o600)


def up(
    home: Path,
    *,
    kafka_port: int | None = None,
    s3_port: int | None = None,
    postgres_port: int | None = None,
    postgres: bool = True,
    bucket: str = DEFAULT_BUCKET,
    timeout: float = 60.0,
    fresh: bool = False,
    kafka: Literal["tansu", "apache"] = "tansu",
    registry_port: int | None = None,
) -> StackState:
    """Start the stack (or return the running one) and wait until every service answers.

    ``kafka`` picks the broker: Tansu (the fast default, no JVM) or Apache Kafka 4 in KRaft mode
    (the compatibility tier, from ``make jvm-deps``). Tansu keeps its data in memory, so after a
    restart the lake's offsets and the source's replication position refer to messages that are
    gone; ``fresh`` starts S3, PostgreSQL (and Apache Kafka's log) empty as well (the demo does).
    ``registry_port``: also a Schema Registry there (Apicurio Registry 3, Confluent-compatible API)."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    existing = load_state(home)
    if existing and existing.services and all(is_running(s) for s in existing.services):
        return existing
    if existing:
        down(home)
    if fresh:
        from lakeport.dev import postgres as pg

        for directory in (home / "s3", pg.data_dir(home), home / "capture", home / "apache-kafka"):
            shutil.rmtree(directory, ignore_errors=True)
    deadline = time.monotonic() + timeout
    kafka_port = kafka_port or free_port()
    s3_port = s3_port or free_port()
    pg_port = (postgres_port or free_port()) if postgres else 0
    for port in (kafka_port, s3_port, pg_port or kafka_port):
        if not port_free(port):
            raise StackError(f"port 127.0.0.1:{port} is already in use")
    broker = (
        jvm.start_kafka(home, kafka_port, deadline) if kafka == "apache" else tansu.start(home, kafka_port, deadline)
    )
    state = StackState(
        home=str(home),
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        s3_endpoint=f"http://127.0.0.1:{s3_port}",
        bucket=bucket,
        access_key=DEV_ACCESS_KEY,
        secret_key=DEV_SECRET_KEY,
        services=[broker],
    )
    _save_state(state)
    try:
        s3 = seaweed.start(home, s3_port, state.access_key, state.secret_key, bucket, deadline)
        state = replace(state, services=[broker, s3])
        _save_state(state)
        if pg_port:
            from lakeport.dev import postgres as pg

            state = replace(state, services=[*state.services, pg.start(home, pg_port, deadline)], postgres_port=pg_port)
            _save_state(state)
        if registry_port:
            registry = jvm.start_registry(home, registry_port, deadline + 60)
            url = f"http://127.0.0.1:{registry_port}/apis/ccompat/v7"
            state = replace(state, services=[*state.services, registry], registry_url=url)
            _save_state(state)
        tansu.wait_ready(state.kafka_bootstrap, deadline)
        seaweed.create_bucket(state.s3_endpoint, state.access_key, state.secret_key, state.bucket, deadline)
    except BaseException:
        down(home)
        raise
    return state


def down(home: Path) -> list[str]:
    """Stop the services recorded in ``home``; return the names that were stopped."""
    state = load_state(home.resolve())
    if state is None:
        return []
    stopped = []
    for service in reversed(state.services):
        if is_running(service):
            stop(service)
            stopped.append(service.name)
    (Path(state.home) / STATE_FILE).unlink(missing_ok=True)
    return stopped


def status(home: Path) -> dict[str, object]:
    state = load_state(home.resolve())
    if state is None:
        return {"running": False, "home": str(home.resolve()), "services": []}
    services = [
        {"name": s.name, "pid": s.pid, "port": s.port, "running": is_running(s), "log": s.log} for s in state.services
    ]
    return {
        "running": all(s["running"] for s in services),
        "home": state.home,
        "kafka_bootstrap": state.kafka_bootstrap,
        "s3_endpoint": state.s3_endpoint,
        "bucket": state.bucket,
        "postgres": f"127.0.0.1:{state.postgres_port}" if state.postgres_port else None,
        "schema_registry": state.registry_url or None,
        "services": services,
    }


def stop_s3(home: Path) -> None:
    """Stop the stack's S3 server (its data stays on disk): an outage, for fault drills."""
    state = load_state(home.resolve())
    if state is None:
        raise StackError(f"no local stack recorded in {home}")
    for service in state.services:
        if service.name == "s3":
            stop(service)


def start_s3(home: Path, *, timeout: float = 60) -> StackState:
    """Start the stack's S3 server again on its port, over the same data; records its new pid."""
    state = load_state(home.resolve())
    if state is None:
        raise StackError(f"no local stack recorded in {home}")
    port = int(state.s3_endpoint.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    s3 = seaweed.start(Path(state.home), port, state.access_key, state.secret_key, state.bucket, deadline)
    state = replace(state, services=[s3 if s.name == "s3" else s for s in state.services])
    _save_state(state)
    return state
