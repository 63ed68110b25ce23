"""Validation results kept as rows of the Delta table ``ops.quality_results``: one row per
expectation per run, so analysts can query quality over time and the next bronze run knows
which version it validated last."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake

from lakeport.quality.snapshot import open_at
from lakeport.quality.validate import Outcome

LAYER, TABLE = "ops", "quality_results"
SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("run_at", pa.timestamp("us", tz="UTC")),
        ("suite", pa.string()),
        ("layer", pa.string()),
        ("table_name", pa.string()),
        ("version", pa.int64()),
        ("since_version", pa.int64()),
        ("rows_checked", pa.int64()),
        ("expectation", pa.string()),
        ("expectation_type", pa.string()),
        ("column_name", pa.string()),
        ("severity", pa.string()),
        ("success", pa.bool_()),
        ("observed_value", pa.string()),
        ("unexpected_count", pa.int64()),
        ("sample_keys", pa.string()),  # JSON list
    ]
)


def append(
    uri: str,
    outcomes: Sequence[Outcome],
    *,
    run_id: str,
    run_at: datetime,
    suite: str,
    layer: str,
    table: str,
    version: int,
    since_version: int | None,
    rows_checked: int,
    storage_options: dict[str, str] | None,
) -> int:
    """Append one row per outcome; returns the rows written."""
    n = len(outcomes)
    data = pa.table(
        {
            "run_id": [run_id] * n,
            "run_at": pa.array([run_at] * n, SCHEMA.field("run_at").type),
            "suite": [suite] * n,
            "layer": [layer] * n,
            "table_name": [table] * n,
            "version": pa.array([version] * n, pa.int64()),
            "since_version": pa.array([since_version] * n, pa.int64()),
            "rows_checked": pa.array([rows_checked] * n, pa.int64()),
            "expectation": [o.expectation for o in outcomes],
            "expectation_type": [o.kind for o in outcomes],
            "column_name": [o.column for o in outcomes],
            "severity": [o.severity for o in outcomes],
            "success": [o.success for o in outcomes],
            "observed_value": [o.observed for o in outcomes],
            "unexpected_count": pa.array([o.unexpected_count for o in outcomes], pa.int64()),
            "sample_keys": [json.dumps(list(o.sample_keys)) for o in outcomes],
        },
        schema=SCHEMA,
    )
    if n:
        write_deltalake(uri, data, mode="append", storage_options=storage_options or None)
    return n


def last_version(uri: str, *, suite: str, storage_options: dict[str, str] | None) -> int | None:
    """The table version the last run of ``suite`` validated (None: never run)."""
    table = open_at(uri, storage_options)
    if table is None:
        return None
    done = table.to_pyarrow_dataset().to_table(columns=["version"], filter=pc.field("suite") == suite)
    return None if done.num_rows == 0 else int(pc.max(done["version"]).as_py())
