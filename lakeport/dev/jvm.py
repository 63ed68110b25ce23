"""The JVM tier of the local stack: Apache Kafka 4 in KRaft mode (one combined broker and
controller) and Kafka Connect (standalone) with Debezium's PostgreSQL connector, from the jars
``make jvm-deps`` copies into the venv (``share/lakeport-jvm``). Loopback only, small heaps, state
under the stack's home; stopped by pid like the rest."""

from __future__ import annotations

import base64
import json
import shutil
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from lakeport.dev.processes import Service, StackError, free_port, spawn, stop, wait_port

JARS = Path(sys.executable).parent.parent / "share" / "lakeport-jvm"
HEAP = ("-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.net.preferIPv4Stack=true")  # small: 2 cores, 24 GB shared
LOG4J = """Configuration:
  Appenders:
    Console: {name: STDOUT, PatternLayout: {pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Root: {level: INFO, AppenderRef: [{ref: STDOUT}]}
"""


def java() -> str:
    found = shutil.which("java")
    if found is None:
        raise StackError("Java not found: `make jvm-deps` installs a JDK (or set PATH to one, 17 or newer)")
    return found


def java21() -> str:
    """A Java 21 or newer (Apicurio Registry 3 is built for it): ``java`` on the PATH, else the
    newest JDK under ``/usr/lib/jvm``."""
    candidates = [Path(java()).resolve().parents[1]] if shutil.which("java") else []
    candidates += sorted(Path("/usr/lib/jvm").glob("*"), reverse=True)
    for home in candidates:
        release = home / "release"
        if release.is_file() and (home / "bin" / "java").is_file():
            version = next((ln.split("=", 1)[1].strip('"') for ln in release.read_text().splitlines()
                            if ln.startswith("JAVA_VERSION=")), "0")  # fmt: skip
            if int(version.split(".")[0] or 0) >= 21:
                return str(home / "bin" / "java")
    raise StackError("the Schema Registry (Apicurio Registry 3) needs Java 21 or newer; none found")


def classpath(part: str = "kafka") -> str:
    folder = JARS / part
    if not folder.is_dir() or not any(folder.glob("*.jar")):
        raise StackError(f"no jars in {folder}: run `make jvm-deps`")
    return f"{folder}/*"


def _jvm(home: Path, main: str, args: list[str], *, name: str, port: int, deadline: float) -> Service:
    (home / "jvm").mkdir(parents=True, exist_ok=True)
    log4j = home / "jvm" / "log4j2.yaml"
    log4j.write_text(LOG4J)
    log = home / "logs" / f"{name}.log"
    cmd = [java(), *HEAP, f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath(), main, *args]
    proc = spawn(cmd, log, home)
    service = Service(name, proc.pid, port, java(), str(log))
    if not wait_port(port, deadline) or proc.poll() is not None:
        stop(service)
        raise StackError(f"{name} did not come up on 127.0.0.1:{port}; see {log}")
    return service


def start_kafka(home: Path, port: int, deadline: float) -> Service:
    """Apache Kafka on 127.0.0.1:``port``; its log directory survives restarts (formatted once)."""
    data, controller = home / "apache-kafka", free_port()
    config = data / "server.properties"
    data.mkdir(parents=True, exist_ok=True)
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data / "logs"),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Keep every record: tests and backfills write records stamped months ago, which a time-based
        # retention (7 days by record timestamp) would delete at once. Gaps are made on purpose
        # (AdminClient.delete_records), never by the clock.
        "log.retention.ms": "-1",
    }
    if (data / "logs" / "meta.properties").exists():  # a restart: keep the cluster, its controller port
        old = dict(line.split("=", 1) for line in config.read_text().splitlines() if "=" in line)
        settings["controller.quorum.bootstrap.servers"] = old["controller.quorum.bootstrap.servers"]
        settings["listeners"] = (
            f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://{old['controller.quorum.bootstrap.servers']}"
        )
    config.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    if not (data / "logs" / "meta.properties").exists():
        cluster = "-"
        while cluster.startswith("-"):  # as Kafka's own ids: one starting with "-" reads as an option
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        fmt = [java(), *HEAP, "-cp", classpath(), "kafka.tools.StorageTool", "format", "--standalone",
               f"--cluster-id={cluster}", "-c", str(config)]  # fmt: skip
        proc = spawn(fmt, home / "logs" / "apache-kafka-format.log", home)
        if proc.wait(timeout=max(deadline - time.monotonic(), 1)) != 0:
            raise StackError(f"formatting Kafka's log directory failed; see {home / 'logs'}")
    return _jvm(home, "kafka.Kafka", [str(config)], name="kafka", port=port, deadline=deadline)


def start_registry(home: Path, port: int, deadline: float) -> Service:
    """Apicurio Registry 3 (in-memory storage) on 127.0.0.1:``port``; its Confluent-compatible API
    (what Confluent's serializers and ``confluent_kafka.schema_registry`` speak) is at
    ``http://127.0.0.1:<port>/apis/ccompat/v7``. Its management port is a free one."""
    dist = JARS / "registry"
    if not (dist / "quarkus-run.jar").is_file():
        raise StackError(f"no Apicurio Registry in {dist}: run `make jvm-deps`")
    log = home / "logs" / "registry.log"
    cmd = [java21(), *HEAP, "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={port}",
           "-Dquarkus.management.host=127.0.0.1", f"-Dquarkus.management.port={free_port()}",
           "-jar", str(dist / "quarkus-run.jar")]  # fmt: skip
    (home / "logs").mkdir(parents=True, exist_ok=True)
    proc = spawn(cmd, log, home)
    service = Service("registry", proc.pid, port, cmd[0], str(log))
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7/subjects"
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return service
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    stop(service)
    raise StackError(f"the Schema Registry did not answer on {url}; see {log}")


