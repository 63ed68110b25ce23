"""Writer: append Arrow rows to a Delta table as one commit carrying app transactions.

Failures are classified: a schema the table cannot take is a ``SchemaRejected`` (the batch goes to
dead letters); anything else (S3 down, throttling, a lost commit race) is transient and the caller
retries the same commit — app transactions make the retry idempotent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
from deltalake import ColumnProperties, CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lakeport.ingestion.errors import IngestError, TerminalError, TransientError

_SCHEMA_HINTS = (
    "schema",
    "cast error",
    "invalid data type",
    "cannot cast",
    "type mismatch",
    "unsupported",
    "not supported",
    "invalid argument",
)


class SchemaRejected(IngestError):
    """The table cannot store these rows as they are (a type it cannot merge)."""


@dataclass(frozen=True)
class WriteOptions:
    partition_by: tuple[str, ...] = ()
    target_file_size: int | None = None
    compression: Literal["ZSTD", "SNAPPY", "LZ4_RAW", "UNCOMPRESSED"] = "ZSTD"
    # Parquet dictionary encoding: for every column ("all"), or only for these low-cardinality
    # columns. Off for the rest, encoding is ~40 % cheaper and zstd files come out smaller.
    dictionary: Literal["all"] | tuple[str, ...] = "all"
    # table properties set when the table is created (ignored afterwards)
    configuration: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WriteMetrics:
    version: int
    rows: int
    seconds: float


@dataclass
class TableHandles:
    """Open Delta tables by URI, each brought to its latest version on use. Not thread-safe: each
    thread keeps its own (the loop reads schemas and offsets, the writer thread commits)."""

    storage_options: dict[str, str]
    _handles: dict[str, DeltaTable] = field(default_factory=dict)
    _missing: dict[str, float] = field(default_factory=dict)  # uri -> when it was last not found

    def open(self, uri: str, *, refresh: bool = True) -> DeltaTable | None:
        """The table at ``uri`` (its latest version), or None if it does not exist yet."""
        table = self._handles.get(uri)
        try:
            if table is None:
                table = DeltaTable(uri, storage_options=self.storage_options or None)
                self._handles[uri] = table
            elif refresh:
                table.update_incremental()
        except TableNotFoundError:
            return None
        except Exception as exc:
            raise TransientError(f"could not read the Delta log at {uri}: {_short(exc)}") from None
        return table

    def schema(self, uri: str) -> pa.Schema | None:
        """The table's schema as last loaded (None: no table yet; asked again after a second)."""
        missing = self._missing.get(uri)
        if missing is not None and time.monotonic() - missing < 1.0:
            return None
        table = self.open(uri, refresh=False)
        if table is None:
            self._missing[uri] = time.monotonic()
            return None
        self._missing.pop(uri, None)
        return pa.schema(table.schema().to_arrow())


class DeltaWriter(TableHandles):
    """Appends through its own handles, so a commit's table is read where it is written."""

    def open_or_create(self, uri: str, schema: pa.Schema, *, options: WriteOptions = WriteOptions()) -> DeltaTable:
        """The table at ``uri``; a missing one is first created empty, so that exactly one creator
        wins (the log's first entry is only written if absent) and every writer, the creator too,
        then checks its offsets and appends through a handle like any later commit. A zombie that
        found no table can no longer append its batch on top of the new owner's."""
        table = self.open(uri)
        if table is not None:
            return table
        empty = _with_partition_columns(schema.empty_table(), options.partition_by)
        try:
            DeltaTable.create(uri, empty.schema, mode="ignore", partition_by=list(options.partition_by) or None,
                              configuration=dict(options.configuration) or None,
                              storage_options=self.storage_options or None)  # fmt: skip
        except Exception as exc:  # another creator won the race: its table is there now
            if self.open(uri) is None:
                raise TransientError(f"could not create the Delta table at {uri}: {_short(exc)}") from None
        table = self.open(uri)
        if table is None:
            raise TransientError(f"the Delta table at {uri} is not readable after its creation")
        return table

    def widen(self, uri: str, types: dict[str, pa.DataType], *, table: str) -> None:
        """Widen the table's columns to ``types`` (:func:`lakeport.lake.evolve.widen`)."""
        from lakeport.lake.errors import WideningRefused
        from lakeport.lake.evolve import widen

        handle = self.open(uri)
        if handle is None:
            return
        try:
            widen(handle, types)
        except WideningRefused as exc:  # the rows bringing the wider values conflict, nothing is retried
            raise SchemaRejected(str(exc), table=table) from None
        except Exception as exc:
            raise TransientError(f"widening {sorted(types)} failed: {_short(exc)}", table=table) from None

    def append(
        self,
        uri: str,
        rows: pa.Table,
        *,
        transactions: list[Transaction],
        options: WriteOptions = WriteOptions(),
        table_name: str | None = None,
    ) -> WriteMetrics:
        """Append ``rows`` (possibly none) and the transactions in a single Delta commit."""
        start = time.monotonic()
        rows = _with_partition_columns(rows, options.partition_by)
        target = self._handles.get(uri)
        if target is None:  # never through the URI: open_or_create first
            raise TerminalError(f"no open handle for {uri}: tables are created by open_or_create")
        try:
            write_deltalake(
                target,
                rows,
                mode="append",
                schema_mode="merge",
                partition_by=list(options.partition_by) or None,
                storage_options=None,
                target_file_size=options.target_file_size,
                configuration=dict(options.configuration) or None,
                writer_properties=_properties(options, rows.column_names),
                commit_properties=CommitProperties(app_transactions=transactions, max_commit_retries=20),
            )
        except Exception as exc:
            message = _short(exc)
            if any(hint in message.lower() for hint in _SCHEMA_HINTS) and "connect" not in message.lower():
                raise SchemaRejected(f"table rejected the batch: {message}", table=table_name) from None
            raise TransientError(f"Delta commit failed: {message}", table=table_name) from None
        table = self.open(uri)
        assert table is not None
        return WriteMetrics(version=table.version(), rows=rows.num_rows, seconds=time.monotonic() - start)


def _properties(options: WriteOptions, columns: list[str]) -> WriterProperties:
    if options.dictionary == "all":
        return WriterProperties(compression=options.compression)
    wanted = set(options.dictionary)
    return WriterProperties(
        compression=options.compression,
        default_column_properties=ColumnProperties(dictionary_enabled=False),
        column_properties={c: ColumnProperties(dictionary_enabled=True) for c in columns if c in wanted} or None,
    )


def _with_partition_columns(rows: pa.Table, partition_by: tuple[str, ...]) -> pa.Table:
    for name in partition_by:
        if name not in rows.column_names:
            rows = rows.append_column(name, pa.nulls(rows.num_rows, pa.string()))
    return rows


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]
