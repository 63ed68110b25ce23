"""Guard: column rules (drop / hash / mask) are applied before anything reaches the lake, and input
limits (size, nesting depth, new columns per batch) turn records into dead letters instead of
crashes. Unit tests on decode + guard, then the whole path through the real broker and S3."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_topic, read_table, send, unique, write_config

from lakeport.dev.stack import StackState
from lakeport.ingestion.decode import DecodeOptions, decode
from lakeport.ingestion.guard import GuardOptions, guard
from lakeport.ingestion.precheck import RAW_DEPTH_LIMIT, json_depth
from lakeport.ingestion.records import Batch, RawBatch
from lakeport.settings import ConfigError, load_settings
from lakeport.settings.security import ColumnRule

SALT = b"pepper-for-tests"


def _batch(values: list[bytes]) -> Batch:
    part = RawBatch("t", 0, list(range(len(values))), [1_700_000_000_000] * len(values), [None] * len(values), values)
    return Batch("customers", "json", (part,), {("t", 0): (0, len(values) - 1)}, sum(map(len, values)))


def _deep(levels: int) -> bytes:
    return b'{"id": 9, "x": ' + b'{"a": ' * levels + b"1" + b"}" * levels + b"}"


def test_json_depth_counts_brackets_outside_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": 2}]}', 1) > 1
    assert json_depth(b'{"a": "[[[[[[{{{{{{"}', 3) == 1  # brackets inside a string do not count
    assert json_depth(b'{"a": [[1]]}', 5) == 0  # few brackets: not even scanned
    assert json_depth(b'{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[[[\\""}', 3) == 1  # escaped quote stays in the string
    assert json_depth(b"[" * 1200 + b"]" * 1200, RAW_DEPTH_LIMIT) == RAW_DEPTH_LIMIT + 1


def test_rules_and_limits_on_one_batch() -> None:
    values = [
        json.dumps(
            {"id": 1, "email": "ann@example.com", "phone": "+33 6 12 34 56 78", "card": "4111111111111111"}
        ).encode(),
        json.dumps({"id": 2, "email": "bob@example.com", "phone": None, "card": "5500000000000004"}).encode(),
        _deep(20),  # deeper than max_nesting_depth=16, parses fine: checked on the parsed type
        _deep(20_000),  # would crash the JSON parser: stopped on the raw bytes
        json.dumps({"id": 5, **{f"extra_{i}": i for i in range(3)}}).encode(),  # 3 new columns, 2 allowed
    ]
    batch = _batch(values)
    decoded = decode(batch, options=DecodeOptions("json"))
    assert [d.message.offset for d in decoded.dead_letters] == [3]
    rules = (ColumnRule(column="email", action="hash"), ColumnRule(column="phone", action="mask"),
             ColumnRule(column="card", action="drop"))  # fmt: skip
    known = frozenset({"id", "email", "phone", "card", "x"})
    out = guard(batch, decoded, options=GuardOptions(rules=rules, salt=SALT, max_nesting_depth=16,
                                                     max_new_columns=2, known_columns=known))  # fmt: skip
    rows = {r["id"]: r for r in out.rows.to_pylist()}
    assert sorted(rows) == [1, 2]
    assert "card" not in out.rows.column_names and "x" not in out.rows.column_names
    assert not {"extra_0", "extra_1", "extra_2"} & set(out.rows.column_names)
    assert rows[1]["email"] == hashlib.sha256(SALT + b"ann@example.com").hexdigest()
    assert rows[1]["phone"] == "*************6 78" and rows[2]["phone"] is None
    letters = {d.message.offset: d for d in out.dead_letters}
    assert sorted(letters) == [2, 3, 4]
    assert "max_nesting_depth=16" in letters[2].error and letters[2].stage == "limits"
    assert f"exceeds {RAW_DEPTH_LIMIT}" in letters[3].error
    assert "max_new_columns_per_batch=2" in letters[4].error
    for d in letters.values():  # the table has rules: no raw value (it may hold the protected data)
        assert d.message.value is not None and d.message.value.startswith(b"raw value withheld")
        assert b"example.com" not in d.message.value


def test_bad_security_config_fails_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "lakeport.yaml"
    table = "{name: c, topics: [c], key: [id], column_rules: [{column: email, action: hash}]}"
    path.write_text(f"tables:\n  - {table}\n")
    with pytest.raises(ConfigError, match=r"security\.hash_salt must be set"):
        load_settings(path)
    path.write_text("tables:\n  - {name: c, topics: [c], key: [id], column_rules: [{column: id, action: drop}]}\n")
    with pytest.raises(ConfigError, match="drop key column"):
        load_settings(path)


@pytest.mark.stack
def test_protected_columns_never_reach_the_lake(local_stack: StackState, s3_lake: str, tmp_path: Path) -> None:
    topic = unique("pii")
    make_topic(local_stack, topic, 1)
    people = [{"id": i, "email": f"user{i}@example.com", "phone": f"+4470000000{i:02d}",
               "card": f"41111111111111{i:02d}"} for i in range(20)]  # fmt: skip
    values = [json.dumps(p).encode() for p in people] + [_deep(30), _deep(50_000)]
    send(local_stack, topic, values)
    salt = "s3cr3t-salt-value"
    rules = [{"column": "email", "action": "hash"}, {"column": "phone", "action": "mask", "keep_last": 2},
             {"column": "card", "action": "drop"}]  # fmt: skip
    config = write_config(
        tmp_path / "lakeport.yaml", local_stack, lake_uri=s3_lake,
        tables=[{"name": "people", "topics": [topic], "key": ["id"], "column_rules": rules}],
        ingest={"once_wait_seconds": 5}, extra={"security": {"hash_salt": salt}},
    )  # fmt: skip
    done = subprocess.run([str(Path(sys.executable).parent / "lakeport"), "ingest", "--once", "-c", str(config)],
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    bronze = read_table(f"{s3_lake}/bronze/people", local_stack)
    assert bronze.num_rows == 20 and "card" not in bronze.column_names
    by_id = {r["id"]: r for r in bronze.to_pylist()}
    assert by_id[3]["email"] == hashlib.sha256(f"{salt}user3@example.com".encode()).hexdigest()
    assert by_id[3]["phone"] == "*" * 11 + "03"
    letters = [r for r in read_table(f"{s3_lake}/ops/dead_letters", local_stack).to_pylist() if r["_topic"] == topic]
    assert sorted(r["_offset"] for r in letters) == [20, 21]  # every offset is in exactly one place
    assert all(r["stage"] == "limits" for r in letters)
    everything = str(bronze.to_pylist()) + str(letters) + done.stdout + done.stderr
    assert "example.com" not in everything and "41111111111111" not in everything and salt not in everything


def test_outbox_router_events_are_unnested_and_feed_the_order_timeline(tmp_path: Path) -> None:
    """Debezium's EventRouter (and lakeport capture, which sends the same) nests the event under
    'payload' and sends ISO times; with `unnest: [payload]` its fields are columns the gold model reads."""
    from deltalake import write_deltalake

    from lakeport.lake.gold import refresh_gold
    from lakeport.lake.query import Lake
    from lakeport.lake.refresh import refresh_silver
    from lakeport.settings import Settings

    def routed(n: int, kind: str, event_type: str, at: str, **payload: object) -> bytes:
        event = {"event_id": f"e{n}", "event_type": event_type, "aggregate_type": kind, "aggregate_id": "42"}
        return json.dumps({**event, "occurred_at": at, "payload": {"order_id": 42, **payload}}).encode()

    values = [
        routed(1, "order", "OrderPlaced", "2026-01-01T10:00:00Z", total="12.50"),
        routed(2, "payment", "PaymentCaptured", "2026-01-01T10:05:00Z", amount="12.50"),
        routed(3, "shipment", "ShipmentStatusChanged", "2026-01-01T12:00:00Z", status="Shipped"),
        routed(4, "shipment", "ShipmentStatusChanged", "2026-01-02T09:00:00Z", status="Received"),
    ]
    batch = _batch(values)
    out = guard(batch, decode(batch, options=DecodeOptions("json")), options=GuardOptions(unnest=("payload",)))
    assert "payload" not in out.rows.column_names and {"order_id", "status", "total"} <= set(out.rows.column_names)
    tables = [{"name": "domain_events", "topic_pattern": "^events[.].*", "key": ["event_id"]}]
    settings = Settings.model_validate({"lake": {"uri": str(tmp_path)}, "gold": {"models": ["order_timeline"]},
                                        "tables": tables})  # fmt: skip
    bronze = settings.lake.table_uri("bronze", "domain_events")
    write_deltalake(bronze, out.rows, configuration={"delta.enableChangeDataFeed": "true"})
    write_deltalake(bronze, out.rows, mode="append")  # the outbox replayed: every event twice
    assert [r["error"] for r in refresh_silver(settings)] == [None]  # silver.domain_events: each event once
    (result,) = refresh_gold(settings)
    assert result.rows == 1
    row = (
        Lake(settings)
        .execute(
            "SELECT order_id, last_status, seconds_to_pay, seconds_to_ship, seconds_to_receive FROM gold.order_timeline"
        )
        .fetchone()
    )
    assert row == (42, "Received", 300.0, 7200.0, 82800.0)
