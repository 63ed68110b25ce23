"""Silver holds exactly the current rows: any interleaving and duplication of a key's changes,
spread over bronze versions, yields the last state; each run reads only new bronze rows."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakeport.lake.changes import UNAVAILABLE
from lakeport.lake.silver import apply_changes

SCHEMA = pa.schema(
    [
        ("_topic", pa.string()),
        ("_partition", pa.int32()),
        ("_offset", pa.int64()),
        ("_op", pa.string()),
        ("_source_lsn", pa.int64()),
        ("_source_ts_ms", pa.int64()),
        ("id", pa.int64()),
        ("name", pa.string()),
    ]
)


def change(offset: int, op: str | None, lsn: int, key: int, name: str | None) -> dict:
    return {
        "_topic": "t",
        "_partition": 0,
        "_offset": offset,
        "_op": op,
        "_source_lsn": lsn,
        "_source_ts_ms": lsn,
        "id": key,
        "name": name,
    }


def append(uri: str, rows: list[dict]) -> None:
    write_deltalake(
        uri,
        pa.Table.from_pylist(rows, schema=SCHEMA),
        mode="append",
        configuration={"delta.enableChangeDataFeed": "true"},
    )


def silver_state(uri: str) -> dict[int, str | None]:
    return {r["id"]: r["name"] for r in DeltaTable(uri).to_pyarrow_table().to_pylist()}


# a key's history: ops with increasing LSN; the model's answer is the last op's state
histories = st.dictionaries(
    st.integers(1, 6),
    st.lists(st.tuples(st.sampled_from(["c", "u", "d", "r"]), st.text("abc", max_size=3)), min_size=1, max_size=5),
    min_size=1,
    max_size=5,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories, st.randoms(use_true_random=False), st.integers(1, 4))
def test_any_interleaving_and_duplication_yields_the_last_state(tmp_path: Path, history: dict, rnd, runs: int) -> None:
    events, lsn = [], 100
    expected: dict[int, str | None] = {}
    for key, ops in history.items():
        for op, name in ops:
            lsn += 10
            events.append((op, lsn, key, None if op == "d" else name))
            if op == "d":
                expected.pop(key, None)
            else:
                expected[key] = name
    stream = events + rnd.sample(events, k=len(events) // 2)  # duplicates (a publisher replay)
    rnd.shuffle(stream)  # any order within a run: position decides, not arrival
    base = tmp_path / uuid.uuid4().hex
    bronze, silver = str(base / "bronze"), str(base / "silver")
    offset = itertools.count()
    cut = sorted(rnd.sample(range(1, len(stream)), k=min(runs - 1, len(stream) - 1))) if len(stream) > 1 else []
    chunks = [stream[i:j] for i, j in zip([0, *cut], [*cut, len(stream)], strict=True)]
    for chunk in chunks:
        append(bronze, [change(next(offset), op, lsn_, key, name) for op, lsn_, key, name in chunk])
    result = apply_changes("t", bronze, silver, key=["id"])  # one run over everything
    assert silver_state(silver) == expected
    assert result.changes == len(stream)


def test_incremental_runs_read_only_new_versions(tmp_path: Path) -> None:
    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    append(bronze, [change(0, "r", 10, 1, "a"), change(1, "r", 11, 2, "b"), change(2, "c", 12, 3, "c")])
    first = apply_changes("t", bronze, silver, key=["id"])
    assert (first.from_version, first.to_version, first.changes) == (0, 0, 3)
    assert silver_state(silver) == {1: "a", 2: "b", 3: "c"}
    again = apply_changes("t", bronze, silver, key=["id"])
    assert again.version is None and again.changes == 0  # nothing new, no commit
    append(bronze, [change(3, "u", 20, 1, "A"), change(4, "d", 21, 2, None), change(5, "u", 5, 3, "stale")])
    append(bronze, [change(6, None, 0, 2, None)])  # a tombstone after the delete
    second = apply_changes("t", bronze, silver, key=["id"])
    assert (second.from_version, second.to_version, second.changes) == (1, 2, 4)
    assert silver_state(silver) == {1: "A", 3: "c"}  # the stale (older LSN) update was ignored
    assert DeltaTable(silver).transaction_version("lakeport-silver:bronze.t") == 2


def test_truncate_clears_and_toast_placeholder_keeps_the_value(tmp_path: Path) -> None:
    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    append(bronze, [change(0, "c", 10, 1, "long text"), change(1, "c", 11, 2, "x")])
    apply_changes("t", bronze, silver, key=["id"])
    append(bronze, [change(2, "u", 12, 1, UNAVAILABLE)])
    apply_changes("t", bronze, silver, key=["id"])
    assert silver_state(silver) == {1: "long text", 2: "x"}
    append(bronze, [change(3, "t", 13, None, None), change(4, "c", 14, 5, "after")])
    result = apply_changes("t", bronze, silver, key=["id"])
    assert result.truncated and silver_state(silver) == {5: "after"}


def test_latest_change_orders_by_lsn_then_offset(tmp_path: Path) -> None:
    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    append(
        bronze,
        [
            change(5, "u", 10, 1, "late-offset-old-lsn"),
            change(1, "u", 20, 1, "newest"),
            change(7, "u", 20, 1, "dup-newest"),
        ],
    )
    apply_changes("t", bronze, silver, key=["id"])
    assert silver_state(silver) == {1: "dup-newest"}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories, st.randoms(use_true_random=False), st.integers(2, 5))
def test_runs_between_in_order_replays_converge(tmp_path: Path, history: dict, rnd, runs: int) -> None:
    """Events arrive in source order with replays (a publisher restart resends from its last
    confirmed position); silver is applied after every bronze commit and ends at the last state."""
    events, lsn, expected = [], 100, {}
    for key, ops in history.items():
        for op, name in ops:
            lsn += 10
            events.append((op, lsn, key, None if op == "d" else name))
            expected.pop(key, None) if op == "d" else expected.__setitem__(key, name)
    events.sort(key=lambda e: e[1])
    restart = rnd.randrange(len(events))
    stream = events[: restart + 1] + events[rnd.randrange(restart + 1) :]  # replay a suffix
    base = tmp_path / uuid.uuid4().hex
    bronze, silver = str(base / "bronze"), str(base / "silver")
    step = max(1, len(stream) // runs)
    for i in range(0, len(stream), step):
        append(
            bronze, [change(i + j, op, lsn_, key, name) for j, (op, lsn_, key, name) in enumerate(stream[i : i + step])]
        )
        apply_changes("t", bronze, silver, key=["id"])
    assert silver_state(silver) == expected
