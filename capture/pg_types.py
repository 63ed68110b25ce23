"""PostgreSQL values (their text form, as ``pgoutput`` and the snapshot read them) as Debezium's
PostgreSQL connector encodes them in JSON, with the Connect schema of each type: ``numeric(p,s)``
as ``Decimal`` bytes, ``date`` as days, ``timestamp`` as ``MicroTimestamp``, ``timestamptz`` as an
ISO ``ZonedTimestamp`` in UTC, ``time`` as ``MicroTime``, ``timetz`` as ``ZonedTime``, ``interval``
as ``MicroDuration``, arrays of simple types as Connect arrays, ``uuid`` and ``json(b)`` as named
strings. Types not named here are sent as their text."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from decimal import Context, Decimal
from functools import lru_cache
from typing import Any

from lakeport.ingestion.connect_types import duration_micros
from lakeport.ingestion.records import UNAVAILABLE, UNAVAILABLE_UUID
from lakeport.ingestion.records import UNAVAILABLE_B64 as UNAVAILABLE_BYTES  # bytea, precise decimals: in JSON

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)
Convert = Callable[[str], Any]


_INSTANT = re.compile(
    r"(\d{4,})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?"
    r"(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)?( BC)?"
)
_DAY_US = 86_400_000_000


def _epoch_days(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 of a proleptic Gregorian date (astronomical year: 1 BC is 0)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def _civil(days: int) -> tuple[int, int, int]:
    """The proleptic Gregorian (astronomical year, month, day) of days from 1970-01-01."""
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, doy - (153 * mp + 2) // 5 + 1


def _instant(text: str) -> int | None:
    """PostgreSQL's ISO text of a date or timestamp (with or without offset; BC and years beyond
    9999 too, which Python's datetime cannot hold) as microseconds from the epoch in UTC; None for
    ``±infinity``, which Debezium's types cannot carry."""
    if text in ("infinity", "-infinity"):
        return None
    found = _INSTANT.fullmatch(text)
    if found is None:
        raise ValueError(f"not an ISO date or timestamp: {text!r}")
    y, mo, d, h, mi, sec, frac, sign, oh, om, os_, bc = found.groups()
    year = 1 - int(y) if bc else int(y)
    micros = _epoch_days(year, int(mo), int(d)) * _DAY_US
    micros += ((int(h or 0) * 60 + int(mi or 0)) * 60 + int(sec or 0)) * 1_000_000 + int((frac or "").ljust(6, "0"))
    offset = (int(oh or 0) * 60 + int(om or 0)) * 60 + int(os_ or 0)
    return micros - (offset if sign == "+" else -offset) * 1_000_000


def _timestamp_us(text: str) -> int | None:
    return _instant(text)


def _days(text: str) -> int | None:
    micros = _instant(text)
    return None if micros is None else micros // _DAY_US


def _zoned(text: str) -> str | None:
    """``timestamptz`` as Debezium's ``ZonedTimestamp`` in UTC with six fraction digits, years as
    Java writes them (``-0043-03-15T12:00:00.000000Z`` for 44 BC, ``+10000-01-01T…``)."""
    micros = _instant(text)
    if micros is None:
        return None
    days, rest = divmod(micros, _DAY_US)
    year, month, day = _civil(days)
    seconds, fraction = divmod(rest, 1_000_000)
    shown = f"+{year}" if year > 9999 else f"-{-year:04d}" if year < 0 else f"{year:04d}"
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{shown}-{month:02d}-{day:02d}T{clock}.{fraction:06d}Z"


def _float(text: str) -> float | None:
    value = float(text)
    return None if value != value or value in (float("inf"), float("-inf")) else value  # JSON has no NaN/inf


_EXACT = Context(prec=1000)  # the default context rounds to 28 digits