def avro_converters(registry_port: int) -> dict[str, str]:
    """Connector settings for Avro in Confluent's wire format (magic byte 0, the registry's 4-byte
    schema id) through Apicurio's converter (``make jvm-deps`` puts it in the plugin path), with
    schemas registered in the stack's registry."""
    settings: dict[str, str] = {}
    for side in ("key", "value"):
        p = f"{side}.converter"
        settings.update({
            p: "io.apicurio.registry.utils.converter.AvroConverter",
            f"{p}.apicurio.registry.url": f"http://127.0.0.1:{registry_port}/apis/registry/v2",
            f"{p}.apicurio.registry.auto-register": "true",
            f"{p}.apicurio.registry.find-latest": "true",
            f"{p}.apicurio.registry.headers.enabled": "false",  # the id in the value, not in a header
            f"{p}.apicurio.registry.as-confluent": "true",
            f"{p}.apicurio.registry.use-id": "contentId",  # the id the ccompat API serves
            f"{p}.apicurio.registry.id-handler": "io.apicurio.registry.serde.Legacy4ByteIdHandler",
        })  # fmt: skip
    return settings


def start_connect(home: Path, *, bootstrap: str, connectors: list[dict[str, Any]], deadline: float,
                  port: int | None = None) -> Service:  # fmt: skip
    """Kafka Connect (standalone) running ``connectors``, with its offsets in a file under ``home``
    (they survive a kill: Debezium resumes from the last flushed position and replays from there)."""
    data, port = home / "connect", port or free_port()
    data.mkdir(parents=True, exist_ok=True)
    worker = {
        "bootstrap.servers": bootstrap,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "offset.storage.file.filename": str(data / "offsets"),
        "offset.flush.interval.ms": "1000",
        "plugin.path": str(JARS / "plugins"),
        "listeners": f"http://127.0.0.1:{port}",
        "plugin.discovery": "only_scan",
    }
    (data / "worker.properties").write_text("".join(f"{k}={v}\n" for k, v in worker.items()))
    files = []
    for connector in connectors:
        path = data / f"{connector['name']}.json"
        path.write_text(json.dumps(connector, indent=2))
        files.append(str(path))
    service = _jvm(home, "org.apache.kafka.connect.cli.ConnectStandalone", [str(data / "worker.properties"), *files],
                   name="connect", port=port, deadline=deadline)  # fmt: skip
    try:
        for connector in connectors:
            wait_running(port, connector["name"], deadline)
    except BaseException:
        stop(service)
        raise
    return service


def connector_status(port: int, name: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/connectors/{name}/status", timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def wait_running(port: int, name: str, deadline: float) -> None:
    """Until the connector and its task run; a failed task raises with Connect's trace."""
    last: object = None
    while time.monotonic() < deadline:
        try:
            status = connector_status(port, name)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = exc
            time.sleep(0.5)
            continue
        tasks = status.get("tasks", [])
        failed = [t for t in tasks if t.get("state") == "FAILED"]
        if failed or status.get("connector", {}).get("state") == "FAILED":
            raise StackError(f"connector {name} failed: {json.dumps(failed or status)[:2000]}")
        if tasks and all(t.get("state") == "RUNNING" for t in tasks):
            return
        last = status
        time.sleep(0.5)
    raise StackError(f"connector {name} did not reach RUNNING: {last}")


DEBEZIUM_CONFIGS = Path(__file__).resolve().parents[2] / "infra" / "debezium"


def debezium_connectors(prefix: str, *, port: int, database: str, user: str, password: str,
                        tables: list[str] | None = None, schemas: bool = True,
                        events: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The connectors of ``infra/debezium/`` (change events, and the outbox router's domain events)
    pointed at a local database: only the connection, the names (topics ``<prefix>.<schema>.<table>``
    and ``<events>.<aggregate>``, default ``<prefix>_events``; slots, publications) and, on request, the tables and the
    JSON converter's schemas differ. Without schemas, decimals are sent as strings: precise
    decimals are bytes whose scale only the schema carries."""
    local = {"database.hostname": "127.0.0.1", "database.port": str(port), "database.user": user,
             "database.password": password, "database.dbname": database}  # fmt: skip
    cdc = json.loads((DEBEZIUM_CONFIGS / "shop-cdc.json").read_text())
    cdc.update(local, name=f"{prefix}-cdc", **{"topic.prefix": prefix, "slot.name": f"{prefix}_cdc",
                                                "publication.name": f"{prefix}_cdc"})  # fmt: skip
    if tables is not None:
        cdc["table.include.list"] = ",".join(tables)
    outbox = json.loads((DEBEZIUM_CONFIGS / "shop-outbox.json").read_text())
    outbox.update(local, name=f"{prefix}-outbox", **{
        "topic.prefix": f"{prefix}-outbox", "slot.name": f"{prefix}_outbox", "publication.name": f"{prefix}_outbox",
        "transforms.outbox.route.topic.replacement": f"{events or prefix + '_events'}.${{routedByValue}}",
    })  # fmt: skip
    if not schemas:
        cdc.update({"value.converter.schemas.enable": "false", "decimal.handling.mode": "string"})
    return [cdc, outbox]
