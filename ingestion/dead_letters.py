"""Dead letters: records that could not land, as rows of the Delta table ``ops.dead_letters``.

The raw value is kept byte for byte, with where it came from, the table it was meant for and
the error, so nothing is lost and a fixed record can be replayed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable

from lakeport.ingestion.records import DeadLetter, Record, key_column

TABLE = "dead_letters"
LAYER = "ops"
HEADERS = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))  # the record's Kafka headers
SCHEMA = pa.schema(
    [
        ("_topic", pa.string()),
        ("_partition", pa.int32()),
        ("_offset", pa.int64()),
        ("_timestamp", pa.timestamp("us", tz="UTC")),
        ("_key", pa.binary()),
        ("_value", pa.binary()),
        ("table_name", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("_ingested_at", pa.timestamp("us", tz="UTC")),
        ("_headers", HEADERS),
    ]
)


def to_table(letters: Sequence[DeadLetter], *, now: datetime) -> pa.Table:
    m = [d.message for d in letters]
    return pa.table(
        {
            "_topic": [x.topic for x in m],
            "_partition": pa.array([x.partition for x in m], pa.int32()),
            "_offset": pa.array([x.offset for x in m], pa.int64()),
            "_timestamp": pa.array([x.timestamp_ms for x in m], pa.int64())
            .cast(pa.timestamp("ms", tz="UTC"))
            .cast(SCHEMA.field("_timestamp").type),
            "_key": key_column([x.key for x in m]),
            "_value": pa.array([x.value for x in m], pa.binary()),
            "table_name": [d.table for d in letters],
            "stage": [d.stage for d in letters],
            "error": [d.error[:2000] for d in letters],
            "_ingested_at": pa.array([now] * len(letters), SCHEMA.field("_ingested_at").type),
            "_headers": pa.array([[{"key": k, "value": v} for k, v in x.headers] or None for x in m], HEADERS),
        },
        schema=SCHEMA,
    )


def held(table: DeltaTable, ranges: Mapping[tuple[str, int], tuple[int, int]]) -> set[Record]:
    """The records of ``ranges`` (per partition, first and last offset) this table holds."""
    expr = None
    for (topic, partition), (first, last) in ranges.items():
        one = ((ds.field("_topic") == topic) & (ds.field("_partition") == partition)
               & (ds.field("_offset") >= first) & (ds.field("_offset") <= last))  # fmt: skip
        expr = one if expr is None else expr | one
    found = table.to_pyarrow_dataset().to_table(columns=["_topic", "_partition", "_offset"], filter=expr)
    return set(zip(*(found[c].to_pylist() for c in ("_topic", "_partition", "_offset")), strict=True))


def without(rows: pa.Table, records: set[Record]) -> pa.Table:
    """``rows`` minus those of ``records`` (by topic, partition, offset)."""
    coordinates = zip(*(rows[c].to_pylist() for c in ("_topic", "_partition", "_offset")), strict=True)
    return rows.filter(pa.array([r not in records for r in coordinates], pa.bool_()))
