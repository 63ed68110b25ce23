"""Silver and history equal a reference model for every delivery at-least-once Kafka can make.

A source history (tests/cdc_model.py) is delivered by an adversary — partitions interleaved,
null-key truncates on any partition, replays of earlier ranges — cut into arbitrary bronze commits,
and applied by silver and history runs at arbitrary points, with chunks of a few rows, crashes
injected at every step, two runs at once, and compaction, checkpoints and vacuum in between.
After every run: silver equals the model's current state at silver's watermark (all columns,
`_version` included), history equals the model's version chain at history's watermark, and
`lake_id`s are unique and stable.
"""

from __future__ import annotations

import random
import threading
import uuid
from contextlib import ExitStack, suppress
from typing import Any
from unittest import mock

import pytest
from cdc_model import COLUMNS, Change, bronze_rows, current, deliver, source_history, versions
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakeport.lake import maintenance
from lakeport.lake.history import app_id as history_app
from lakeport.lake.history import apply_history
from lakeport.lake.silver import app_id as silver_app
from lakeport.lake.silver import apply_changes


class Crash(Exception):
    """A process dying at this point."""


# (module, function, when): a crash before the call, or right after it returned (its commit made)
CRASH_POINTS = [
    ("lakeport.lake.changes", "read", "before"),
    ("lakeport.lake.silver", "_remember_deletes", "before"),
    ("lakeport.lake.silver", "_remember_deletes", "after"),
    ("lakeport.lake.keys", "assign_lake_ids", "after"),
    ("lakeport.lake.silver", "_merge", "before"),
    ("lakeport.lake.silver", "_merge", "after"),
    ("lakeport.lake.history", "_chain", "after"),
]


class Lake:
    def __init__(self, root: str, *, multi: bool, chunk_rows: int, opts: dict[str, str] | None = None) -> None:
        self.bronze, self.silver = f"{root}/bronze", f"{root}/silver"
        self.history, self.key_map = f"{root}/history", f"{root}/key_map" if multi else None
        self.deleted, self.opts = f"{root}/deleted", opts
        self.multi, self.chunk_rows = multi, chunk_rows
        self.by_version: list[list[Change]] = []
        self.offsets: dict[int, int] = {}
        self.ids: dict[tuple[str, int], int] = {}

    def land(self, batch: list) -> None:
        write_deltalake(
            self.bronze,
            bronze_rows(batch, self.offsets),
            mode="append",
            configuration={"delta.enableChangeDataFeed": "true"},
            storage_options=self.opts,
        )
        self.by_version.append([d.change for d in batch])

    def run(self) -> None:
        source_key = ["source_db"] if self.multi else []
        apply_changes(
            "t",
            self.bronze,
            self.silver,
            key=["id"],
            source_key=source_key,
            key_map_uri=self.key_map,
            deleted_keys_uri=self.deleted,
            chunk_rows=self.chunk_rows,
            storage_options=self.opts,
        )
        apply_history("t", self.bronze, self.history, key=["id"], source_key=source_key, chunk_rows=self.chunk_rows,
                      storage_options=self.opts)  # fmt: skip

    def landed_up_to(self, uri: str, app: str) -> list[Change]:
        try:
            done = DeltaTable(uri, storage_options=self.opts).transaction_version(app)
        except Exception:
            done = None
        return [ch for version in self.by_version[: (done if done is not None else -1) + 1] for ch in version]

    def check(self) -> None:
        expected = current(self.landed_up_to(self.silver, silver_app("t")))
        rows = _rows(self.silver, self.opts)
        got = {(r.get("source_db", "a"), r["id"]): {c: r[c] for c in COLUMNS} for r in rows}
        assert got == {k: v for k, v in expected.items()}, "silver differs from the model"
        if self.multi:
            mapped = (
                {(r["source_db"], r["id"]): r["lake_id"] for r in _rows(self.key_map, self.opts)}
                if self.key_map
                else {}
            )
            assert len(set(mapped.values())) == len(mapped), "a lake_id names two keys"
            for r in rows:
                assert r["lake_id"] == mapped[(r["source_db"], r["id"])]
            for k, v in mapped.items():
                assert self.ids.setdefault(k, v) == v, "a key's lake_id changed"
        chain = versions(self.landed_up_to(self.history, history_app("t")))
        stored = {
            (r.get("source_db", "a"), r["id"], r["_source_lsn"]): (
                *(r[c] for c in COLUMNS),
                r["valid_from"],
                r["valid_to"],
                r["is_current"],
            )
            for r in _rows(self.history, self.opts)
        }
        assert len(stored) == len(_rows(self.history, self.opts)), "history holds a version twice"
        assert stored == chain, "history differs from the model"


