"""The ``pgoutput`` logical replication protocol (version 1), parsed into frozen dataclasses.

Only what change capture needs: Begin, Commit, Relation, Insert, Update, Delete, Truncate. Column
values arrive in text format; ``None`` is SQL NULL and :data:`UNCHANGED` marks an unchanged TOAST
value that the server did not send.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, Literal


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()
Value = str | None | _Unchanged
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in microseconds since the Unix epoch


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    typmod: int
    is_key: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    replica_identity: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_ts_us: int  # Unix epoch microseconds
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_ts_us: int


@dataclass(frozen=True)
class Change:
    kind: Literal["I", "U", "D"]
    relation: int
    old: tuple[Value, ...] | None  # key ('K') or full ('O') old row, when the server sends one
    new: tuple[Value, ...] | None
    old_is_key_only: bool = False


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]


Message = Begin | Commit | Relation | Change | Truncate | None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def byte(self) -> str:
        self.pos += 1
        return chr(self.data[self.pos - 1])

    def cstring(self) -> str:
        end = self.data.index(b"\0", self.pos)
        text = self.data[self.pos : end].decode()
        self.pos = end + 1
        return text

    def tuple_data(self) -> tuple[Value, ...]:
        values: list[Value] = []
        for _ in range(self.take("!h")):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind in ("t", "b"):
                size = self.take("!i")
                values.append(self.data[self.pos : self.pos + size].decode())
                self.pos += size
            else:
                raise ValueError(f"pgoutput: unknown tuple value kind {kind!r}")
        return tuple(values)


def parse(data: bytes) -> Message:
    """One pgoutput message; ``None`` for kinds change capture ignores (Origin, Type, Message)."""
    r = _Reader(data)
    kind = r.byte()
    if kind == "B":
        return Begin(r.take("!Q"), r.take("!q") + PG_EPOCH_US, r.take("!I"))
    if kind == "C":
        r.take("!b")
        return Commit(r.take("!Q"), r.take("!Q"), r.take("!q") + PG_EPOCH_US)
    if kind == "R":
        oid, schema, name, identity = r.take("!I"), r.cstring(), r.cstring(), r.byte()
        columns = []
        for _ in range(r.take("!h")):
            flags = r.take("!b")
            columns.append(Column(r.cstring(), r.take("!I"), r.take("!i"), bool(flags & 1)))
        return Relation(oid, schema, name, identity, tuple(columns))
    if kind == "I":
        oid = r.take("!I")
        r.byte()  # 'N'
        return Change("I", oid, None, r.tuple_data())
    if kind == "U":
        oid = r.take("!I")
        marker = r.byte()
        old = None
        if marker in ("K", "O"):
            old = r.tuple_data()
            r.byte()  # 'N'
        return Change("U", oid, old, r.tuple_data(), old_is_key_only=marker == "K")
    if kind == "D":
        oid = r.take("!I")
        marker = r.byte()
        return Change("D", oid, r.tuple_data(), None, old_is_key_only=marker == "K")
    if kind == "T":
        count = r.take("!i")
        r.take("!b")
        return Truncate(tuple(r.take("!I") for _ in range(count)))
    return None


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)
