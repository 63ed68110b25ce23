"""Debezium's logical types land exactly: decimals of any size and scale (never rounded, never a
dead letter), ``numeric`` without precision, times of day and durations. Messages are built as the
real connector's JSON converter sends them (with schemas; the same Connect schema names and
parameters as ``tests/fixtures/debezium``), then go through the real decoder."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from test_decode_debezium_envelopes import batch_of

from lakeport.ingestion.connect_types import exact_decimal, iso_duration
from lakeport.ingestion.decode import DecodeOptions, decode


def _unscaled(value: int) -> str:
    return base64.b64encode(value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)).decode()


def _decimal_field(name: str, precision: int, scale: int) -> dict[str, Any]:
    params = {"scale": str(scale), "connect.decimal.precision": str(precision)}
    return {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
            "parameters": params, "field": name}  # fmt: skip


def _message(fields: list[dict[str, Any]], after: dict[str, Any]) -> bytes:
    """A wrapped create event of ``shop.public.t`` with these row fields (``id`` int32 first)."""
    row = {"type": "struct", "optional": True, "name": "shop.public.t.Value",
           "fields": [{"type": "int32", "optional": False, "field": "id"}, *fields]}  # fmt: skip
    schema = {"type": "struct", "name": "shop.public.t.Envelope", "optional": False, "fields": [
        {**row, "field": "before"}, {**row, "field": "after"},
        {"type": "struct", "optional": False, "name": "io.debezium.connector.postgresql.Source", "field": "source",
         "fields": [{"type": "int64", "optional": False, "field": "ts_ms"}, {"type": "int64", "field": "lsn"}]},
        {"type": "string", "optional": False, "field": "op"},
    ]}  # fmt: skip
    payload = {"before": None, "after": {"id": 1, **after}, "source": {"ts_ms": 1, "lsn": 10}, "op": "c"}
    return json.dumps({"schema": schema, "payload": payload}).encode()


def _land(fields: list[dict[str, Any]], *afters: dict[str, Any]) -> tuple[pa.Schema, list[dict[str, Any]]]:
    values = [_message(fields, a) for a in afters]
    result = decode(batch_of(list(values), topic="shop.public.t"), options=DecodeOptions("debezium-json"))
    assert result.dead_letters == (), [d.error for d in result.dead_letters]
    return result.rows.schema, result.rows.to_pylist()


def test_a_decimal_with_more_than_28_digits_lands_unrounded() -> None:
    value = Decimal("12345678901234567890123456789012.34")  # 34 digits: the default context keeps 28
    schema, (row,) = _land([_decimal_field("amount", 38, 2)], {"amount": _unscaled(1234567890123456789012345678901234)})
    assert schema.field("amount").type == pa.decimal128(38, 2) and row["amount"] == value


def test_precision_above_38_lands_as_exact_text_not_a_dead_letter() -> None:
    unscaled = 12345678901234567890123456789012345678925  # numeric(41, 2): 123…789.25
    schema, (row,) = _land([_decimal_field("big", 41, 2)], {"big": _unscaled(unscaled)})
    assert schema.field("big").type == pa.string() and row["big"] == "123456789012345678901234567890123456789.25"


def test_scale_above_precision_and_negative_scale_fit_a_decimal() -> None:
    fields = [_decimal_field("tiny", 5, 6), _decimal_field("round", 5, -2)]
    schema, (row,) = _land(fields, {"tiny": _unscaled(12345), "round": _unscaled(12345)})
    assert schema.field("tiny").type == pa.decimal128(6, 6) and row["tiny"] == Decimal("0.012345")
    assert schema.field("round").type == pa.decimal128(7, 0) and row["round"] == Decimal("1234500")


def test_a_negative_scale_with_more_than_28_digits_lands_exactly() -> None:
    """``numeric(30, -5)``: an integer of 35 digits, which the default 28-digit context refused; beyond 38
    digits (``numeric(36, -5)``) exact text."""
    schema, (row,) = _land([_decimal_field("huge", 30, -5)], {"huge": _unscaled(-123456789012345678901234567890)})
    assert schema.field("huge").type == pa.decimal128(35, 0)
    assert row["huge"] == Decimal("-12345678901234567890123456789000000")
    unscaled = 123456789012345678901234567890123456
    schema, (row,) = _land([_decimal_field("wider", 36, -5)], {"wider": _unscaled(unscaled)})
    assert schema.field("wider").type == pa.string() and row["wider"] == f"{unscaled}00000"


def test_numeric_without_precision_lands_as_exact_text() -> None:
    field = {"type": "struct", "optional": True, "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
             "fields": [{"type": "int32", "optional": False, "field": "scale"},
                        {"type": "bytes", "optional": False, "field": "value"}], "field": "n"}  # fmt: skip
    big = 10**45 + 7
    schema, rows = _land([field], {"n": {"scale": 3, "value": _unscaled(-12345)}}, {"n": {"scale": 0,
                         "value": _unscaled(big)}}, {"n": None})  # fmt: skip
    assert schema.field("n").type == pa.string()
    assert [r["n"] for r in rows] == ["-12.345", str(big), None]


def test_times_of_day_and_durations_land_as_documented_text() -> None:
    def named(field: str, kind: str, name: str) -> dict[str, Any]:
        return {"type": kind, "optional": True, "name": name, "version": 1, "field": field}

    t = "io.debezium.time."
    fields = [named("t_ms", "int32", t + "Time"), named("t_us", "int64", t + "MicroTime"),
              named("t_ns", "int64", t + "NanoTime"), named("t_tz", "string", t + "ZonedTime"),
              named("d", "int64", t + "MicroDuration"), named("i", "string", t + "Interval")]  # fmt: skip
    at = ((13 * 60 + 45) * 60 + 7) * 1_000_000 + 123_456  # 13:45:07.123456
    _, (row,) = _land(fields, {"t_ms": at // 1000, "t_us": at, "t_ns": at * 1000, "t_tz": "13:45:07.123456Z",
                               "d": 90061000001, "i": "P1Y2M3DT4H5M6.78S"})  # fmt: skip
    assert (row["t_ms"], row["t_us"], row["t_ns"]) == ("13:45:07.123000", "13:45:07.123456", "13:45:07.123456")
    assert row["t_tz"] == "13:45:07.123456Z" and row["i"] == "P1Y2M3DT4H5M6.78S"
    assert row["d"] == "P1DT1H1M1.000001S"


def test_iso_durations_are_exact() -> None:
    assert [iso_duration(m) for m in (0, 1, 3723000004, -3723000004, 86_400_000_000)] == [
        "PT0S", "PT0.000001S", "PT1H2M3.000004S", "-PT1H2M3.000004S", "P1D"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(digits=st.integers(min_value=1, max_value=38), data=st.data())
def test_any_unscaled_integer_and_scale_up_to_38_digits_decodes_exactly(digits: int, data: st.DataObject) -> None:
    scale = data.draw(st.integers(min_value=0, max_value=digits))
    unscaled = data.draw(st.integers(min_value=-(10**digits) + 1, max_value=10**digits - 1))
    assert exact_decimal(unscaled, scale).as_tuple() == Decimal(f"{unscaled}E-{scale}").as_tuple()
    schema, (row,) = _land([_decimal_field("x", digits, scale)], {"x": _unscaled(unscaled)})
    assert schema.field("x").type == pa.decimal128(digits, scale)
    sign, digits_of, exponent = row["x"].as_tuple()
    assert exponent == -scale and (-1 if sign else 1) * int("".join(map(str, digits_of))) == unscaled
