"""Widening a table's column types in place (a source's ``ALTER … TYPE`` to a wider type).

delta-rs has no Delta type widening, so the table is rewritten in one commit with the wider
types (``mode="overwrite"``, ``schema_mode="overwrite"``): readers see the old table or the new
one, never half; every app transaction (Kafka offsets, silver watermarks) is kept, since an
overwrite does not remove them. A crash before the commit changes nothing; after it, the next
writer finds the wider table. An append that committed meanwhile (with the old type) is caught by
re-reading and rewriting again until no commit slipped between the read and the rewrite. The
commit is marked (``lakeport.operation: widen``); readers of the change feed (silver) skip
its rows (the only bronze versions that remove rows): the same rows again, not new changes.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import structlog
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lakeport.ingestion.arrow_types import widenings, widens
from lakeport.lake.changes import REWRITE_KEY
from lakeport.lake.errors import WideningRefused

log = structlog.get_logger("lakeport.evolve")


def widen(table: DeltaTable, types: Mapping[str, pa.DataType], *, rounds: int = 5) -> int:
    """Rewrite ``table`` with ``types`` (column → wider type); returns the version it is at then."""
    force = False  # a commit slipped in between a rewrite's read and its commit: rewrite once more
    for _ in range(rounds):
        table.update_incremental()
        read = table.version()
        schema = pa.schema(table.schema().to_arrow())  # type: ignore[arg-type]
        todo = {n: t for n, t in types.items() if n in schema.names and widens(t, schema.field(n).type)}
        if not todo and not force:
            return read
        wider = pa.schema([pa.field(f.name, todo.get(f.name, f.type), f.nullable) for f in schema])
        try:  # a safe cast: values the wider type cannot hold exactly refuse the widening
            data = table.to_pyarrow_table().cast(wider)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            changes = ", ".join(f"{n} {schema.field(n).type} -> {t}" for n, t in todo.items())
            raise WideningRefused(f"widening {changes} would change stored values: {exc}") from None
        partitions = table.metadata().partition_columns or None
        write_deltalake(table, data, mode="overwrite", schema_mode="overwrite", partition_by=partitions,
                        commit_properties=CommitProperties(custom_metadata={REWRITE_KEY: "widen"}))  # fmt: skip
        table.update_incremental()
        log.info("table_widened", uri=table.table_uri, columns={n: str(t) for n, t in todo.items()},
                 version=table.version(), rows=data.num_rows)  # fmt: skip
        force = table.version() != read + 1
        if not force:
            return table.version()
    return table.version()


def widen_to(table: DeltaTable, rows: pa.Schema) -> None:
    """Widen ``table``'s columns that ``rows`` brings in a wider type, if any."""
    wider = widenings(pa.schema(table.schema().to_arrow()), rows)  # type: ignore[arg-type]
    if wider:
        widen(table, wider)
