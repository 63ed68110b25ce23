"""silver.<name>_history: one version per change with valid_from/valid_to, exactly one current
version per live key, replays add nothing, deletes close."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from deltalake import DeltaTable
from test_silver_current_state import append, change

from lakeport.lake.history import apply_history


def versions(uri: str) -> list[tuple]:
    rows = DeltaTable(uri).to_pyarrow_table().to_pylist()
    return sorted((r["id"], r["name"], r["_op"], r["valid_from"], r["valid_to"], r["is_current"]) for r in rows)


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_versions_open_and_close_across_runs(tmp_path: Path) -> None:
    bronze, hist = str(tmp_path / "bronze"), str(tmp_path / "history")
    append(
        bronze, [change(0, "c", 1000, 1, "Lisbon"), change(1, "c", 1001, 2, "Porto"), change(2, "u", 2000, 1, "Berlin")]
    )
    first = apply_history("t", bronze, hist, key=["id"])
    assert first.versions_opened == 3
    assert versions(hist) == [
        (1, "Berlin", "u", ts(2000), None, True),
        (1, "Lisbon", "c", ts(1000), ts(2000), False),
        (2, "Porto", "c", ts(1001), None, True),
    ]
    # next run: an update, a delete, a replay of an old change, a duplicate of the new one
    append(
        bronze,
        [
            change(3, "u", 3000, 1, "Paris"),
            change(4, "d", 3001, 2, None),
            change(5, "u", 2000, 1, "Berlin"),
            change(6, "u", 3000, 1, "Paris"),
        ],
    )
    second = apply_history("t", bronze, hist, key=["id"])
    assert second.versions_opened == 1
    assert versions(hist) == [
        (1, "Berlin", "u", ts(2000), ts(3000), False),
        (1, "Lisbon", "c", ts(1000), ts(2000), False),
        (1, "Paris", "u", ts(3000), None, True),
        (2, "Porto", "c", ts(1001), ts(3001), False),
    ]
    # a re-insert after the delete opens a new current version
    append(bronze, [change(7, "c", 4000, 2, "Madrid")])
    apply_history("t", bronze, hist, key=["id"])
    current = [v for v in versions(hist) if v[5]]
    assert [(v[0], v[1]) for v in current] == [(1, "Paris"), (2, "Madrid")]
    assert apply_history("t", bronze, hist, key=["id"]).version is None  # nothing new


def test_as_of_query_answers_what_it_looked_like(tmp_path: Path) -> None:
    bronze, hist = str(tmp_path / "bronze"), str(tmp_path / "history")
    append(bronze, [change(0, "c", 1000, 1, "Lisbon"), change(1, "u", 5000, 1, "Berlin")])
    apply_history("t", bronze, hist, key=["id"])
    rows = DeltaTable(hist).to_pyarrow_table().to_pylist()
    at = ts(3000)
    [then] = [r for r in rows if r["valid_from"] <= at and (r["valid_to"] is None or at < r["valid_to"])]
    assert then["name"] == "Lisbon"
