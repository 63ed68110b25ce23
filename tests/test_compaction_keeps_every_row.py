"""Compaction rewrites hundreds of small files into a handful while ingestion keeps appending, and
loses no row; vacuum deletes exactly the unreferenced files once they are past the retention, never
below the floor; checkpoint writes a Parquet checkpoint of the log."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakeport.dev.seaweed import s3_client
from lakeport.dev.stack import StackState
from lakeport.lake.maintenance import checkpoint, compact, table_files, vacuum

SMALL_FILES = 200
ROWS_PER_FILE = 500
STATUSES = ("Approved", "Processing", "Shipped", "InTransit", "Received", "Cancelled")


def batch(first_id: int, rows: int = ROWS_PER_FILE) -> pa.Table:
    ids = list(range(first_id, first_id + rows))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "customer_id": pa.array([i * 7919 % 10_007 for i in ids], pa.int64()),
            "status": pa.array([STATUSES[i % len(STATUSES)] for i in ids], pa.string()),
            "amount": pa.array([(i * 31 % 100_000) / 100 for i in ids], pa.float64()),
        }
    )


def rows_of(table: pa.Table) -> list[tuple[Any, ...]]:
    """Every row's content, sorted: equal lists mean the same rows, each exactly once."""
    cols = [table[c].to_pylist() for c in ("id", "customer_id", "status", "amount")]
    return sorted(zip(*cols, strict=True))


