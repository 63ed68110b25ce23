"""Source position decides: changes landing late or twice never undo what newer changes did."""

from __future__ import annotations

from pathlib import Path

from deltalake import DeltaTable
from helpers import cdc, lake_rows, land_cdc, read_table

from lakeport.lake.history import apply_history
from lakeport.lake.silver import apply_changes


def lake(tmp_path: Path) -> tuple[str, str, str]:
    return str(tmp_path / "bronze"), str(tmp_path / "silver"), str(tmp_path / "history")


def apply(bronze: str, silver: str, history: str):
    result = apply_changes("t", bronze, silver, key=["id"])
    apply_history("t", bronze, history, key=["id"])
    return result


def test_late_truncate_keeps_newer_rows(tmp_path: Path) -> None:
    bronze, silver, history = lake(tmp_path)
    land_cdc(bronze, [cdc(0, "c", 10, 1, "old")])
    apply(bronze, silver, history)
    # the snapshot after the truncate lands first (partition 1); the truncate (LSN 50) on partition 0 later
    land_cdc(bronze, [cdc(0, "r", 60, 2, "snap", partition=1), cdc(1, "r", 60, 3, "snap", partition=1)])
    apply(bronze, silver, history)
    land_cdc(bronze, [cdc(1, "t", 50, None)])
    result = apply(bronze, silver, history)
    assert sorted(lake_rows(silver)) == [2, 3]  # only the row older than the truncate is gone
    assert result.truncated
    current = {r["id"] for r in read_table(history).to_pylist() if r["is_current"]}
    assert current == {2, 3}
    [old] = [r for r in read_table(history).to_pylist() if r["id"] == 1]
    assert old["valid_to"].timestamp() * 1000 == 50  # closed at the truncate's time, not later


def test_replayed_update_does_not_resurrect_deleted_key(tmp_path: Path) -> None:
    bronze, silver, history = lake(tmp_path)
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a"), cdc(1, "u", 20, 1, "b"), cdc(2, "d", 30, 1)])
    apply(bronze, silver, history)
    land_cdc(bronze, [cdc(3, "u", 20, 1, "b")])  # a connector restart replays the update
    result = apply(bronze, silver, history)
    assert lake_rows(silver) == {}
    assert result.stale == 1
    assert not [r for r in read_table(history).to_pylist() if r["is_current"]]


def test_replayed_change_adds_no_history_version(tmp_path: Path) -> None:
    bronze, silver, history = lake(tmp_path)
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a"), cdc(1, "u", 20, 1, "b")])
    apply(bronze, silver, history)
    land_cdc(bronze, [cdc(2, "c", 10, 1, "a")])  # the replay lands in one run ...
    apply(bronze, silver, history)
    land_cdc(bronze, [cdc(3, "u", 20, 1, "b"), cdc(4, "u", 30, 1, "c")])  # ... and in the next, with news
    apply(bronze, silver, history)
    versions = sorted((r["_source_lsn"], r["name"], r["is_current"]) for r in read_table(history).to_pylist())
    assert versions == [(10, "a", False), (20, "b", False), (30, "c", True)]


def test_late_older_change_is_placed_in_the_version_chain(tmp_path: Path) -> None:
    bronze, silver, history = lake(tmp_path)
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a"), cdc(2, "u", 30, 1, "c")])
    apply(bronze, silver, history)
    land_cdc(bronze, [cdc(1, "u", 20, 1, "b")])  # reordered by a retrying producer
    result = apply(bronze, silver, history)
    assert lake_rows(silver)[1]["name"] == "c" and result.stale == 1
    chain = sorted((r["_source_lsn"], r["valid_to"], r["is_current"]) for r in read_table(history).to_pylist())
    assert [(lsn, None if to is None else int(to.timestamp() * 1000), cur) for lsn, to, cur in chain] == [
        (10, 20, False),
        (20, 30, False),
        (30, None, True),
    ]


def test_truncate_and_the_changes_after_it_land_in_one_commit(tmp_path: Path) -> None:
    bronze, silver, history = lake(tmp_path)
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a"), cdc(1, "c", 11, 2, "b")])
    apply(bronze, silver, history)
    before = DeltaTable(silver).version()
    land_cdc(bronze, [cdc(2, "t", 20, None), cdc(3, "r", 21, 1, "again")])
    apply(bronze, silver, history)
    table = DeltaTable(silver)
    assert table.version() == before + 1  # readers never see the empty table in between
    assert {r["id"]: r["name"] for r in table.to_pyarrow_table().to_pylist()} == {1: "again"}


def test_old_debezium_without_ts_ms_gets_valid_from_from_the_record_time(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    bronze, silver, history = lake(tmp_path)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a", ts_ms=None, timestamp=at)])  # Debezium 0.x: ts_usec only
    apply(bronze, silver, history)
    [version] = read_table(history).to_pylist()
    assert version["valid_from"] == at
