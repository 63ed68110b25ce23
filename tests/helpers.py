"""Shared test helpers: configs, producing, reading the lake, running the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from lakeport.dev.kafka_tools import create_topics, produce
from lakeport.dev.stack import StackState
from lakeport.ingestion.records import Batch, RawBatch

ROOT = Path(__file__).resolve().parents[1]  # the repository
OLTP_KEYS = {  # the OLTP workload's tables (lakeport/dev/oltp/schema.sql) and their primary keys
    "customers": ["id"],
    "addresses": ["id"],
    "products": ["id"],
    "prices": ["product_id"],
    "inventory": ["product_id"],
    "orders": ["id"],
    "order_items": ["order_id", "line_no"],
    "payments": ["id"],
    "shipments": ["id"],
}
LAKEPORT = str(Path(sys.executable).parent / "lakeport")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def write_config(
    path: Path,
    state: StackState | None,
    *,
    tables: list[dict[str, Any]],
    lake_uri: str,
    group: str | None = None,
    ingest: dict[str, Any] | None = None,
    kafka_properties: dict[str, str] | None = None,
    sources: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    config: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": state.kafka_bootstrap if state else "127.0.0.1:1",
            "group_id": group or unique("g-"),
            "properties": kafka_properties or {},
        },
        "lake": {
            "uri": lake_uri,
            "storage_options": state.storage_options() if state and lake_uri.startswith("s3://") else {},
        },
        "ingest": {"flush_seconds": 1, **(ingest or {})},
        "tables": tables,
        "sources": sources or [],
        **(extra or {}),
    }
    path.write_text(json.dumps(config, indent=2))
    return path


def make_topic(state: StackState, topic: str, partitions: int) -> None:
    create_topics({"bootstrap.servers": state.kafka_bootstrap}, {topic: partitions})


def send(
    state: StackState,
    topic: str,
    values: Iterable[bytes | None],
    *,
    keys: Sequence[bytes | None] | None = None,
    partition: int | None = None,
) -> int:
    vals = list(values)
    ks = list(keys) if keys is not None else [str(i).encode() for i in range(len(vals))]
    return produce(
        {"bootstrap.servers": state.kafka_bootstrap},
        ((topic, k, v) for k, v in zip(ks, vals, strict=True)),
        partition=partition,
    )


def read_table(uri: str, state: StackState | None = None) -> pa.Table:
    options = state.storage_options() if state and uri.startswith("s3://") else None
    return DeltaTable(uri, storage_options=options).to_pyarrow_table()


def offsets_of(table: pa.Table) -> list[tuple[str, int, int]]:
    return list(
        zip(table["_topic"].to_pylist(), table["_partition"].to_pylist(), table["_offset"].to_pylist(), strict=True)
    )


def run_cli(
    args: Sequence[str], *, timeout: float = 180, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [LAKEPORT, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"lakeport {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
        )
    return proc


def debezium(
    op: str,
    row: dict[str, Any] | None,
    *,
    before: dict[str, Any] | None = None,
    lsn: int = 100,
    table: str = "customers",
) -> bytes:
    event = {
        "before": before,
        "after": None if op == "d" else row,
        "op": op,
        "ts_ms": 1_700_000_000_123,
        "source": {
            "connector": "postgresql",
            "db": "shop",
            "schema": "public",
            "table": table,
            "lsn": lsn,
            "txId": 7,
            "ts_ms": 1_700_000_000_000,
            "snapshot": "true" if op == "r" else "false",
        },
    }
    return json.dumps(event).encode()


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.5) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds pass; returns its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def landed_rows(uri: str, state: StackState) -> int:
    """Rows in a Delta table (0 while it does not exist yet)."""
    try:
        return DeltaTable(uri, storage_options=state.storage_options() if uri.startswith("s3://") else None).count()
    except TableNotFoundError:
        return 0


def start_worker(config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A `lakeport ingest` worker in the background, its output in ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            [LAKEPORT, "ingest", *args, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT
        )


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it (a Slack stand-in)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/lakeport"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def raw_batch(values: list[bytes | None], fmt: str = "json", *, table: str = "t", topic: str = "t") -> Batch:
    """One partition's records (offsets from 0) as a decode-ready batch, no broker involved."""
    part = RawBatch(topic, 0, list(range(len(values))), [1_700_000_000_000] * len(values), [None] * len(values), values)
    return Batch(table, fmt, (part,), {(topic, 0): (0, len(values) - 1)}, sum(len(v or b"") for v in values))


# -- bronze CDC rows written directly (no Kafka), for silver and history tests ------------------
CDC_BRONZE = pa.schema(
    [
        ("_topic", pa.string()),
        ("_partition", pa.int32()),
        ("_offset", pa.int64()),
        ("_timestamp", pa.timestamp("ms", tz="UTC")),
        ("_op", pa.string()),
        ("_source_lsn", pa.int64()),
        ("_source_ts_ms", pa.int64()),
        ("_source_db", pa.string()),
        ("id", pa.int64()),
        ("name", pa.string()),
    ]
)


def cdc(offset: int, op: str | None, lsn: int | None, key: int | None, name: str | None = None, **more: Any) -> dict:
    """One bronze change row: Kafka offset, op, LSN (also its source time in ms), key, name."""
    return {
        "_topic": "shop.public.t",
        "_partition": more.pop("partition", 0),
        "_offset": offset,
        "_timestamp": more.pop("timestamp", None),
        "_op": op,
        "_source_lsn": lsn,
        "_source_ts_ms": more.pop("ts_ms", lsn),
        "_source_db": more.pop("db", "shop"),
        "id": key,
        "name": name,
        **more,
    }


def land_cdc(uri: str, rows: list[dict], schema: pa.Schema | None = None) -> None:
    """Append change rows to a bronze table (change data feed on, as ingest creates it)."""
    from deltalake import write_deltalake

    table = (
        pa.Table.from_pylist(rows, schema=schema) if schema else pa.Table.from_pylist(rows, schema=_schema_for(rows))
    )
    write_deltalake(uri, table, mode="append", configuration={"delta.enableChangeDataFeed": "true"})


def _schema_for(rows: list[dict]) -> pa.Schema:
    extra = [n for n in rows[0] if n not in CDC_BRONZE.names] if rows else []
    inferred = pa.Table.from_pylist([{n: r.get(n) for n in extra} for r in rows]).schema if extra else pa.schema([])
    return pa.schema([*CDC_BRONZE, *inferred])


def lake_rows(uri: str, *, key: str = "id") -> dict[Any, dict[str, Any]]:
    """A silver table as {key: row}."""
    return {r[key]: r for r in read_table(uri).to_pylist()} if _exists(uri) else {}


def _exists(uri: str) -> bool:
    try:
        DeltaTable(uri)
    except TableNotFoundError:
        return False
    return True