def _rows(uri: str, opts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    try:
        return DeltaTable(uri, storage_options=opts).to_pyarrow_table().to_pylist()
    except Exception:
        return []


def _crash(point: tuple[str, str, str], nth: int) -> ExitStack:
    module, name, when = point
    target = __import__(module, fromlist=[name])
    real = getattr(target, name)
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if when == "before" and calls["n"] == nth:
            raise Crash(f"{name} #{nth}")
        out = real(*args, **kwargs)
        if when == "after" and calls["n"] == nth:
            raise Crash(f"after {name} #{nth}")
        return out

    stack = ExitStack()
    stack.enter_context(mock.patch.object(target, name, wrapper))
    return stack


def _maintain(lake: Lake, rnd: random.Random) -> None:
    for uri in (lake.bronze, lake.silver, lake.history):
        try:
            table = DeltaTable(uri, storage_options=lake.opts)
        except Exception:
            continue
        table.optimize.compact()
        if rnd.random() < 0.5:
            table.create_checkpoint()
    readers = [(lake.silver, silver_app("t")), (lake.history, history_app("t"))]
    floor = maintenance.unapplied_floor(lake.bronze, readers, storage_options=lake.opts)
    maintenance.vacuum(lake.bronze, retention_hours=0, min_retention_hours=0, keep_from_version=floor,
                       storage_options=lake.opts)  # fmt: skip
    while (
        len(lake.by_version) <= DeltaTable(lake.bronze, storage_options=lake.opts).version()
    ):  # maintenance commits add no change
        lake.by_version.append([])


def play(root: str, rnd: random.Random, *, multi: bool, opts: dict[str, str] | None = None) -> Lake:
    changes = source_history(rnd, steps=rnd.randint(5, 40), dbs=("a", "b") if multi else ("a",))
    stream = deliver(rnd, changes, partitions=rnd.randint(1, 3), replays=rnd.randint(0, 4))
    lake = Lake(root, multi=multi, chunk_rows=rnd.choice([1, 2, 3, 5, 1000]), opts=opts)
    i = 0
    while i < len(stream):
        take = rnd.randint(1, 6)
        lake.land(stream[i : i + take])
        i += take
        roll = rnd.random()
        if roll < 0.2:
            point, nth = rnd.choice(CRASH_POINTS), rnd.randint(1, 3)
            with _crash(point, nth), suppress(Crash):
                lake.run()
            lake.check()  # a crash leaves each table exactly at its own watermark
        elif roll < 0.3:
            errors: list[BaseException] = []
            threads = [threading.Thread(target=_catching(lake.run, errors)) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not errors, errors
            lake.check()
        elif roll < 0.4:
            _maintain(lake, rnd)
        elif roll < 0.7:
            lake.run()
            lake.check()
    lake.run()
    lake.check()
    everything = [d.change for d in stream]
    assert {k: v for k, v in current(everything).items()} == {
        (r.get("source_db", "a"), r["id"]): {c: r[c] for c in COLUMNS} for r in _rows(lake.silver, lake.opts)
    }
    return lake


def _catching(fn: Any, errors: list[BaseException]) -> Any:
    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    return run


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False))
def test_one_source_equals_the_model(tmp_path_factory: Any, rnd: random.Random) -> None:
    play(str(tmp_path_factory.mktemp("model")), rnd, multi=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False))
def test_several_sources_with_lake_ids_equal_the_model(tmp_path_factory: Any, rnd: random.Random) -> None:
    play(str(tmp_path_factory.mktemp("model")), rnd, multi=True)


@pytest.mark.stack
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False))
def test_on_s3_several_sources_equal_the_model(local_stack: Any, rnd: random.Random) -> None:
    """The same adversary against the real S3 (SeaweedFS): conditional puts fence the races."""
    root = f"s3://{local_stack.bucket}/tests/model-{uuid.uuid4().hex[:8]}"
    play(root, rnd, multi=True, opts=local_stack.storage_options())


def test_bronze_schema_of_the_model_is_what_ingest_writes() -> None:
    """The model's bronze columns are a subset of what ingest lands for a Debezium table."""
    from lakeport.ingestion.records import BRONZE_META

    meta = {f.name for f in bronze_rows([], {}).schema if f.name.startswith("_") and f.name != "_version"}
    assert meta <= BRONZE_META
