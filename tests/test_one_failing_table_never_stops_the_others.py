"""`lakeport silver` applies each table on its own: a table that cannot be applied is reported
with its error (table, JSON, exit code 1) after every other table was applied."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake
from helpers import cdc, lake_rows, land_cdc, run_cli, write_config


def test_failing_table_is_reported_and_the_others_applied(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    tables = [
        {"name": name, "topics": [f"shop.public.{name}"], "format": "debezium-json", "key": ["id"], "history": True}
        for name in ("alpha", "broken", "empty", "zulu")
    ]
    config = write_config(tmp_path / "lakeport.yaml", None, tables=tables, lake_uri=str(lake))
    land_cdc(str(lake / "bronze" / "alpha"), [cdc(0, "c", 10, 1, "a")])
    land_cdc(str(lake / "bronze" / "zulu"), [cdc(0, "c", 10, 7, "z")])
    # a bronze table without the configured key column
    write_deltalake(str(lake / "bronze" / "broken"), pa.table({"_op": ["c"], "_offset": [0], "other": [1]}),
                    configuration={"delta.enableChangeDataFeed": "true"})  # fmt: skip
    # every message went to dead letters: no _op column at all
    write_deltalake(str(lake / "bronze" / "empty"), pa.table({"_topic": ["t"], "_offset": [0]}),
                    configuration={"delta.enableChangeDataFeed": "true"})  # fmt: skip
    proc = run_cli(["silver", "--config", str(config), "--json"], check=False)
    assert proc.returncode == 1, proc.stderr
    results = {(r["table"], r["kind"]): r for r in json.loads(proc.stdout)}
    assert "key column(s) ['id'] are not in bronze" in results[("broken", "current")]["error"]
    assert "broken" in results[("broken", "current")]["error"]
    for name in ("alpha", "empty", "zulu"):
        assert results[(name, "current")]["error"] is None and results[(name, "history")]["error"] is None
    assert set(lake_rows(str(lake / "silver" / "alpha"))) == {1}
    assert set(lake_rows(str(lake / "silver" / "zulu"))) == {7}
    text = run_cli(["silver", "--config", str(config)], check=False)
    assert text.returncode == 1 and "broken" in text.stdout and "KeyMissing" in text.stdout