class Ingest(threading.Thread):
    """A concurrent ingest: keeps appending small batches until stopped."""

    def __init__(self, uri: str, options: dict[str, str], first_id: int) -> None:
        super().__init__(daemon=True)
        self.uri, self.options, self.next_id = uri, options, first_id
        self.appended: list[pa.Table] = []
        self.commit_times: list[float] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                data = batch(self.next_id, 200)
                write_deltalake(self.uri, data, mode="append", storage_options=self.options)
                self.appended.append(data)
                self.commit_times.append(time.monotonic())
                self.next_id += data.num_rows
                time.sleep(0.02)
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def s3_objects(state: StackState, uri: str) -> set[str]:
    """Object keys under the table, relative to it."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    client = s3_client(state.s3_endpoint, state.access_key, state.secret_key)
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        keys.update(obj["Key"][len(prefix) + 1 :] for obj in page.get("Contents", []))
    return keys


def referenced(uri: str, options: dict[str, str] | None) -> set[str]:
    return set(pa.table(DeltaTable(uri, storage_options=options).get_add_actions())["path"].to_pylist())


@pytest.mark.stack
def test_compaction_keeps_every_row_while_ingest_appends(local_stack: StackState, s3_lake: str) -> None:
    uri, options = f"{s3_lake}/bronze/orders", local_stack.storage_options()
    written: list[pa.Table] = []
    write_deltalake(uri, batch(0), mode="append", storage_options=options)
    written.append(batch(0))
    table = DeltaTable(uri, storage_options=options)
    for i in range(1, SMALL_FILES):  # one small file per append, like many short flushes
        data = batch(i * ROWS_PER_FILE)
        write_deltalake(table, data, mode="append")
        written.append(data)
    assert table_files(uri, storage_options=options)[0] == SMALL_FILES

    ingest = Ingest(uri, options, first_id=SMALL_FILES * ROWS_PER_FILE)
    ingest.start()
    try:
        assert ingest.stop.wait(0.3) is False and ingest.appended, "the concurrent ingest does not append"
        started = time.monotonic()
        first = compact(uri, storage_options=options)
        finished = time.monotonic()
        time.sleep(0.3)  # a few more appends after compaction committed
    finally:
        ingest.stop.set()
        ingest.join(30)
    assert ingest.error is None, f"concurrent ingest failed: {ingest.error!r}"
    during = sum(1 for t in ingest.commit_times if started <= t <= finished)
    print(f"compaction: {first}; concurrent appends during it: {during}, in all: {len(ingest.appended)}")
    assert first.files_before >= SMALL_FILES
    assert first.files_removed == first.files_before and first.files_added <= 10
    assert first.files_after <= 10 + during, "compaction left too many files"
    assert first.bytes_after > 0 and first.attempts >= 1

    everything = written + ingest.appended
    expected = rows_of(pa.concat_tables(everything))
    lake = DeltaTable(uri, storage_options=options)
    assert lake.count() == len(expected) == sum(t.num_rows for t in everything)
    assert rows_of(lake.to_pyarrow_table()) == expected, "compaction lost, duplicated or changed rows"

    second = compact(uri, storage_options=options)  # folds in the files appended meanwhile
    third = compact(uri, storage_options=options)
    assert second.files_after <= 10
    assert (third.files_added, third.files_removed, third.version) == (0, 0, second.version), "not idempotent"
    assert (third.files_before, third.bytes_before) == (third.files_after, third.bytes_after)
    assert DeltaTable(uri, storage_options=options).version() == second.version

    # vacuum: exactly the files the log no longer references, once older than the retention
    live = referenced(uri, options)
    data_objects = {k for k in s3_objects(local_stack, uri) if not k.startswith("_delta_log/")}
    unreferenced = data_objects - live
    assert len(unreferenced) == first.files_removed + second.files_removed
    with pytest.raises(ValueError, match="retention_hours"):
        vacuum(uri, storage_options=options, retention_hours=1)  # below the default 168 h floor
    planned = vacuum(uri, storage_options=options, retention_hours=0, min_retention_hours=0, dry_run=True)
    assert planned.dry_run and set(planned.files) == unreferenced
    assert {k for k in s3_objects(local_stack, uri) if not k.startswith("_delta_log/")} == data_objects
    young = vacuum(uri, storage_options=options, retention_hours=1, min_retention_hours=0)
    assert young.files == (), "files removed minutes ago are younger than the 1 h retention"
    assert {k for k in s3_objects(local_stack, uri) if not k.startswith("_delta_log/")} == data_objects
    done = vacuum(uri, storage_options=options, retention_hours=0, min_retention_hours=0)
    assert not done.dry_run and set(done.files) == unreferenced
    assert {k for k in s3_objects(local_stack, uri) if not k.startswith("_delta_log/")} == live
    assert rows_of(DeltaTable(uri, storage_options=options).to_pyarrow_table()) == expected

    # checkpoint: a Parquet checkpoint of the latest version
    cp = checkpoint(uri, storage_options=options)
    assert cp.version == DeltaTable(uri, storage_options=options).version()
    assert f"_delta_log/{cp.version:020d}.checkpoint.parquet" in s3_objects(local_stack, uri)
    assert cp.log_files_after >= cp.log_files_before + 1  # nothing is past the 30-day log retention
    assert DeltaTable(uri, storage_options=options).count() == len(expected)


def test_z_order_is_idempotent_and_guards_hold(tmp_path: Path) -> None:
    uri = str(tmp_path / "orders")
    for i in range(20):
        write_deltalake(uri, batch(i * 100, 100), mode="append")
    first = compact(uri, z_order=["customer_id"])
    assert (first.files_before, first.files_removed, first.files_after) == (20, 20, 1)
    again = compact(uri, z_order=["customer_id"])
    assert (again.files_added, again.version) == (0, first.version)
    vacuum(uri, retention_hours=0, min_retention_hours=0)  # vacuum commits change no data
    assert compact(uri, z_order=["customer_id"]).files_added == 0
    write_deltalake(uri, batch(10_000, 100), mode="append")
    assert compact(uri, z_order=["customer_id"]).files_removed == 2
    assert DeltaTable(uri).count() == 2_100
    with pytest.raises(ValueError, match="retention_hours"):
        vacuum(uri, retention_hours=-1, min_retention_hours=0)
    with pytest.raises(ValueError, match="max_attempts"):
        compact(uri, max_attempts=0)


def test_a_real_commit_conflict_is_retried_on_a_fresh_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delete commits between compaction's snapshot and its commit: delta-rs refuses the commit
    (the files it rewrote are gone); compact reloads and retries, and the delete holds."""
    import deltalake.table

    uri = str(tmp_path / "orders")
    for i in range(10):
        write_deltalake(uri, batch(i * 100, 100), mode="append")
    real = deltalake.table.TableOptimizer.compact
    calls: list[int] = []

    def racing(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            DeltaTable(uri).delete("id < 50")  # another writer wins the race
        return real(self, *args, **kwargs)

    monkeypatch.setattr(deltalake.table.TableOptimizer, "compact", racing)
    monkeypatch.setattr("lakeport.lake.maintenance._backoff", lambda attempt: 0.0)
    result = compact(uri)
    assert result.attempts == 2 and result.files_after == 1
    assert sorted(DeltaTable(uri).to_pyarrow_table()["id"].to_pylist()) == list(range(50, 1_000))