def _decimal_bytes(scale: int) -> Convert:
    def convert(text: str) -> str | None:
        if text in ("NaN", "Infinity", "-Infinity"):  # no Decimal holds them: null (reconcile reports it)
            return None
        unscaled = int(Decimal(text).scaleb(scale, context=_EXACT).to_integral_value(context=_EXACT))
        size = max(1, (unscaled.bit_length() + 8) // 8)
        return base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode()

    return convert


def _bytea(text: str) -> str:
    return base64.b64encode(bytes.fromhex(text[2:] if text.startswith("\\x") else text)).decode()


def _micro_time(text: str) -> int:
    """``time`` as Debezium's ``MicroTime``: microseconds since midnight (``24:00:00`` included)."""
    hours, minutes, seconds = text.split(":")
    return (int(hours) * 3600 + int(minutes) * 60) * 1_000_000 + round(Decimal(seconds) * 1_000_000)


def _zoned_time(text: str) -> str:
    """``timetz`` as Debezium's ``ZonedTime``: the time in UTC, ``11:45:07.5Z``."""
    day = dt.date(2000, 1, 3)
    if text.startswith("24:00:00"):  # the end of the day, valid in PostgreSQL: midnight of the next
        text, day = "00:00:00" + text[len("24:00:00") :], day + dt.timedelta(days=1)
    moved = dt.datetime.combine(day, dt.time.fromisoformat(text)).astimezone(dt.UTC).time()
    fraction = f"{moved.microsecond:06d}".rstrip("0")
    return moved.strftime("%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def pg_array(text: str) -> list[Any]:
    """PostgreSQL's array text (``{a,"b c",NULL,{1,2}}``) as nested lists of element texts; the
    bounds of an array not starting at 1 (``[0:1]={1,2}``) are left out, as Debezium does."""
    if text.startswith("["):
        text = text[text.index("=") + 1 :]
    values, end = _array_at(text, 0)
    if end != len(text):
        raise ValueError(f"not an array literal: {text[:40]!r}")
    return values


def _array_at(text: str, i: int) -> tuple[list[Any], int]:
    """The array starting at ``text[i]`` (a ``{``) and the index just past its ``}``."""
    if text[i] != "{":
        raise ValueError(f"not an array literal: {text[:40]!r}")
    out: list[Any] = []
    i += 1
    while text[i] != "}":
        value: Any
        if text[i] == "{":
            value, i = _array_at(text, i)
        elif text[i] == '"':
            chars, i = [], i + 1
            while text[i] != '"':
                i += text[i] == "\\"  # a backslash escapes the next character
                chars.append(text[i])
                i += 1
            value, i = "".join(chars), i + 1
        else:
            end = min(j for j in (text.find(",", i), text.find("}", i), len(text)) if j >= 0)
            value = None if text[i:end] == "NULL" else text[i:end]
            i = end
        out.append(value)
        i += text[i] == ","
    return out, i + 1


_ARRAYS = {1000: 16, 1005: 21, 1007: 23, 1016: 20, 1021: 700, 1022: 701, 1009: 25, 1015: 1043, 1014: 1042, 2951: 2950,
           199: 114, 3807: 3802}  # fmt: skip  # array type -> element type, where Debezium sends a Connect array


def _array(element: Convert) -> Convert:
    def convert(text: str) -> list[Any]:
        return _elements(pg_array(text), element)

    return convert


def _elements(values: list[Any], element: Convert) -> list[Any]:
    return [None if v is None else _elements(v, element) if isinstance(v, list) else element(v) for v in values]


def unavailable(schema: dict[str, Any]) -> Any:
    """Debezium's placeholder for an unchanged TOAST value of a column of this Connect schema: the
    text; its bytes (base64) in a bytes column; in an array, a list of the text, of its bytes as
    numbers in an integer array, or of its name-based UUID in a uuid array."""
    if schema["type"] == "bytes":
        return UNAVAILABLE_BYTES
    if schema["type"] == "array":  # numbers: the placeholder's bytes as numbers, as Debezium does for integers
        if schema["items"].get("name") == "io.debezium.data.Uuid":
            return [UNAVAILABLE_UUID]
        number = schema["items"]["type"].startswith(("int", "float", "double"))
        return list(UNAVAILABLE.encode()) if number else [UNAVAILABLE]
    return UNAVAILABLE


@lru_cache(maxsize=1024)
def column_type(type_oid: int, typmod: int) -> tuple[dict[str, Any], Convert]:
    """(Connect schema of the field, text → JSON value) for a PostgreSQL type."""
    simple: dict[int, tuple[str, Convert]] = {
        16: ("boolean", lambda t: t in ("t", "true")),  # output function: t; ::text cast: true
        20: ("int64", int),
        21: ("int16", int),
        23: ("int32", int),
        26: ("int64", int),
        700: ("float", _float),
        701: ("double", _float),
    }
    if type_oid in simple:
        kind, convert = simple[type_oid]
        return {"type": kind}, convert
    named: dict[int, tuple[str, str, Convert]] = {
        1082: ("int32", "io.debezium.time.Date", _days),
        1083: ("int64", "io.debezium.time.MicroTime", _micro_time),
        1266: ("string", "io.debezium.time.ZonedTime", _zoned_time),
        1186: ("int64", "io.debezium.time.MicroDuration", duration_micros),  # a month: 365.25 / 12 days
        1114: ("int64", "io.debezium.time.MicroTimestamp", _timestamp_us),
        1184: ("string", "io.debezium.time.ZonedTimestamp", _zoned),
        2950: ("string", "io.debezium.data.Uuid", str),
        114: ("string", "io.debezium.data.Json", str),
        3802: ("string", "io.debezium.data.Json", str),
    }
    if type_oid in named:
        kind, name, convert = named[type_oid]
        return {"type": kind, "name": name, "version": 1}, convert
    if type_oid in _ARRAYS:
        items, element = column_type(_ARRAYS[type_oid], typmod)
        return {"type": "array", "items": {**items, "optional": True}}, _array(element)
    if type_oid == 1700 and typmod >= 4:  # the scale is 11 bits, signed (numeric(5,-2) since PostgreSQL 15)
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0x7FF
        scale = scale - 0x800 if scale & 0x400 else scale
        params = {"scale": str(scale), "connect.decimal.precision": str(precision)}
        return {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": params}, (
            _decimal_bytes(scale)
        )
    if type_oid == 17:
        return {"type": "bytes"}, _bytea
    return {"type": "string"}, str  # text, varchar, char, unconstrained numeric (as a string), the rest
