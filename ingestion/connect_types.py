"""Kafka Connect's schema types and Debezium's logical types, decoded exactly.

A wrapped change event's Connect schema gives the row image's Arrow parse type and, per column, a
conversion of what the JSON converter sent into what lands (the README has the same table):

- ``Decimal`` (``decimal.handling.mode: precise``, base64 of the unscaled integer): ``decimal(p, s)``
  built from the unscaled integer, never rounded; scale above precision (``numeric(5,6)``):
  ``decimal(s, s)``; a negative scale (``numeric(5,-2)``): ``decimal(p - s, 0)``; precision above 38
  (Delta's limit): the exact decimal as text.
- ``VariableScaleDecimal`` (``numeric`` without precision, ``{scale, value}``): the exact decimal
  as text (no bound on its digits or scale).
- ``Date`` (days): ``date``. ``Timestamp``/``MicroTimestamp``/``NanoTimestamp`` (epoch ms/µs/ns)
  and ``ZonedTimestamp`` (ISO text): ``timestamp`` in µs, UTC.
- ``Time``/``MicroTime``/``NanoTime`` (ms/µs/ns after midnight): ``HH:MM:SS.ffffff`` text (Delta has
  no time type; ``CAST(x AS TIME)`` in DuckDB). ``ZonedTime``: as sent (``HH:MM:SS.ffffffZ``).
- ``MicroDuration`` (µs): an exact ISO-8601 duration, ``P2DT1H2M3.000004S`` (Delta has no interval
  type). ``Interval`` (``interval.handling.mode: string``): as sent.

The unchanged-TOAST placeholder in a bytes-based column (a decimal) cannot be converted: the value
becomes null and the row lists the column in ``_toast_unavailable``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakeport.ingestion.records import TOAST_MARKS, UNAVAILABLE_B64

Conversion = Callable[[pa.ChunkedArray], pa.ChunkedArray]
MAX_DECIMAL_DIGITS = 38  # Delta's decimal
_CONNECT_TYPES = {
    "int8": pa.int64(),
    "int16": pa.int64(),
    "int32": pa.int64(),
    "int64": pa.int64(),
    "float32": pa.float64(),
    "float64": pa.float64(),
    "float": pa.float64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "bytes": pa.string(),
}


def exact_decimal(unscaled: int, scale: int) -> Decimal:
    """``unscaled * 10**-scale`` exactly, whatever the number of digits (no context rounding)."""
    sign, digits = (1 if unscaled < 0 else 0), tuple(int(d) for d in str(abs(unscaled)))
    return Decimal((sign, digits, -scale))


def _unscaled(text: str) -> int:
    return int.from_bytes(base64.b64decode(text), "big", signed=True)


def decimal_type(precision: int, scale: int) -> pa.DataType:
    """The Arrow type that holds every ``numeric(precision, scale)`` value exactly."""
    if scale < 0:
        precision, scale = precision - scale, 0
    precision = max(precision, scale, 1)
    return pa.decimal128(precision, scale) if precision <= MAX_DECIMAL_DIGITS else pa.string()


def _decimal(scale: int, precision: int) -> Conversion:
    target = decimal_type(precision, scale)
    as_text = pa.types.is_string(target)
    shift = 10 ** -min(scale, 0)  # a negative scale: the value is an integer; a decimal(p, 0) holds it

    def convert(col: pa.ChunkedArray) -> pa.ChunkedArray:
        out: list[object] = []
        for v in col.to_pylist():
            if v is None:
                out.append(None)
                continue
            value = exact_decimal(_unscaled(v) * shift, max(scale, 0))  # exact: no 28-digit context
            out.append(format(value, "f") if as_text else value)
        return pa.chunked_array([pa.array(out, target)])

    return convert


def _variable_decimal(col: pa.ChunkedArray) -> pa.ChunkedArray:
    out = [None if v is None or v.get("value") is None else format(exact_decimal(_unscaled(v["value"]),
           int(v.get("scale") or 0)), "f") for v in col.to_pylist()]  # fmt: skip
    return pa.chunked_array([pa.array(out, pa.string())])


def _epoch(unit: str) -> Conversion:
    return lambda col: col.cast(pa.timestamp(unit, tz="UTC")).cast(pa.timestamp("us", tz="UTC"), safe=False)


def _days(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return col.cast(pa.int32()).cast(pa.date32())


def _zoned(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return col.cast(pa.timestamp("us", tz="UTC"))


def _time_of_day(per_second: int) -> Conversion:
    def convert(col: pa.ChunkedArray) -> pa.ChunkedArray:
        out: list[str | None] = []
        for v in col.to_pylist():
            if v is None:
                out.append(None)
                continue
            micros = v * 1_000_000 // per_second
            if micros >= 86_400_000_000:  # PostgreSQL's 24:00:00
                out.append("24:00:00.000000")
                continue
            t = (dt.datetime.min + dt.timedelta(microseconds=micros)).time()
            out.append(t.isoformat(timespec="microseconds"))
        return pa.chunked_array([pa.array(out, pa.string())])

    return convert


def iso_duration(micros: int) -> str:
    """Microseconds as an exact ISO-8601 duration: 3723000004 → ``PT1H2M3.000004S``."""
    sign, micros = ("-" if micros < 0 else ""), abs(micros)
    days, rest = divmod(micros, 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if fraction:
        time += f"{seconds}.{fraction:06d}S"
    elif seconds or not (days or time):
        time += f"{seconds}S"
    return f"{sign}P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


_MONTH_US = 2_629_800_000_000  # Debezium's average month, 365.25 / 12 days, in microseconds
_US = {"Y": 12 * _MONTH_US, "M": _MONTH_US, "W": 7 * 86_400 * 10**6, "D": 86_400 * 10**6}
_ISO_PART = re.compile(r"([-+]?\d+(?:\.\d+)?)([YMWDHS])")
_PG_PART = re.compile(r"([-+]?\d+)\s+(year|mon|day)s?|([-+])?(\d+):(\d\d):(\d\d(?:\.\d+)?)")


def duration_micros(text: str) -> int | None:
    """An interval as exact microseconds, months counted as Debezium's ``MicroDuration`` counts
    them (365.25 / 12 days), from any interval text (None: not one): ISO 8601 (Lakeport's
    ``P2DT1H2M3.000004S``, Debezium's string mode and PostgreSQL's ``iso_8601`` style, ``P1Y2M3DT4H``)
    or PostgreSQL's default style (``1 year 2 mons 3 days 04:05:06.5``)."""
    text = text.strip()
    negative = text.startswith("-P")
    total = Fraction(0)
    if text.lstrip("-").startswith("P"):
        date, _, time = text.lstrip("-")[1:].partition("T")
        for part, units in ((date, _US), (time, {"H": 3_600 * 10**6, "M": 60 * 10**6, "S": 10**6})):
            if _ISO_PART.sub("", part):
                return None  # not a duration this reads
            for number, unit in _ISO_PART.findall(part):
                if unit not in units:
                    return None
                total += Fraction(number) * units[unit]
    else:
        if _PG_PART.sub("", text).strip() or not text:
            return None
        for number, unit, sign, hours, minutes, seconds in _PG_PART.findall(text):
            if unit:
                total += int(number) * {"year": _US["Y"], "mon": _US["M"], "day": _US["D"]}[unit]
            else:
                clock = (int(hours) * 3_600 + int(minutes) * 60) * 10**6 + Fraction(seconds) * 10**6
                total += -clock if sign == "-" else clock
    return round(-total if negative else total)


