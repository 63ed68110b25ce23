"""Debezium-compatible change events (JSON converter, ``schemas.enable=true``) and the outbox router.

Row values arrive as PostgreSQL text; they become Kafka Connect types the way Debezium's PostgreSQL
connector encodes them by default (:mod:`capture.pg_types`); an unchanged TOAST value becomes
Debezium's placeholder.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lakeport.capture.pg_types import UNAVAILABLE, column_type, unavailable
from lakeport.capture.pgoutput import UNCHANGED, Column, Relation, Value, lsn_text

CONNECTOR_VERSION = "lakeport-capture-1"


def convert_row(relation: Relation, values: tuple[Value, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column, value in zip(relation.columns, values, strict=True):
        if value is None:
            row[column.name] = None
        elif value is UNCHANGED:
            row[column.name] = unavailable(column_type(column.type_oid, column.typmod)[0])
        else:
            row[column.name] = column_type(column.type_oid, column.typmod)[1](str(value))
    return row


def _field(column: Column) -> dict[str, Any]:
    schema, _ = column_type(column.type_oid, column.typmod)
    return {**schema, "optional": not column.is_key, "field": column.name}


_SOURCE_SCHEMA = {
    "type": "struct",
    "name": "io.debezium.connector.postgresql.Source",
    "optional": False,
    "field": "source",
    "fields": [{"type": "string", "optional": False, "field": f} for f in ("version", "connector", "name")]
    + [{"type": "int64", "optional": False, "field": "ts_ms"}]
    + [{"type": "string", "optional": True, "field": "snapshot"}]
    + [{"type": "string", "optional": False, "field": f} for f in ("db", "schema", "table")]
    + [{"type": "string", "optional": True, "field": "sequence"}]
    + [{"type": "int64", "optional": True, "field": f} for f in ("txId", "lsn", "xmin")],
}


@lru_cache(maxsize=512)
def envelope_schema(prefix: str, relation: Relation) -> str:
    """The envelope's Connect schema as JSON text (cached: one string per relation version)."""
    name = f"{prefix}.{relation.schema}.{relation.name}"
    value = {"type": "struct", "name": f"{name}.Value", "fields": [_field(c) for c in relation.columns]}
    return json.dumps(
        {
            "type": "struct",
            "name": f"{name}.Envelope",
            "optional": False,
            "fields": [
                {**value, "optional": True, "field": "before"},
                {**value, "optional": True, "field": "after"},
                _SOURCE_SCHEMA,
                {"type": "string", "optional": False, "field": "op"},
                {"type": "int64", "optional": True, "field": "ts_ms"},
            ],
        },
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class Position:
    """Where a change sits in the source: its LSN, transaction and commit time."""

    lsn: int
    tx_id: int | None
    ts_ms: int
    last_commit_lsn: int = 0
    snapshot: str = "false"  # "true", "last" (the final snapshot record) or "false"


def key_changed(relation: Relation, old: dict[str, Any], new: dict[str, Any] | None) -> bool:
    """Whether an update moved the row to another primary key: its old image holds every key
    column (the default identity sends it only then; ``FULL`` always) and they differ. An old
    image without the key (``USING INDEX`` on other columns) cannot tell, and stays an update."""
    keys = [c.name for c in relation.columns if c.is_key]
    before = [old.get(k) for k in keys]
    if new is None or not keys or any(v is None or v == UNAVAILABLE for v in before):
        return False
    return before != [new.get(k) for k in keys]


def change_event(
    prefix: str,
    database: str,
    relation: Relation,
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    position: Position,
    now_ms: int,
) -> tuple[str, bytes | None, bytes]:
    """(topic, key, value) of one Debezium change event."""
    source = {
        "version": CONNECTOR_VERSION,
        "connector": "postgresql",
        "name": prefix,
        "ts_ms": position.ts_ms,
        "snapshot": position.snapshot,
        "db": database,
        "sequence": json.dumps([lsn_text(position.last_commit_lsn), lsn_text(position.lsn)]),
        "schema": relation.schema,
        "table": relation.name,
        "txId": position.tx_id,
        "lsn": position.lsn,
        "xmin": None,
    }
    payload = {"before": before, "after": after, "source": source, "op": op, "ts_ms": now_ms}
    image = after if after is not None else before
    keys = [c.name for c in relation.columns if c.is_key]
    key = json.dumps({k: image[k] for k in keys}, separators=(",", ":")).encode() if image and keys else None
    value = (
        '{"schema":' + envelope_schema(prefix, relation) + ',"payload":' + json.dumps(payload, separators=(",", ":"))
    )
    return f"{prefix}.{relation.schema}.{relation.name}", key, (value + "}").encode()


def outbox_event(row: dict[str, Any], *, events_prefix: str) -> tuple[str, bytes, bytes, list[tuple[str, str]]]:
    """Route an outbox row as a domain event exactly as Debezium's outbox event router does with
    ``infra/debezium/shop-outbox.json``: topic ``<events_prefix>.<aggregate_type>``, key the
    aggregate id, header ``id`` the event id, and the value ``{"payload": <the expanded JSON
    payload>, "event_type", "aggregate_type", "aggregate_id", "event_id", "occurred_at"}`` with
    ``occurred_at`` an ISO-8601 UTC timestamp with microseconds (``2026-01-01T01:10:41.664000Z``)."""
    payload = row.get("payload")
    occurred = row.get("created_at")
    if isinstance(occurred, str):
        at = dt.datetime.fromisoformat(occurred.replace("Z", "+00:00")).astimezone(dt.UTC)
        occurred = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event = {
        "payload": json.loads(payload) if isinstance(payload, str) else payload,
        "event_type": row["type"],
        "aggregate_type": row["aggregate_type"],
        "aggregate_id": str(row["aggregate_id"]),
        "event_id": str(row["id"]),
        "occurred_at": occurred,
    }
    topic = f"{events_prefix}.{row['aggregate_type']}"
    value = json.dumps(event, separators=(",", ":")).encode()
    return topic, str(row["aggregate_id"]).encode(), value, [("id", str(row["id"]))]
