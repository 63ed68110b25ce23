"""The plain frozen dataclasses the pipeline stages exchange."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

# Lakeport's own bronze columns: a fixed set (any other column, ``_version`` too, is the source's)
META_COLUMNS = ("_topic", "_partition", "_offset", "_timestamp", "_key", "_ingested_at")  # every table
CDC_COLUMNS = (  # Debezium tables: the op and the source block's position fields
    "_op",
    "_source_ts_ms",
    "_source_lsn",
    "_source_tx_id",
    "_source_snapshot",
    "_source_db",
    "_source_schema",
    "_source_table",
)
TOAST_MARKS = "_toast_unavailable"  # list<string>: columns that carried the unchanged-TOAST placeholder
UNAVAILABLE = "__debezium_unavailable_value"  # Debezium's placeholder for an unchanged TOAST value
UNAVAILABLE_B64 = base64.b64encode(UNAVAILABLE.encode()).decode()  # the placeholder of a bytes column, in JSON
# its forms in a uuid[] (one name-based UUID of its bytes, as Java's nameUUIDFromBytes) and an hstore (JSON mode)
UNAVAILABLE_UUID = str(uuid.UUID(bytes=hashlib.md5(UNAVAILABLE.encode()).digest(), version=3))
UNAVAILABLE_HSTORE = json.dumps({UNAVAILABLE: UNAVAILABLE}, separators=(",", ":"))
# A primary-key change arrives as delete(old key) + create(new key); Debezium names the old key in
# the create's ``__debezium.oldkey`` header. Kept (as the key's JSON) only where the create carries
# an unchanged-TOAST placeholder: that value is the old key's.
OLD_KEY = "_old_key"
REPLAYED_FROM = "_replayed_from"  # a row replayed from ops.dead_letters: its topic[partition]@offset
BRONZE_META = frozenset((*META_COLUMNS, *CDC_COLUMNS, TOAST_MARKS, OLD_KEY, REPLAYED_FROM))
# in the error of a row the table refused after decoding: its value is the decoded row as JSON, not
# the raw record (replayable into a ``json`` table; not into a Debezium one, which needs the envelope)
REENCODED = "[value: the decoded row as JSON]"
KEY = "_key"  # the Kafka key's bytes as they arrived, whatever they hold (JSON, Avro, text, anything)


def key_column(keys: Sequence[bytes | None]) -> pa.Array:
    return pa.array(keys, pa.binary())


def keys_as_stored(rows: pa.Table, stored: pa.Schema | None) -> pa.Table:
    """``rows`` with ``_key`` as the table stores it. Tables made before ``_key`` kept bytes hold
    text: their keys stay text (UTF-8; bytes that are not become backslash escapes, as then)."""
    if stored is None or KEY not in rows.column_names or KEY not in stored.names:
        return rows
    if not pa.types.is_string(stored.field(KEY).type) or not pa.types.is_binary(rows.schema.field(KEY).type):
        return rows
    text = [None if k is None else k.decode("utf-8", "backslashreplace") for k in rows[KEY].to_pylist()]
    return rows.set_column(rows.column_names.index(KEY), KEY, pa.array(text, pa.string()))


def key_bytes(value: bytes | str | None) -> bytes | None:
    """A stored ``_key`` back as bytes (text in tables made before it kept bytes)."""
    return value.encode() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One Kafka record as consumed (used by tests and the dead-letter path)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()  # kept with a dead letter, so a replay sees them


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Kafka records of one topic-partition run, columnar so that nothing is built per message."""

    topic: str
    partition: int
    offsets: list[int]
    timestamps_ms: list[int | None]
    keys: list[bytes | None]
    values: list[bytes | None]
    # the client's message objects, for the few records whose headers are read (Debezium's old key)
    client_messages: Sequence[Any] = ()

    @property
    def size(self) -> int:
        return len(self.offsets)

    def headers(self, i: int) -> list[tuple[str, bytes]]:
        return (self.client_messages[i].headers() or []) if self.client_messages else []

    @property
    def nbytes(self) -> int:
        try:
            return sum(map(len, self.values))  # type: ignore[arg-type]
        except TypeError:  # a tombstone (None) among them
            return sum(len(v) for v in self.values if v is not None)

    def message(self, i: int) -> RawMessage:
        return RawMessage(
            self.topic,
            self.partition,
            self.offsets[i],
            self.timestamps_ms[i],
            self.keys[i],
            self.values[i],
            tuple((k, None if v is None else bytes(v)) for k, v in self.headers(i)),
        )


@dataclass(frozen=True, slots=True)
class Batch:
    """Everything buffered for one table, ready to decode and write as one Delta commit."""

    table: str
    format: str
    parts: tuple[RawBatch, ...]
    # (topic, partition) -> (first offset, last offset) covered by this batch
    ranges: dict[tuple[str, int], tuple[int, int]]
    raw_bytes: int = 0

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


Record = tuple[str, int, int]  # a Kafka record's topic, partition and offset


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be landed in its table: kept as a row, never raised."""

    table: str
    message: RawMessage
    error: str
    stage: str  # decode | schema | write | limits

    @property
    def record(self) -> Record:
        return (self.message.topic, self.message.partition, self.message.offset)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A batch after decoding: the rows for the table (metadata columns included) and the rejects."""

    table: str
    rows: pa.Table
    dead_letters: tuple[DeadLetter, ...]
    ranges: dict[tuple[str, int], tuple[int, int]]
    messages: int
    raw_bytes: int


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What one write+commit did; the loop commits these offsets to Kafka afterwards."""

    table: str
    version: int | None
    rows: int
    dead_letters: int
    skipped_duplicates: int
    messages: int
    raw_bytes: int
    seconds: float
    # (topic, partition) -> next offset to consume (last landed offset + 1)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    conflicts: tuple[DeadLetter, ...] = ()  # rows whose wider values the table refused (stage schema)


@dataclass
class RunStats:
    """What a worker's run landed, summed over its commits."""

    messages: int = 0
    rows: int = 0
    dead_letters: int = 0
    commits: int = 0
    skipped_duplicates: int = 0
    gap_records: int = 0  # deleted from Kafka before they landed, skipped under on_gap: skip
    seconds_from_first_message: float = 0.0
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows landed

    def add(self, result: CommitResult) -> None:
        self.messages += result.messages
        self.rows += result.rows
        self.dead_letters += result.dead_letters
        self.skipped_duplicates += result.skipped_duplicates
        self.commits += 1
        self.tables[result.table] = self.tables.get(result.table, 0) + result.rows


def letters_from_rows(table: str, rows: pa.Table, errors: Sequence[str], *, stage: str) -> list[DeadLetter]:
    """Decoded rows as dead letters (the table refused them after decoding): the value is the row
    re-encoded as JSON, as the error says (the raw bytes are not kept after decoding)."""
    out = []
    for row, error in zip(rows.to_pylist(), errors, strict=True):
        value = json.dumps({k: v for k, v in row.items() if not k.startswith("_")}, default=str).encode()
        message = RawMessage(topic=row["_topic"], partition=row["_partition"], offset=row["_offset"], timestamp_ms=None,
                             key=key_bytes(row.get("_key")), value=value)  # fmt: skip
        out.append(DeadLetter(table=table, message=message, error=f"{error} {REENCODED}", stage=stage))
    return out