def _duration(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array([None if v is None else iso_duration(v) for v in col.to_pylist()], pa.string())])


_SIMPLE: dict[str, Conversion] = {
    "io.debezium.time.Date": _days,
    "org.apache.kafka.connect.data.Date": _days,
    "io.debezium.time.Timestamp": _epoch("ms"),
    "org.apache.kafka.connect.data.Timestamp": _epoch("ms"),
    "io.debezium.time.MicroTimestamp": _epoch("us"),
    "io.debezium.time.NanoTimestamp": _epoch("ns"),
    "io.debezium.time.ZonedTimestamp": _zoned,
    "io.debezium.time.Time": _time_of_day(1_000),
    "org.apache.kafka.connect.data.Time": _time_of_day(1_000),
    "io.debezium.time.MicroTime": _time_of_day(1_000_000),
    "io.debezium.time.NanoTime": _time_of_day(1_000_000_000),
    "io.debezium.time.MicroDuration": _duration,
    "io.debezium.data.VariableScaleDecimal": _variable_decimal,
}


def _logical(spec: dict) -> Conversion | None:
    name = spec.get("name") or ""
    if name == "org.apache.kafka.connect.data.Decimal":
        params = spec.get("parameters") or {}
        precision = int(params.get("connect.decimal.precision", MAX_DECIMAL_DIGITS))
        return _decimal(int(params.get("scale", 0)), precision)
    return _SIMPLE.get(name)


def _connect_type(spec: dict) -> pa.DataType | None:
    kind = spec.get("type")
    if kind == "struct":
        fields = [(f["field"], _connect_type(f)) for f in spec.get("fields", [])]
        return pa.struct([pa.field(n, t) for n, t in fields if t is not None])
    if kind == "array" and isinstance(spec.get("items"), dict):
        inner = _connect_type(spec["items"])
        return pa.list_(inner) if inner is not None else None
    return _CONNECT_TYPES.get(str(kind))


@lru_cache(maxsize=256)
def connect_row(schema_json: bytes) -> tuple[pa.StructType, tuple[tuple[str, Conversion], ...]]:
    """Parse types and logical conversions of the row image from an envelope's Connect schema."""
    schema = json.loads(schema_json)
    fields = {f.get("field"): f for f in schema.get("fields", []) if isinstance(f, dict)}
    image = fields.get("after") or fields.get("before")
    if image is None or image.get("type") != "struct":
        raise ValueError("wrapper schema has no 'after'/'before' struct")
    row = _connect_type(image)
    conversions = tuple((f["field"], conv) for f in image.get("fields", []) if (conv := _logical(f)) is not None)
    assert isinstance(row, pa.StructType)
    return row, conversions


def apply_logical(table: pa.Table, conversions: tuple[tuple[str, Conversion], ...]) -> pa.Table:
    """Convert logical types. A column holding the unchanged-TOAST placeholder cannot carry it as
    its type (a decimal), so the value becomes null and the row lists the column in
    ``_toast_unavailable``, for silver and history to keep the previous value."""
    marked: list[tuple[str, np.ndarray]] = []
    for name, convert in conversions:
        if name in table.column_names:
            i = table.column_names.index(name)
            column = table[name]
            if pa.types.is_string(column.type):
                hit = pc.fill_null(pc.equal(column, UNAVAILABLE_B64), False)
                if pc.any(hit).as_py():
                    marked.append((name, hit.to_numpy(zero_copy_only=False)))
                    column = pc.if_else(hit, pa.scalar(None, column.type), column)
            table = table.set_column(i, name, convert(column))
    if marked:
        lists = [[name for name, hit in marked if hit[row]] or None for row in range(table.num_rows)]
        table = table.append_column(TOAST_MARKS, pa.array(lists, pa.list_(pa.string())))
    return table
