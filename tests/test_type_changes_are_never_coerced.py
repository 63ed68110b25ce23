"""A source type change never changes a value silently: text is never read as a number ("00123"
stays "00123", or the record waits in dead letters), a number never becomes text and is never
truncated. Such records are dead letters with stage ``schema``; the worker first re-reads the
table's schema from the Delta log (another worker may have changed it) and decodes them again. A
lossless widening keeps the wider value (the table evolves: test_source_type_widening_…)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from test_debezium_types_decode_exactly import _decimal_field, _message, _unscaled
from test_decode_debezium_envelopes import batch_of

from lakeport.ingestion.arrow_types import castable
from lakeport.ingestion.conflicts import kind
from lakeport.ingestion.decode import DecodeOptions, decode

TABLE = pa.schema([("id", pa.int64()), ("qty", pa.int64()), ("amount", pa.decimal128(12, 2)), ("day", pa.date32()),
                   ("note", pa.string())])  # fmt: skip


def _decode(fields: list[dict[str, Any]], after: dict[str, Any]) -> Any:
    return decode(batch_of([_message(fields, after)], topic="shop.public.t"),
                  options=DecodeOptions("debezium-json", TABLE))  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ({"type": "string", "optional": True, "field": "qty"}, "00123"),  # ALTER … TYPE text
        ({"type": "boolean", "optional": True, "field": "qty"}, True),
        ({"type": "int64", "optional": True, "field": "note"}, 42),  # a number where the column is text
        (_decimal_field("amount", 12, 4), _unscaled(12345678)),  # more scale, fewer integer digits: 1234.5678
    ],
    ids=["text-as-number", "bool-as-number", "number-as-text", "scale-without-room"],
)  # fmt: skip
def test_a_value_that_does_not_fit_its_column_is_a_schema_dead_letter(field: dict[str, Any], value: Any) -> None:
    out = _decode([field], {field["field"]: value})
    assert out.rows.num_rows == 0
    (letter,) = out.dead_letters
    assert letter.stage == "schema", letter.error
    assert f"column {field['field']!r}" in letter.error  # the alert says which column


@pytest.mark.parametrize(
    ("field", "value", "wider"),
    [
        ({"type": "double", "optional": True, "field": "qty"}, 2.5, pa.float64()),  # ALTER … TYPE double precision
        (_decimal_field("amount", 18, 2), _unscaled(123456789012345), pa.decimal128(18, 2)),  # more digits
        ({"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "field": "day"},
         1_700_000_000_123_456, pa.timestamp("us", tz="UTC")),  # date → timestamp
    ],
    ids=["int-to-double", "more-precision", "date-to-timestamp"],
)  # fmt: skip
def test_a_lossless_widening_keeps_the_wider_value_for_the_table_to_evolve(
    field: dict[str, Any], value: Any, wider: pa.DataType
) -> None:
    out = _decode([field], {field["field"]: value})
    assert out.dead_letters == () and out.rows.schema.field(field["field"]).type == wider


def test_values_that_fit_exactly_land() -> None:
    out = _decode([{"type": "double", "optional": True, "field": "qty"}], {"qty": 2.0})
    assert out.dead_letters == () and out.rows["qty"].to_pylist() == [2]
    out = _decode([_decimal_field("amount", 10, 2)], {"amount": _unscaled(12345)})
    assert out.dead_letters == () and str(out.rows["amount"][0].as_py()) == "123.45"


def test_only_the_conflicting_records_of_a_batch_are_dead_letters() -> None:
    values = [json.dumps({"id": i, "qty": "00123" if i == 3 else i}).encode() for i in range(6)]
    out = decode(batch_of(values, fmt="json", topic="t"), options=DecodeOptions("json", TABLE))
    assert [d.message.offset for d in out.dead_letters] == [3]
    assert out.rows["qty"].to_pylist() == [0, 1, 2, 4, 5]
    assert "column 'qty' is int64 in the table, the record has string" in out.dead_letters[0].error


def test_kinds_of_numbers_and_text_never_mix() -> None:
    assert castable(pa.int32(), pa.int64()) and castable(pa.float64(), pa.int64()) and castable(pa.null(), pa.string())
    assert not castable(pa.string(), pa.int64()) and not castable(pa.int64(), pa.string())
    assert not castable(pa.timestamp("us", tz="UTC"), pa.date32()) and castable(pa.date32(), pa.timestamp("us"))
    assert kind("SchemaConflict: schema: column 'qty' is int64 in the table, the record has string") == kind(
        "SchemaConflict: schema: column 'qty' is int64 in the table, the record has string")  # fmt: skip
    assert "N" in kind("ArrowInvalid: Decimal value 123456789012345 does not fit in precision 12")


def test_the_worker_decodes_again_after_rereading_the_schema(tmp_path: Path) -> None:
    """Another worker widened the table (here: qty became text) after this one last read it."""
    from deltalake import write_deltalake

    from lakeport.ingestion.records import Batch, RawBatch
    from lakeport.ingestion.worker import Worker
    from lakeport.settings import Settings

    settings = Settings(lake={"uri": str(tmp_path)}, tables=[{"name": "t", "topics": ["t"], "format": "json"}],
                        kafka={"bootstrap_servers": "127.0.0.1:1"})  # fmt: skip
    uri = settings.lake.table_uri("bronze", "t")
    write_deltalake(uri, pa.table({"qty": pa.array([1], pa.int64())}))
    worker = Worker(settings, once=True)
    assert worker.tables.schema(uri).field("qty").type == pa.int64()  # type: ignore[union-attr]
    write_deltalake(uri, pa.table({"qty": pa.array(["7"], pa.string())}), mode="overwrite", schema_mode="overwrite")
    raw = RawBatch(topic="t", partition=0, offsets=[0], timestamps_ms=[0], keys=[None], values=[b'{"qty": "00123"}'])
    decoded = worker._decode(Batch(table="t", format="json", parts=(raw,), ranges={("t", 0): (0, 0)}))
    assert decoded.dead_letters == () and decoded.rows["qty"].to_pylist() == ["00123"]


def test_numbers_are_never_rounded_between_decimal_and_double() -> None:
    """Arrow's casts between decimals and doubles round silently: a double into a decimal column,
    a decimal of more digits than a double into a double column, and a batch that mixes both (no
    table yet) keep every value exactly or make the record a schema dead letter."""
    double = {"type": "double", "optional": True, "field": "amount"}
    out = _decode([double], {"amount": 2.555})  # after ALTER … TYPE double precision: no 2.56
    assert out.rows.num_rows == 0 and out.dead_letters[0].stage == "schema"
    assert "column 'amount'" in out.dead_letters[0].error
    out = _decode([double], {"amount": 2.5})  # fits exactly: lands
    assert out.dead_letters == () and str(out.rows["amount"][0].as_py()) == "2.50"

    ratio = pa.schema([("id", pa.int64()), ("ratio", pa.float64())])
    precise = _message([_decimal_field("ratio", 30, 20)], {"ratio": _unscaled(12345678901234567890123)})
    out = decode(batch_of([precise], topic="shop.public.t"), options=DecodeOptions("debezium-json", ratio))
    assert out.rows.num_rows == 0 and out.dead_letters[0].stage == "schema"  # never 123.45678901234568

    mixed = [precise, _message([{**double, "field": "ratio"}], {"ratio": 0.1})]  # one batch, no table yet
    out = decode(batch_of(mixed, topic="shop.public.t"), options=DecodeOptions("debezium-json"))
    sent = {Decimal("123.45678901234567890123"), Decimal("0.1")}  # a double is its shortest text
    landed = [Decimal(str(r["ratio"])) for r in out.rows.to_pylist()]
    assert len(landed) + len(out.dead_letters) == 2 and set(landed) <= sent, landed
    assert all(d.stage == "schema" for d in out.dead_letters)


def test_every_number_that_fits_another_number_type_lands_as_itself() -> None:
    """The exactness check never refuses a value that fits, and never lets an off-by-one-ulp value
    through: every cent from 0.00 to 999.99 as a double lands in ``decimal(12, 2)`` as itself; a
    decimal lands in a double column as the double nearest to it (``781185.20`` is ``781185.2``, not
    ``781185.2000000001``); integers land in decimals, decimals with no fraction in integers."""
    from lakeport.ingestion.arrow_types import SchemaConflict, conform

    def land(values: list[Any], have: pa.DataType, want: pa.DataType) -> list[Any]:
        table = pa.table({"x": pa.array(values, have)})
        return conform(table, pa.schema([("x", want)]), narrow=True)["x"].to_pylist()

    cents = [i / 100 for i in range(100_000)]
    assert land(cents, pa.float64(), pa.decimal128(12, 2)) == [Decimal(str(c)) for c in cents]
    exact = [Decimal(i) / 100 for i in range(0, 100_000, 7)] + [Decimal("781185.20")]
    assert land(exact, pa.decimal128(38, 2), pa.float64()) == [float(d) for d in exact]
    assert land([Decimal("0.3"), Decimal("2274.133")], pa.decimal128(38, 18), pa.float64()) == [0.3, 2274.133]
    assert land([5, None, -7], pa.int64(), pa.decimal128(12, 2)) == [Decimal("5.00"), None, Decimal("-7.00")]
    assert land([Decimal("2.00")], pa.decimal128(10, 2), pa.int64()) == [2]
    assert land([], pa.float64(), pa.decimal128(12, 2)) == []
    for values, have, want in [
        ([2.555], pa.float64(), pa.decimal128(12, 2)),  # would be 2.56
        ([Decimal("123.45678901234567890123")], pa.decimal128(30, 20), pa.float64()),
        ([Decimal("2.50")], pa.decimal128(10, 2), pa.int64()),
        ([10**11], pa.int64(), pa.decimal128(12, 2)),  # 11 integer digits: decimal(12, 2) holds 10
        ([2**53 + 1], pa.int64(), pa.float64()),
    ]:
        with pytest.raises(SchemaConflict):
            land(values, have, want)
