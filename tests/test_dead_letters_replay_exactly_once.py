"""``lakeport dead-letters replay``: after a fix, dead letters that now decode land in their table
exactly once (traced by ``_replayed_from``), whatever crashes or races: a crash before or after the
replay's commit, a second replay, two replays at once. Those that still fail stay; withheld raw
values are reported as not replayable. ``list`` counts them by table, stage and error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from helpers import read_table, run_cli
from test_decode_debezium_envelopes import batch_of

from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.landing import Lander
from lakeport.ingestion.replay import read_letters, replay_table, summary
from lakeport.ingestion.writer import DeltaWriter
from lakeport.settings import Settings

TOPIC = "shop.events"


def _settings(lake: Path, *, max_bytes: int) -> Settings:
    return Settings(lake={"uri": str(lake)}, tables=[{"name": "t", "topics": [TOPIC], "format": "json"}],
                    ingest={"max_message_bytes": max_bytes})  # fmt: skip


def _land_with_dead_letters(lake: Path) -> Settings:
    """20 records; the 6 big ones (offsets 2, 5, …) and one broken one (offset 7) are dead letters."""
    settings = _settings(lake, max_bytes=200)
    values: list[bytes | None] = [
        json.dumps({"n": n, "note": "x" * (300 if n % 3 == 2 else 5)}).encode() for n in range(20)
    ]
    values[7] = b'{"n": 7, "note": '  # broken JSON: no fix makes it land
    batch = batch_of(values, fmt="json", topic=TOPIC)
    decoded = decode(batch, options=DecodeOptions("json", None, 200))
    Lander(settings, DeltaWriter({})).land(decoded)
    return settings


def _bronze(settings: Settings) -> list[dict[str, Any]]:
    return read_table(settings.lake.table_uri("bronze", "t")).to_pylist()


class _Crash(Exception):
    pass


class _CrashingWriter(DeltaWriter):
    """Crashes right before (``when="before"``) or right after (``"after"``) the replay's commit."""

    def __init__(self, when: str) -> None:
        super().__init__({})
        self.when = when

    def append(self, *args: Any, **kwargs: Any) -> Any:
        if self.when == "before":
            raise _Crash
        result = super().append(*args, **kwargs)
        raise _Crash(result)


def _replay(settings: Settings, **kwargs: Any) -> Any:
    return replay_table(settings, "t", read_letters(settings, table="t"), **kwargs)


def test_records_that_now_decode_land_once_traced_and_the_rest_stay(tmp_path: Path) -> None:
    _land_with_dead_letters(tmp_path)
    fixed = _settings(tmp_path, max_bytes=10_000)  # the fix: a larger max_message_bytes
    result = _replay(fixed)
    assert (result.selected, result.landed, result.still_failing, result.not_replayable) == (7, 6, 1, 0)
    rows = _bronze(fixed)
    assert sorted(r["n"] for r in rows) == [n for n in range(20) if n != 7]  # every record once
    replayed = {r["_offset"]: r["_replayed_from"] for r in rows if r["_replayed_from"]}
    assert replayed == {o: f"{TOPIC}[0]@{o}" for o in (2, 5, 8, 11, 14, 17)}
    again = _replay(fixed)
    assert (again.landed, again.already_replayed, again.still_failing) == (0, 6, 1)
    assert len(_bronze(fixed)) == 19
    (big, broken) = sorted(summary(fixed), key=lambda g: g.stage, reverse=True)
    assert (big.stage, big.count, big.replayed, big.replayable) == ("limits", 6, 6, 0)
    assert (broken.stage, broken.count, broken.replayed, broken.replayable) == ("decode", 1, 0, 1)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_around_the_replays_commit_lands_each_record_once(tmp_path: Path, when: str) -> None:
    _land_with_dead_letters(tmp_path)
    fixed = _settings(tmp_path, max_bytes=10_000)
    with pytest.raises(_Crash):
        _replay(fixed, writer=_CrashingWriter(when))
    assert len(_bronze(fixed)) == (13 if when == "before" else 19)
    result = _replay(fixed)  # the operator runs it again
    assert result.landed == (6 if when == "before" else 0) and len(_bronze(fixed)) == 19


def test_two_replays_at_once_land_each_record_once(tmp_path: Path) -> None:
    _land_with_dead_letters(tmp_path)
    fixed = _settings(tmp_path, max_bytes=10_000)

    class _Racing(DeltaWriter):
        """Read the table, then let another replay commit, then commit on the stale read."""

        raced = False

        def append(self, *args: Any, **kwargs: Any) -> Any:
            if not self.raced:
                self.raced = True
                assert _replay(fixed).landed == 6  # the other replay wins the race
            return super().append(*args, **kwargs)

    result = _replay(fixed, writer=_Racing({}))  # loses the race, re-reads, finds them replayed
    assert result.landed == 0 and result.already_replayed == 6
    assert sorted(r["n"] for r in _bronze(fixed)) == [n for n in range(20) if n != 7]


def test_withheld_raw_values_are_reported_not_replayable(tmp_path: Path) -> None:
    settings = _land_with_dead_letters(tmp_path)
    uri = settings.lake.table_uri("ops", "dead_letters")
    letters = read_table(uri)
    withheld = letters.set_column(letters.schema.get_field_index("_value"), "_value",
                                  pa.array([b"raw value withheld (table has column rules): 9 bytes, sha256 00"]
                                           * letters.num_rows, pa.binary()))  # fmt: skip
    letters = withheld.append_column("id", pa.array([f"{TOPIC}[0]@{o}" for o in letters["_offset"].to_pylist()]))
    result = replay_table(_settings(tmp_path, max_bytes=10_000), "t", letters)
    assert (result.landed, result.not_replayable) == (0, 7)


def test_the_cli_lists_and_replays(tmp_path: Path) -> None:
    settings = _land_with_dead_letters(tmp_path / "lake")
    config = tmp_path / "lakeport.yaml"
    config.write_text(json.dumps({"lake": {"uri": settings.lake.uri}, "ingest": {"max_message_bytes": 10_000},
                                  "tables": [{"name": "t", "topics": [TOPIC], "format": "json"}]}))  # fmt: skip
    listed = json.loads(run_cli(["dead-letters", "list", "--json", "-c", str(config)]).stdout)
    assert {(g["stage"], g["count"], g["replayable"]) for g in listed} == {("limits", 6, 6), ("decode", 1, 1)}
    dry = run_cli(["dead-letters", "replay", "--dry-run", "--error-like", "MAX_MESSAGE", "-c", str(config)]).stdout
    assert "6 selected, would land 6" in dry and len(_bronze(settings)) == 13
    done = run_cli(["dead-letters", "replay", "-c", str(config)]).stdout
    assert "7 selected, landed 6, 0 replayed before, 1 still failing" in " ".join(done.split())
    assert len(_bronze(settings)) == 19


def test_a_replay_in_several_commits_lands_each_record_once(tmp_path: Path) -> None:
    _land_with_dead_letters(tmp_path)
    fixed = _settings(tmp_path, max_bytes=10_000)
    result = _replay(fixed, chunk=2)  # 4 commits of at most 2 records (memory stays bounded)
    assert (result.landed, result.still_failing) == (6, 1)
    assert sorted(r["n"] for r in _bronze(fixed)) == [n for n in range(20) if n != 7]
    assert _replay(fixed, chunk=2).landed == 0
