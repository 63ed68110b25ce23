"""A poison corpus through the real broker: bad records land in ops.dead_letters byte for byte,
every good record lands in its table, and tables + dead letters == messages consumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import debezium, make_topic, read_table, run_cli, send, unique, write_config

from lakeport.dev.stack import StackState

pytestmark = pytest.mark.stack


def test_poison_goes_to_dead_letters(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic = unique("poison.public.customers")
    make_topic(local_stack, topic, 1)
    poison = [
        b'{"before": null, "after": {"id": 1',
        b"\xc3\x28 invalid utf-8",
        b"[1, 2]",
        b'"just a string"',
        debezium("c", {"id": "not-an-int", "email": "x"}),  # conflicts with id: int64 from earlier rows
        json.dumps(
            {"before": None, "after": {"id": 9, "blob": "z" * (5 * 1024 * 1024)}, "op": "c", "source": {}}
        ).encode(),
    ]
    good = [debezium("c", {"id": i, "email": f"{i}@x.io"}, lsn=i) for i in range(20)]
    values: list[bytes | None] = [*good[:10], *poison, None, *good[10:]]  # None: a tombstone
    send(local_stack, topic, values, partition=0)
    config = write_config(
        tmp_path / "c.yaml",
        local_stack,
        lake_uri=s3_lake,
        tables=[{"name": "customers", "topics": [topic], "format": "debezium-json"}],
    )
    run_cli(["ingest", "--once", "--config", str(config)])

    rows = read_table(f"{s3_lake}/bronze/customers", local_stack)
    dead = read_table(f"{s3_lake}/ops/dead_letters", local_stack)
    assert rows.num_rows + dead.num_rows == len(values)
    assert sorted(i for i in rows["id"].to_pylist() if i is not None) == list(range(20))
    tombstones = [r for r in rows.to_pylist() if r["_op"] is None]
    assert [t["_offset"] for t in tombstones] == [16]
    by_offset = {r["_offset"]: r for r in dead.to_pylist()}
    assert sorted(by_offset) == list(range(10, 16))
    for i, raw in enumerate(poison):
        letter = by_offset[10 + i]
        assert letter["_value"] == raw and letter["_topic"] == topic and letter["_partition"] == 0
        assert letter["table_name"] == "customers" and letter["error"]
    assert "max_message_bytes" in by_offset[15]["error"]

    # the same records are never dead-lettered twice
    run_cli(["ingest", "--once", "--config", str(config)])
    assert read_table(f"{s3_lake}/ops/dead_letters", local_stack).num_rows == 6
    out = json.loads(
        run_cli(
            [
                "sql",
                "SELECT _offset, error FROM ops.dead_letters ORDER BY _offset",
                "--format",
                "json",
                "--config",
                str(config),
            ]
        ).stdout
    )
    assert [r["_offset"] for r in out] == list(range(10, 16))
