"""The local stack's Schema Registry: Apicurio Registry 3 from Maven Central (``make jvm-deps``),
started by the project's launcher, answering Confluent's Schema Registry API (its ccompat API) over
real HTTP to the client users have, ``confluent_kafka.schema_registry``: register, look up by id,
check compatibility, and a serialize/deserialize round trip in Confluent's wire format."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from lakeport.dev import stack
from lakeport.dev.processes import free_port

pytestmark = [pytest.mark.stack, pytest.mark.slow]
ORDER = {"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "long"}, {"name": "status", "type": "string"},
    {"name": "total", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
]}  # fmt: skip


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[stack.StackState]:
    state = stack.up(tmp_path / "home", postgres=False, registry_port=free_port(), timeout=90)
    try:
        yield state
    finally:
        stack.down(tmp_path / "home")


def test_the_stacks_registry_answers_confluents_api_on_loopback(registry: stack.StackState) -> None:
    assert registry.registry_url.endswith("/apis/ccompat/v7")
    (service,) = [s for s in registry.services if s.name == "registry"]
    listening = [c for c in psutil.Process(service.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(c.laddr.ip in ("127.0.0.1", "::1") for c in listening)

    client = SchemaRegistryClient({"url": registry.registry_url})
    schema_id = client.register_schema("shop.orders-value", Schema(json.dumps(ORDER), "AVRO"))
    assert json.loads(client.get_schema(schema_id).schema_str) == ORDER
    assert client.get_latest_version("shop.orders-value").schema_id == schema_id
    assert "shop.orders-value" in client.get_subjects()
    wider = {**ORDER, "fields": [*ORDER["fields"], {"name": "note", "type": ["null", "string"], "default": None}]}
    assert client.test_compatibility("shop.orders-value", Schema(json.dumps(wider), "AVRO"))


def test_a_record_round_trips_in_confluents_wire_format(registry: stack.StackState) -> None:
    from decimal import Decimal

    client = SchemaRegistryClient({"url": registry.registry_url})
    ctx = SerializationContext("shop.orders", MessageField.VALUE)
    record = {"id": 7, "status": "Approved", "total": Decimal("12345.67")}
    data = AvroSerializer(client, json.dumps(ORDER))(record, ctx)
    assert data is not None and data[0] == 0  # magic byte, then the registry's 4-byte schema id
    (schema_id,) = struct.unpack(">I", data[1:5])
    assert json.loads(client.get_schema(schema_id).schema_str) == ORDER
    assert AvroDeserializer(client)(data, ctx) == record
