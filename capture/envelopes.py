"""Debezium-compatible change events (JSON converter, ``schemas.enable=true``) and the outbox router.

Row values arrive as PostgreSQL text; they become Kafka Connect types the way Debezium's PostgreSQL
connector encodes them by default: ``numeric(p,s)`` as ``Decimal`` bytes, ``date`` as days,
``timestamp`` as ``MicroTimestamp``, ``timestamptz`` as an ISO ``ZonedTimestamp`` in UTC, ``uuid``
and ``json(b)`` as named strings, an unchanged TOAST value as ``__debezium_unavailable_value``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from lakeport.capture.pgoutput import UNCHANGED, Column, Relation, Value, lsn_text

UNAVAILABLE = "__debezium_unavailable_value"
UNAVAILABLE_BYTES = base64.b64encode(UNAVAILABLE.encode()).decode()  # bytea, precise decimals: the bytes, in JSON
CONNECTOR_VERSION = "lakeport-capture-1"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)
Convert = Callable[[str], Any]


def _timestamp_us(text: str) -> int | None:
    if text in ("infinity", "-infinity"):
        return None
    value = dt.datetime.fromisoformat(text)
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _zoned(text: str) -> str | None:
    if text in ("infinity", "-infinity"):
        return None
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _days(text: str) -> int | None:
    return None if text in ("infinity", "-infinity") else (dt.date.fromisoformat(text) - _EPOCH_DATE).days


def _float(text: str) -> float | None:
    value = float(text)
    return None if value != value or value in (float("inf"), float("-inf")) else value  # JSON has no NaN/inf


def _decimal_bytes(scale: int) -> Convert:
    def convert(text: str) -> str | None:
        if text == "NaN":
            return None
        unscaled = int(Decimal(text).scaleb(scale).to_integral_value())
        size = max(1, (unscaled.bit_length() + 8) // 8)
        return base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode()

    return convert


def _bytea(text: str) -> str:
    return base64.b64encode(bytes.fromhex(text[2:] if text.startswith("\\x") else text)).decode()


@lru_cache(maxsize=1024)
def column_type(type_oid: int, typmod: int) -> tuple[dict[str, Any], Convert]:
    """(Connect schema of the field, text → JSON value) for a PostgreSQL type."""
    simple: dict[int, tuple[str, Convert]] = {
        16: ("boolean", lambda t: t in ("t", "true")),  # output function: t; ::text cast: true
        20: ("int64", int),
        21: ("int16", int),
        23: ("int32", int),
        26: ("int64", int),
        700: ("float", _float),
        701: ("double", _float),
    }
    if type_oid in simple:
        kind, convert = simple[type_oid]
        return {"type": kind}, convert
    named: dict[int, tuple[str, str, Convert]] = {
        1082: ("int32", "io.debezium.time.Date", _days),
        1114: ("int64", "io.debezium.time.MicroTimestamp", _timestamp_us),
        1184: ("string", "io.debezium.time.ZonedTimestamp", _zoned),
        2950: ("string", "io.debezium.data.Uuid", str),
        114: ("string", "io.debezium.data.Json", str),
        3802: ("string", "io.debezium.data.Json", str),
    }
    if type_oid in named:
        kind, name, convert = named[type_oid]
        return {"type": kind, "name": name, "version": 1}, convert
    if type_oid == 1700 and typmod >= 4:
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        params = {"scale": str(scale), "connect.decimal.precision": str(precision)}
        return {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": params}, (
            _decimal_bytes(scale)
        )
    if type_oid == 17:
        return {"type": "bytes"}, _bytea
    return {"type": "string"}, str  # text, varchar, char, unconstrained numeric (as a string), the rest


def convert_row(relation: Relation, values: tuple[Value, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column, value in zip(relation.columns, values, strict=True):
        if value is None:
            row[column.name] = None
        elif value is UNCHANGED:  # Debezium's placeholder: the text, or its bytes (base64) in a bytes column
            schema, _ = column_type(column.type_oid, column.typmod)
            row[column.name] = UNAVAILABLE_BYTES if schema["type"] == "bytes" else UNAVAILABLE
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
