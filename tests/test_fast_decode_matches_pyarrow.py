"""The C fast path of decoding either yields exactly what pyarrow.json yields for the same explicit
schema, or declines (None) so that the general path decides; it is built by ``make install``."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.json as pj
import pytest
from helpers import raw_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakeport.dev.synthetic_events import bench_events
from lakeport.ingestion import debezium, fast_decode
from lakeport.ingestion.decode import DecodeOptions, decode

ROW = pa.struct(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("price", pa.float64()),
        ("active", pa.bool_()),
        ("address", pa.struct([("city", pa.string()), ("zip", pa.int64())])),
    ]
)
PLAN = fast_decode.plan_for(list(ROW), strict=True)


def _pyarrow(values: list[bytes], schema: pa.Schema) -> pa.Table | None:
    try:
        table = pj.read_json(
            io.BytesIO(b"\n".join(values)),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(values) else None


def test_the_extension_is_built() -> None:
    assert fast_decode.AVAILABLE, "ingestion._fastjson was not compiled: `make install` needs a C compiler"


def test_known_shapes_parse_like_pyarrow() -> None:
    values = [
        b'{"id": 1, "name": "caf\\u00e9 \\"x\\"\\n\\ud83d\\ude00", "price": 2.5, "active": true,'
        b' "address": {"city": "Lisboa", "zip": 1000}}',
        b'{"id": -9223372036854775808, "price": 1e3, "address": null}',
        '{"name": "São Paulo ü", "price": -0.0, "active": false, "id": 9223372036854775807}'.encode(),
        b' {"address": {"zip": 2}}\t',
        b'{"id": null, "name": null, "price": 12, "active": null, "address": {}}',
        b'{"price": 5e-324}',  # subnormal
        b'{"price": 1e-400}',  # underflows to 0
        b'{"price": 12345678901234567890123}',  # an integer beyond int64 in a float column
    ]
    fast = fast_decode.parse(values, PLAN)
    assert fast is not None
    expected = _pyarrow(values, pa.schema(list(ROW)))
    assert expected is not None and fast.equals(expected)
    assert fast.column("name")[0].as_py() == 'café "x"\n😀'


@pytest.mark.parametrize(
    "value",
    [
        b'{"id": 1, "new_column": 2}',  # schema evolution: the general path adds the column
        b'{"id": 1.5}',  # a float in an integer column
        b'{"id": "1"}',
        b'{"id": 9223372036854775808}',  # does not fit int64
        b'{"name": 5}',
        b'{"active": 1}',
        b'{"address": {"city": "x", "street": "y"}}',  # unknown nested key
        b'{"address": [1]}',
        b'{"id": 1, "id": 2}',  # duplicate key
        b'{"na\\u006de": "x"}',  # escaped key
        b'{"id": 1} x',
        b'{"id": 1',
        b'[{"id": 1}]',
        b"null",
        b'{"name": "\\ud800"}',  # lone surrogate
        b'{"name": "a\x01b"}',  # raw control character
        b'{"price": 1e999}',
        b'{"id": 01}',
    ],
)
def test_anything_else_is_declined(value: bytes) -> None:
    good = b'{"id": 7, "name": "ok"}'
    assert fast_decode.parse([good], PLAN) is not None
    assert fast_decode.parse([good, value, good], PLAN) is None


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_value = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_record = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), _value),
        "name": st.one_of(st.text(max_size=20), _value),
        "price": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**6), 10**6), _value),
        "active": st.one_of(st.booleans(), _value),
        "address": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"city": st.one_of(st.text(max_size=8), _value), "zip": st.integers(0, 99999)}
            ),
            _value,
        ),
        "other": _value,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_record, min_size=1, max_size=6), st.booleans())
def test_fast_path_equals_pyarrow_or_declines(records: list[dict[str, Any]], pretty: bool) -> None:
    values = [json.dumps(r, ensure_ascii=not pretty, indent=1 if pretty else None).encode() for r in records]
    fast = fast_decode.parse(values, PLAN)
    if fast is None:
        return
    expected = _pyarrow(values, pa.schema(list(ROW)))
    assert expected is not None, "the fast path accepted what pyarrow refuses"
    assert fast.equals(expected.select(fast.column_names)), (values, fast.to_pylist(), expected.to_pylist())
    assert expected.column_names == fast.column_names  # no field pyarrow would have added


_conforming = st.fixed_dictionaries(
    {},
    optional={
        "id": st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "name": st.none() | st.text(),
        "price": st.none() | st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70),
        "active": st.none() | st.booleans(),
        "address": st.none()
        | st.fixed_dictionaries({}, optional={"city": st.none() | st.text(), "zip": st.integers(-5, 99999)}),
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_conforming, min_size=1, max_size=8), st.booleans())
def test_conforming_records_always_take_the_fast_path(records: list[dict[str, Any]], ascii_only: bool) -> None:
    values = [json.dumps(r, ensure_ascii=ascii_only).encode() for r in records]
    fast = fast_decode.parse(values, PLAN)
    expected = _pyarrow(values, pa.schema(list(ROW)))
    assert fast is not None and expected is not None
    assert fast.equals(expected), (values, fast.to_pylist(), expected.to_pylist())


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ('{"name": "Zoë, 東京, 😀"}'.encode(), True),
        (b'{"name": "\xff"}', False),  # not UTF-8
        (b'{"name": "\xc0\xaf"}', False),  # overlong
        (b'{"name": "\xed\xa0\x80"}', False),  # an encoded surrogate
        (b'{"name": "\xf4\x90\x80\x80"}', False),  # beyond U+10FFFF
        (b'{"name": "\xe2\x82"}', False),  # truncated
    ],
)
def test_utf8_is_checked_like_python_does(value: bytes, ok: bool) -> None:
    try:
        value.decode("utf-8")
        assert ok
    except UnicodeDecodeError:
        assert not ok
    assert (fast_decode.parse([value], PLAN, check_utf8=True) is not None) == ok


def test_decode_gives_the_same_rows_with_and_without_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    events = list(bench_events(3000, seed=7))
    first = decode(raw_batch([v for _, v in events[:100]], "debezium-json"), options=DecodeOptions("debezium-json"))
    options = DecodeOptions("debezium-json", first.rows.schema)
    accented = events[100][1].replace(b'"EUR"', '"€uro"'.encode())
    bad = [b"{not json", b'{"op": "x"}', events[101][1].replace(b'"EUR"', b'"\xffUR"')]
    batch = raw_batch([accented] + [v for _, v in events[101:]] + bad, "debezium-json")
    calls: list[bool] = []
    real = fast_decode.parse

    def spy(*args: Any, **kwargs: Any) -> pa.Table | None:
        out = real(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(fast_decode, "parse", spy)
    fast = decode(batch, options=options)
    assert any(calls), "the fast path was never taken"
    monkeypatch.setattr(fast_decode, "AVAILABLE", False)
    slow = decode(batch, options=options)
    assert [d.message.offset for d in fast.dead_letters] == [d.message.offset for d in slow.dead_letters]
    assert [d.message.offset for d in fast.dead_letters] == [2900, 2901, 2902]
    keep = [c for c in fast.rows.column_names if c != "_ingested_at"]
    assert fast.rows.num_rows == 2900 and fast.rows.select(keep).equals(slow.rows.select(keep))
    assert set(fast.rows.column("_op").to_pylist()) == {"c", "u", "d"}
    assert "€uro" in fast.rows.column("currency").to_pylist()
    deletes = fast.rows.filter(pa.compute.equal(fast.rows["_op"], "d"))
    assert deletes.num_rows and deletes.column("customer_id").null_count == deletes.num_rows  # image: before
    assert debezium.SOURCE_FIELDS[0].name == "ts_ms"
