"""Two silver runs at once, runs that change nothing, vacuumed bronze, forgotten deletes."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable
from helpers import cdc, lake_rows, land_cdc, read_table

from lakeport.lake import maintenance
from lakeport.lake.errors import ChangeFeedGone
from lakeport.lake.history import apply_history
from lakeport.lake.silver import app_id, apply_changes


def test_two_first_runs_at_once_write_each_row_once(tmp_path: Path) -> None:
    bronze, silver, key_map = str(tmp_path / "bronze"), str(tmp_path / "silver"), str(tmp_path / "key_map")
    land_cdc(bronze, [cdc(i, "r", 10 + i, i, f"n{i}", db=f"db{i % 2}") for i in range(200)])
    errors: list[BaseException] = []

    def run() -> None:
        try:
            apply_changes("t", bronze, silver, key=["id"], source_key=["source_db"], key_map_uri=key_map)
            apply_history("t", bronze, str(tmp_path / "history"), key=["id"], source_key=["source_db"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    rows = read_table(silver).to_pylist()
    assert len(rows) == 200 and len({(r["source_db"], r["id"]) for r in rows}) == 200
    ids = [r["lake_id"] for r in read_table(key_map).to_pylist()]
    assert sorted(ids) == list(range(1, 201))  # unique, dense, never two keys on one id
    assert len(read_table(str(tmp_path / "history"))) == 200


def test_underscore_source_columns_survive(tmp_path: Path) -> None:
    bronze, silver, history = str(tmp_path / "bronze"), str(tmp_path / "silver"), str(tmp_path / "history")
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a", _version=3, _internal_note="x")])
    apply_changes("t", bronze, silver, key=["id"])
    apply_history("t", bronze, history, key=["id"])
    assert {"_version": 3, "_internal_note": "x"}.items() <= lake_rows(silver)[1].items()
    assert {"_version": 3, "_internal_note": "x"}.items() <= read_table(history).to_pylist()[0].items()


def test_run_that_changes_nothing_still_records_progress(tmp_path: Path) -> None:
    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a")])
    apply_changes("t", bronze, silver, key=["id"])
    land_cdc(bronze, [cdc(1, "c", 10, 1, "a")])  # only a replay: nothing to change
    result = apply_changes("t", bronze, silver, key=["id"])
    assert result.stale == 1 and result.to_version == 1
    assert DeltaTable(silver).transaction_version(app_id("t")) == 1  # the next run starts after it


def test_bronze_with_no_change_rows_is_a_no_op(tmp_path: Path) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    # every message of the table went to dead letters: bronze has only Kafka columns, no _op
    write_deltalake(bronze, pa.table({"_topic": ["t"], "_offset": [0]}).slice(0, 0),
                    configuration={"delta.enableChangeDataFeed": "true"})  # fmt: skip
    result = apply_changes("t", bronze, silver, key=["id"])
    assert result.changes == 0 and DeltaTable(silver).transaction_version(app_id("t")) == 0


def test_vacuum_keeps_the_change_feed_silver_has_not_applied(tmp_path: Path) -> None:
    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a")])
    apply_changes("t", bronze, silver, key=["id"])
    land_cdc(bronze, [cdc(1, "c", 11, 2, "b")])
    land_cdc(bronze, [cdc(2, "c", 12, 3, "c")])
    DeltaTable(bronze).optimize.compact()  # the files of versions 1 and 2 are now removed ...
    floor = maintenance.unapplied_floor(bronze, [(silver, app_id("t"))])
    assert floor == 1
    maintenance.vacuum(bronze, retention_hours=0, min_retention_hours=0, keep_from_version=floor)
    apply_changes("t", bronze, silver, key=["id"])  # ... but kept until silver applied them
    assert sorted(lake_rows(silver)) == [1, 2, 3]


def test_vacuumed_change_feed_is_a_clear_error(tmp_path: Path) -> None:
    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a")])
    apply_changes("t", bronze, silver, key=["id"])
    land_cdc(bronze, [cdc(1, "c", 11, 2, "b")])
    DeltaTable(bronze).optimize.compact()
    DeltaTable(bronze).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)  # by hand
    with pytest.raises(ChangeFeedGone, match=r"table t, bronze versions 1\.\.") as err:
        apply_changes("t", bronze, silver, key=["id"])
    assert "lakeport silver" in str(err.value)
    assert sorted(lake_rows(silver)) == [1]  # nothing skipped silently


def test_deletes_are_forgotten_after_the_retention(tmp_path: Path) -> None:
    bronze, silver, deleted = str(tmp_path / "bronze"), str(tmp_path / "silver"), str(tmp_path / "deleted")
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a"), cdc(1, "d", 20, 1)])
    apply_changes("t", bronze, silver, key=["id"], deleted_keys_uri=deleted)
    assert [r["_position"] for r in read_table(deleted).to_pylist()] == [20]
    result = apply_changes("t", bronze, silver, key=["id"], deleted_keys_uri=deleted, delete_retention=timedelta(0))
    assert result.deletes_forgotten == 1 and len(read_table(deleted)) == 0


def test_overlapping_runs_never_commit_a_decision_made_on_an_older_silver(tmp_path: Path) -> None:
    """Run B started when bronze held v1, run A when it held v2 (v2 is a truncate that landed late).
    A's chunk removes nothing A can see, so its MERGE writes no commit; B commits K2 meanwhile. A
    must not then record its watermark on top of B's commit: it decides again and removes K2."""
    from unittest import mock

    import lakeport.lake.silver as silver_mod
    from lakeport.lake.tables import open_table

    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    deleted = str(tmp_path / "deleted")
    land_cdc(bronze, [cdc(0, "c", 121, 3, "k3", partition=1)])
    apply_changes("t", bronze, silver, key=["id"], deleted_keys_uri=deleted)
    land_cdc(bronze, [cdc(0, "c", 110, 2, "k2")])  # v1: before the truncate
    land_cdc(bronze, [cdc(0, "t", 120, None, partition=2)])  # v2: the truncate, late from its partition
    real_merge, raced = silver_mod._merge, []

    def merge_after_b_ran(*args, **kwargs):
        if not raced:
            raced.append(True)

            def bronze_at_v1(uri: str, opts=None):
                return DeltaTable(uri, version=1) if uri == bronze else open_table(uri, opts)

            with mock.patch.object(silver_mod, "open_table", bronze_at_v1):
                silver_mod._apply_chunk("t", bronze, silver, deleted, ["id"], [], None, None, 1000)  # run B
        return real_merge(*args, **kwargs)

    with mock.patch.object(silver_mod, "_merge", merge_after_b_ran):
        apply_changes("t", bronze, silver, key=["id"], deleted_keys_uri=deleted)  # run A
    assert raced and sorted(lake_rows(silver)) == [3]
    assert DeltaTable(silver).transaction_version(app_id("t")) == 2
