"""Under ``REPLICA IDENTITY DEFAULT`` a delete's ``before`` holds the key, and Debezium fills the
other non-optional columns with its defaults (0, "", 1970-01-01). Bronze keeps the event as it
arrived; silver removes the key and history closes the last real version: no filler ever becomes
a fact (a value, a version, a row)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from helpers import CDC_BRONZE, cdc, lake_rows, land_cdc, read_table

from lakeport.lake.history import apply_history
from lakeport.lake.silver import apply_changes

SCHEMA = pa.schema([*CDC_BRONZE, ("qty", pa.int64()), ("born", pa.date32())])


def test_a_deletes_filler_values_reach_no_silver_or_history_row(tmp_path: Path) -> None:
    import datetime as dt

    bronze, silver, history = (str(tmp_path / n) for n in ("bronze", "silver", "history"))
    real = {"qty": 7, "born": dt.date(1990, 5, 17)}
    land_cdc(bronze, [cdc(0, "c", 10, 1, "ann", **real), cdc(1, "c", 11, 2, "bob", **real)], SCHEMA)
    apply_changes("t", bronze, silver, key=["id"])
    apply_history("t", bronze, history, key=["id"])
    fillers = {"qty": 0, "born": dt.date(1970, 1, 1)}
    land_cdc(bronze, [cdc(2, "d", 20, 1, "", **fillers)], SCHEMA)  # as the connector sends it
    apply_changes("t", bronze, silver, key=["id"])
    apply_history("t", bronze, history, key=["id"])
    assert sorted(lake_rows(silver)) == [2]
    versions = [r for r in read_table(history).to_pylist() if r["id"] == 1]
    assert len(versions) == 1 and not versions[0]["is_current"]
    assert (versions[0]["name"], versions[0]["qty"], versions[0]["born"]) == ("ann", 7, dt.date(1990, 5, 17))
    stored = [r for r in read_table(bronze).to_pylist() if r["_op"] == "d"]
    assert stored[0]["qty"] == 0 and stored[0]["name"] == ""  # bronze keeps what arrived
