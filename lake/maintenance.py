"""Table maintenance: compact small files, vacuum unreferenced ones, checkpoint the Delta log.

Ingestion appends one small file per partition per flush, so a busy table collects thousands of
small files; readers pay for every one. ``compact`` bin-packs them into few large files (optionally
Z-ordered) in one commit that only *replaces* files, so it is safe while ingestion keeps appending:
appends never conflict with it, and a real conflict (e.g. a concurrent delete) is retried on a fresh
snapshot. ``vacuum`` deletes files the log no longer references once they are older than the
retention, never below a configured floor. ``checkpoint`` writes a Parquet checkpoint so readers
replay fewer JSON commits, then drops log entries older than the table's log retention.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError
from deltalake.fs import DeltaStorageHandler

from lakeport.lake.tables import open_table

DEFAULT_MIN_RETENTION_HOURS = 168.0  # one week: readers of an older snapshot keep their files
_ZORDER_KEY = "lakeport.zorder"  # commit metadata: the columns a Z-order commit clustered by


@dataclass(frozen=True)
class CompactResult:
    files_before: int  # files in the snapshot that was compacted
    files_after: int  # files in the table at ``version`` (includes appends that landed meanwhile)
    bytes_before: int
    bytes_after: int
    files_added: int
    files_removed: int
    version: int  # the table version after compaction (unchanged when there was nothing to do)
    seconds: float
    attempts: int


@dataclass(frozen=True)
class VacuumResult:
    files: tuple[str, ...]  # removed, or that would be removed with ``dry_run``
    dry_run: bool
    retention_hours: float
    seconds: float


@dataclass(frozen=True)
class CheckpointResult:
    version: int  # the version checkpointed
    log_files_before: int
    log_files_after: int
    seconds: float


def _open(uri: str, storage_options: dict[str, str] | None) -> DeltaTable:
    return DeltaTable(uri, storage_options=storage_options or None)


def _files(table: DeltaTable) -> tuple[int, int]:
    actions = pa.table(table.get_add_actions())  # an arro3 table: read it through the C stream
    if actions.num_rows == 0:
        return 0, 0
    return actions.num_rows, int(pc.sum(actions["size_bytes"]).as_py() or 0)


def table_files(uri: str, *, storage_options: dict[str, str] | None = None) -> tuple[int, int]:
    """(data files, bytes) referenced by the table's latest version."""
    return _files(_open(uri, storage_options))


def _already_zordered(table: DeltaTable, columns: Sequence[str]) -> bool:
    """The latest commit is our own Z-order by ``columns``: nothing landed since, nothing to do
    (delta-rs rewrites every file on each Z-order, so without this it would never be idempotent)."""
    for commit in table.history(20):  # newest first; vacuum commits change no data
        if not str(commit.get("operation", "")).startswith("VACUUM"):
            return commit.get(_ZORDER_KEY) == ",".join(columns)
    return False


def _backoff(attempt: int) -> float:
    return min(5.0, 0.2 * 2 ** (attempt - 1)) * (0.5 + random.random())


def compact(
    uri: str,
    *,
    storage_options: dict[str, str] | None = None,
    target_size: int | None = None,
    z_order: Sequence[str] = (),
    max_attempts: int = 5,
) -> CompactResult:
    """Rewrite the table's small files into files of about ``target_size`` bytes (default: the
    table's ``delta.targetFileSize`` or 100 MB), clustered by ``z_order`` columns if given.

    Idempotent: with nothing to compact it commits nothing. Concurrent appends are kept (the commit
    only removes the files it read); on a commit conflict the table is reloaded and compaction
    retried with backoff, up to ``max_attempts`` times, then the conflict is raised."""
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    if target_size is not None and target_size <= 0:
        raise ValueError(f"target_size must be positive, got {target_size}")
    columns = list(z_order)
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        table = _open(uri, storage_options)
        files_before, bytes_before = _files(table)
        if columns and _already_zordered(table, columns):
            metrics: dict[str, Any] = {}
        else:
            try:
                if columns:
                    commit = CommitProperties(custom_metadata={_ZORDER_KEY: ",".join(columns)})
                    metrics = table.optimize.z_order(columns, target_size=target_size, commit_properties=commit)
                else:
                    metrics = table.optimize.compact(target_size=target_size)
            except CommitFailedError:
                if attempt >= max_attempts:
                    raise
                time.sleep(_backoff(attempt))
                continue
        files_after, bytes_after = _files(table)  # the table object now holds the committed version
        return CompactResult(
            files_before=files_before,
            files_after=files_after,
            bytes_before=bytes_before,
            bytes_after=bytes_after,
            files_added=int(metrics.get("numFilesAdded", 0)),
            files_removed=int(metrics.get("numFilesRemoved", 0)),
            version=table.version(),
            seconds=time.monotonic() - started,
            attempts=attempt,
        )


