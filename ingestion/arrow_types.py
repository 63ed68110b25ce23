"""Arrow type helpers shared by the decoders: what Delta can store, and conforming to a table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# The types pyarrow.json can produce straight from JSON text when given as explicit types.
_JSON_NATIVE = (
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_boolean,
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_decimal,
    pa.types.is_timestamp,
)


def json_parse_type(dtype: pa.DataType) -> pa.DataType | None:
    """The type to ask pyarrow.json for so that it yields ``dtype`` (None: let it infer)."""
    if pa.types.is_struct(dtype):
        fields = [(f.name, json_parse_type(f.type)) for f in dtype]
        return pa.struct([pa.field(n, t) for n, t in fields if t is not None])
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = json_parse_type(dtype.value_type)
        return pa.list_(inner) if inner is not None else None
    if any(check(dtype) for check in _JSON_NATIVE):
        return dtype
    return None


def parse_schema(schema: pa.Schema | None, *, skip: frozenset[str] = frozenset()) -> pa.Schema | None:
    if schema is None:
        return None
    fields = []
    for f in schema:
        if f.name in skip:
            continue
        t = json_parse_type(f.type)
        if t is not None:
            fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def storable(dtype: pa.DataType) -> pa.DataType | None:
    """A Delta-storable version of an inferred type; None drops the field.

    Null-typed fields (always null so far) and empty structs are dropped: the column appears when a
    value arrives. Timestamps are stored as microseconds in UTC, unsigned integers as int64.
    """
    if pa.types.is_null(dtype):
        return None
    if pa.types.is_struct(dtype):
        fields = [(f.name, storable(f.type)) for f in dtype]
        kept = [pa.field(n, t) for n, t in fields if t is not None]
        return pa.struct(kept) if kept else None
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = storable(dtype.value_type)
        return pa.list_(inner) if inner is not None else None
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("us", tz=dtype.tz or "UTC")
    if pa.types.is_unsigned_integer(dtype):
        return pa.int64()
    return dtype


def make_storable(table: pa.Table) -> pa.Table:
    """Drop unstorable fields and fix types Delta cannot hold."""
    columns, fields = [], []
    for f, col in zip(table.schema, table.columns, strict=True):
        target = storable(f.type)
        if target is None:
            continue
        if not target.equals(f.type):
            col = _cast_nested(col, target)
        columns.append(col)
        fields.append(pa.field(f.name, target))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def timestamps_as_strings(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(dtype):
        return pa.string()
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, timestamps_as_strings(f.type)) for f in dtype])
    if pa.types.is_list(dtype):
        return pa.list_(timestamps_as_strings(dtype.value_type))
    return dtype


def _cast_nested(col: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """Cast, dropping struct children that the target no longer has."""
    if pa.types.is_struct(target) and pa.types.is_struct(col.type):
        chunks = []
        for chunk in col.chunks:
            children = [
                _cast_nested(pa.chunked_array([chunk.field(f.name)]), f.type).combine_chunks()
                if chunk.type.get_field_index(f.name) >= 0
                else pa.nulls(len(chunk), f.type)
                for f in target
            ]
            chunks.append(
                pa.StructArray.from_arrays(
                    children,
                    fields=list(target),
                    mask=pc.invert(chunk.is_valid()) if chunk.null_count else None,
                )
            )
        return pa.chunked_array(chunks, type=target)
    return pc.cast(col, target)


class SchemaConflict(ValueError):
    """A value whose type cannot land in its column without changing it (text as a number, a
    number as text, a timestamp as a date): the record is a dead letter with stage ``schema``."""


def _family(dtype: pa.DataType) -> str:
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "text"
    if pa.types.is_date(dtype) or pa.types.is_timestamp(dtype):
        return "time"
    return str(dtype) if not (pa.types.is_struct(dtype) or pa.types.is_list(dtype)) else "nested"


def castable(have: pa.DataType, want: pa.DataType) -> bool:
    """Whether values of ``have`` may land in a ``want`` column: never across kinds (text is
    never read as a number, nor a number written as text), never a timestamp into a date; within
    numbers the cast itself refuses anything that does not fit exactly (overflow, a fraction)."""
    if pa.types.is_null(have) or have.equals(want):
        return True
    if pa.types.is_timestamp(have) and pa.types.is_date(want):
        return False
    return _family(have) == _family(want)


_INT_BITS = {pa.int8(): 8, pa.int16(): 16, pa.int32(): 32, pa.int64(): 64}


def widens(have: pa.DataType, want: pa.DataType) -> bool:
    """Whether ``have`` holds every value of ``want`` exactly and is wider: the table's column
    evolves to ``have`` (a source's ``ALTER … TYPE`` to a wider type) instead of refusing records.
    Integers to wider integers or to a double, float to double, a decimal with more precision (or
    more scale, as long as the integer digits still fit), a date to a timestamp."""
    if have.equals(want):
        return False
    if want in _INT_BITS:
        return (have in _INT_BITS and _INT_BITS[have] > _INT_BITS[want]) or pa.types.is_float64(have)
    if pa.types.is_float32(want):
        return pa.types.is_float64(have)
    if pa.types.is_decimal(want) and pa.types.is_decimal(have):
        return have.scale >= want.scale and have.precision - have.scale >= want.precision - want.scale
    return pa.types.is_date(want) and pa.types.is_timestamp(have)


def widenings(table: pa.Schema, rows: pa.Schema) -> dict[str, pa.DataType]:
    """The columns of ``table`` that ``rows`` brings in a wider type (see :func:`widens`)."""
    names = set(table.names)
    return {f.name: f.type for f in rows if f.name in names and widens(f.type, table.field(f.name).type)}


def unify(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for ``schemas``: new columns added, and a column in two types that one widens
    (:func:`widens`) in the wider one; otherwise Arrow's permissive promotion."""
    wider: dict[str, pa.DataType] = {}
    for schema in schemas:
        for f in schema:
            if f.name not in wider or widens(f.type, wider[f.name]):
                wider[f.name] = f.type
    adjusted = [pa.schema([f.with_type(wider[f.name]) if widens(wider[f.name], f.type) else f for f in schema])
                for schema in schemas]  # fmt: skip
    return pa.unify_schemas(adjusted, promote_options="permissive")


def concat(tables: list[pa.Table]) -> tuple[pa.Table, dict[int, str]]:
    """Tables of one batch as one, in the :func:`unify` schema (a widened column cast up), and the
    rows left out (positions in the tables' order) whose values that schema cannot hold exactly,
    with why: a bigint beyond 2**53 in a column another record widened to a double. Those are
    conflicts, never rounded."""
    if len(tables) == 1:
        return tables[0], {}
    schema = unify([t.schema for t in tables])
    out, misfits, at = [], {}, 0
    for table in tables:
        kept, bad = conform_rows(table, schema)
        out.append(kept)
        misfits.update({at + i: error for i, error in bad.items()})
        at += table.num_rows
    return pa.concat_tables(out, promote_options="permissive"), misfits


def conform_rows(table: pa.Table, schema: pa.Schema, *, narrow: bool = False) -> tuple[pa.Table, dict[int, str]]:
    """:func:`conform`, and the rows that cannot be (left out of the result), by position, with why."""
    try:
        return conform(table, schema, narrow=narrow), {}
    except (SchemaConflict, pa.ArrowInvalid):
        pass
    keep, misfits = [], {}
    for i in range(table.num_rows):  # the rare table that does not fit: row by row
        try:
            conform(table.slice(i, 1), schema, narrow=narrow)
            keep.append(i)
        except (SchemaConflict, pa.ArrowInvalid) as exc:
            misfits[i] = f"SchemaConflict: {exc}"
    return conform(table.take(pa.array(keep, pa.int64())), schema, narrow=narrow), misfits


def _numeric(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def _number_cast(col: pa.ChunkedArray, want: pa.DataType, *, safe: bool = True) -> pa.ChunkedArray:
    """A number column in another number type: into a decimal from an integer or a double, and from
    a decimal into a double, through the shortest text (exact; raises where a decimal cannot hold
    the value); otherwise Arrow's cast (a decimal into an integer refuses a fraction)."""
    have = col.type
    if (pa.types.is_decimal(want) and not pa.types.is_decimal(have)) or (
        pa.types.is_decimal(have) and pa.types.is_floating(want)
    ):
        return pc.cast(pc.cast(col, pa.string()), want)
    return pc.cast(col, want, safe=safe)


def conform(table: pa.Table, target: pa.Schema | None, *, narrow: bool = False) -> pa.Table:
    """Cast columns the target table already has to its types (:class:`SchemaConflict` if a value
    cannot land there without changing it). A wider column is kept for the table to evolve, unless
    ``narrow`` (the table refused to): then cast exactly. A number cast to another number type (an
    integer or a decimal to a double, a double to a decimal) must come back the same. Between a
    decimal and another number type the value goes through its shortest text, never through Arrow's
    direct casts, which round silently (``2.555`` into ``decimal(12, 2)`` is ``2.56``) or are not
    correctly rounded (``decimal 19.99`` is ``19.990000000000002``)."""
    if target is None:
        return table
    cast = _cast(table, target, narrow=narrow)
    for f in table.schema:
        if f.name in target.names and _numeric(f.type) and _numeric(cast[f.name].type) and cast[f.name].type != f.type:
            have = table[f.name]
            want = target.field(f.name).type
            inexact = SchemaConflict(f"schema: column {f.name!r} is {want} here, a {f.type} value has no exact {want}")
            try:
                back = _number_cast(cast[f.name], f.type, safe=False)
            except pa.ArrowInvalid:  # it does not even come back
                raise inexact from None
            same = pc.or_kleene(pc.is_null(have), pc.equal(back, have))
            if pa.types.is_floating(f.type):  # NaN stays NaN
                same = pc.or_kleene(same, pc.and_(pc.is_nan(back), pc.is_nan(have)))
            if pc.all(pc.fill_null(same, False)).as_py() is False:  # None: no rows
                raise inexact
    return cast


def _cast(table: pa.Table, target: pa.Schema, *, narrow: bool = False) -> pa.Table:
    names = set(target.names)
    columns = []
    for f, col in zip(table.schema, table.columns, strict=True):
        if f.name in names:
            want = target.field(f.name).type
            if not want.equals(f.type) and col.null_count == len(col):  # nulls (or no rows) fit any type
                col = pa.chunked_array([pa.nulls(len(col), want)])
            elif not want.equals(f.type) and (narrow or not widens(f.type, want)):  # wider: the table evolves
                if not castable(f.type, want):
                    raise SchemaConflict(f"schema: column {f.name!r} is {want} in the table, the record has {f.type}")
                try:
                    both = _numeric(f.type) and _numeric(want)
                    col = _number_cast(col, want) if both else _cast_nested(col, _merge_struct(want, f.type))
                except (pa.ArrowInvalid, OverflowError) as exc:  # a value that does not fit: name the column
                    raise SchemaConflict(f"schema: column {f.name!r} is {want} in the table: {exc}") from None
        columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _merge_struct(want: pa.DataType, have: pa.DataType) -> pa.DataType:
    """The table's struct type plus any new children the batch brought (schema evolution)."""
    if pa.types.is_struct(want) and pa.types.is_struct(have):
        fields = [
            pa.field(
                f.name,
                _merge_struct(f.type, have.field(f.name).type) if have.get_field_index(f.name) >= 0 else f.type,
            )
            for f in want
        ]
        known = set(want.names)
        fields += [f for f in have if f.name not in known]
        return pa.struct(fields)
    return want
