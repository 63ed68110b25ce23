"""PostgreSQL keeps ``-0`` apart from ``0`` (and reconcile tells them apart): silver and history keep
the sign of a float and of a float array's elements, also when a replay brings the change twice
(DuckDB's ``DISTINCT ON``, which picked one of the two, turned ``-0.0`` in a list into ``0.0``)."""

from __future__ import annotations

import math
from pathlib import Path

from helpers import cdc, lake_rows, land_cdc, read_table

from lakeport.lake.history import apply_history
from lakeport.lake.silver import apply_changes


def test_negative_zero_keeps_its_sign_in_silver_and_history(tmp_path: Path) -> None:
    bronze, silver, history = str(tmp_path / "bronze"), str(tmp_path / "silver"), str(tmp_path / "history")
    row = {"x": -0.0, "xs": [-0.0, 1.5]}
    land_cdc(bronze, [cdc(0, "c", 10, 1, "a", **row), cdc(1, "c", 10, 1, "a", **row)])  # a replay: same position
    apply_changes("t", bronze, silver, key=["id"])
    apply_history("t", bronze, history, key=["id"])
    for landed in (lake_rows(silver)[1], read_table(history).to_pylist()[0]):
        assert [math.copysign(1, v) for v in (landed["x"], *landed["xs"])] == [-1, -1, 1], landed