def unapplied_floor(
    bronze_uri: str, downstream: Sequence[tuple[str, str]], *, storage_options: dict[str, str] | None = None
) -> int | None:
    """The oldest bronze version a downstream table (``(uri, app id)``: silver, history) has not
    applied yet; None when nothing reads this table. A missing downstream table needs version 0."""
    floors = []
    for uri, app in downstream:
        table = open_table(uri, storage_options)
        done = table.transaction_version(app) if table is not None else None
        floors.append(0 if done is None else done + 1)
    return min(floors) if floors else None


def _hours_since_version(table: DeltaTable, version: int) -> float:
    """Hours since ``version`` was committed (0 when it is not committed yet)."""
    if version > table.version():
        return 0.0
    for commit in table.history(table.version() - version + 1):
        if commit.get("version") == version and commit.get("timestamp"):
            return max(0.0, (time.time() * 1000 - float(commit["timestamp"])) / 3_600_000)
    return float("inf")  # its commit entry is gone: keep everything


def vacuum(
    uri: str,
    *,
    storage_options: dict[str, str] | None = None,
    retention_hours: float,
    min_retention_hours: float = DEFAULT_MIN_RETENTION_HOURS,
    dry_run: bool = False,
    keep_from_version: int | None = None,
) -> VacuumResult:
    """Delete data files the log no longer references (removed by compaction, MERGE, delete ...)
    whose removal is older than ``retention_hours``; with ``dry_run`` only list them.

    ``retention_hours`` below ``min_retention_hours`` is refused: a reader or a time-travel query
    still on an older snapshot would lose its files. Files never committed (an in-flight write) are
    not touched. Fractional hours are rounded up (delta-rs takes whole hours).

    ``keep_from_version`` (see :func:`unapplied_floor`) raises the retention so that every file a
    version from there on added stays: the change feed silver and history still need."""
    if retention_hours < 0 or math.isnan(retention_hours):
        raise ValueError(f"retention_hours must be >= 0, got {retention_hours}")
    if retention_hours < min_retention_hours:
        raise ValueError(
            f"retention_hours={retention_hours} is below the minimum retention "
            f"min_retention_hours={min_retention_hours}; older snapshots would lose their files"
        )
    started = time.monotonic()
    table = _open(uri, storage_options)
    if keep_from_version is not None:
        needed = _hours_since_version(table, keep_from_version)
        if needed == float("inf"):
            return VacuumResult(files=(), dry_run=dry_run, retention_hours=needed, seconds=time.monotonic() - started)
        retention_hours = max(retention_hours, needed + 1.0)
    # our guard above is the policy; delta-rs' own check would compare with
    # delta.deletedFileRetentionDuration (7 days by default) instead of the configured floor
    removed = table.vacuum(
        retention_hours=math.ceil(retention_hours), dry_run=dry_run, enforce_retention_duration=False
    )
    return VacuumResult(
        files=tuple(sorted(removed)),
        dry_run=dry_run,
        retention_hours=retention_hours,
        seconds=time.monotonic() - started,
    )


def _log_files(uri: str, storage_options: dict[str, str] | None) -> int:
    fs = pafs.PyFileSystem(DeltaStorageHandler(uri, storage_options or None))
    return sum(1 for info in fs.get_file_info(pafs.FileSelector("_delta_log")) if info.type == pafs.FileType.File)


def checkpoint(
    uri: str,
    *,
    storage_options: dict[str, str] | None = None,
    cleanup: bool = True,
    keep_from_version: int | None = None,
    log_retention_hours: float = 30 * 24,
) -> CheckpointResult:
    """Write a checkpoint of the latest version; with ``cleanup``, then delete log entries older
    than the table's ``delta.logRetentionDuration`` (30 days by default) — unless that would drop
    the commit of ``keep_from_version`` (a version downstream tables have not applied yet)."""
    started = time.monotonic()
    table = _open(uri, storage_options)
    before = _log_files(uri, storage_options)
    table.create_checkpoint()
    if keep_from_version is not None and _hours_since_version(table, keep_from_version) >= log_retention_hours:
        cleanup = False
    if cleanup:
        table.cleanup_metadata()
    return CheckpointResult(
        version=table.version(),
        log_files_before=before,
        log_files_after=_log_files(uri, storage_options),
        seconds=time.monotonic() - started,
    )
