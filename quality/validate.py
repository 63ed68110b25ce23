"""Run a suite on a snapshot with Great Expectations and turn GX's results into plain outcomes.

Rules map to GX expectations on one pandas frame of the snapshot. Cross-row rules GX cannot
state on one frame are prepared as derived columns first: a reference becomes ``__orphan__<rule>``
(the value when it is missing from the referenced table, else null) and bronze uniqueness
``__dup__<rule>`` (the key when it occurs more than once in the whole table); both are then
``expect_column_values_to_be_null``, so the unexpected values are the offending keys. The schema
rule and dead letters are checked on Arrow metadata directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakeport.quality import gx_context
from lakeport.quality.snapshot import Snapshot
from lakeport.quality.suites import Suite
from lakeport.settings.quality import QualityRule


@dataclass(frozen=True)
class Outcome:
    expectation: str  # the rule's label
    kind: str  # GX expectation type (or lakeport's own for schema / dead letters)
    severity: str
    success: bool
    column: str | None = None
    observed: str | None = None  # JSON
    unexpected_count: int = 0
    element_count: int = 0
    sample_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    """What a suite needs besides its snapshot: referenced keys and whole-table key duplicates."""

    references: Mapping[str, pa.Array]  # rule label -> keys of the referenced table
    duplicates: Mapping[str, pa.Array]  # rule label -> keys seen more than once in the whole table
    totals: Mapping[str, float | None] = field(default_factory=dict)  # rule label -> expected sum
    tolerance: float = 0.0
    sample_size: int = 5


def _kind(t: pa.DataType) -> str:
    checks = [
        (pa.types.is_string, "string"), (pa.types.is_large_string, "string"), (pa.types.is_string_view, "string"),
        (pa.types.is_integer, "integer"), (pa.types.is_floating, "float"), (pa.types.is_decimal, "decimal"),
        (pa.types.is_boolean, "boolean"), (pa.types.is_timestamp, "timestamp"), (pa.types.is_date, "date"),
        (pa.types.is_binary, "binary"), (pa.types.is_large_binary, "binary"),
    ]  # fmt: skip
    return next((name for test, name in checks if test(t)), str(t))


def key_strings(table: pa.Table, columns: list[str]) -> pa.Array:
    """One string per row naming its key (``a|b`` for compound keys; null if any part is null)."""
    parts = [pc.cast(table[c], pa.string()) for c in columns]
    return parts[0].combine_chunks() if len(parts) == 1 else pc.binary_join_element_wise(*parts, "|").combine_chunks()


def _derive(rows: pa.Table, rule: QualityRule, ctx: Context) -> tuple[str, pa.Array] | None:
    if rule.expect == "references" and rule.column in rows.column_names:
        refs = pc.cast(ctx.references.get(rule.label, pa.array([], pa.string())), pa.string())
        values = pc.cast(rows[rule.column], pa.string())
        missing = pc.and_(pc.invert(pc.is_in(values, value_set=refs)), pc.is_valid(values))
        return f"__orphan__{rule.label}", pc.if_else(missing, values, pa.nulls(rows.num_rows, pa.string()))
    if rule.expect == "unique" and rule.label in ctx.duplicates and set(rule.targets) <= set(rows.column_names):
        keys = key_strings(rows, rule.targets)
        dup = pc.is_in(keys, value_set=pc.cast(ctx.duplicates[rule.label], pa.string()))
        return f"__dup__{rule.label}", pc.if_else(dup, keys, pa.nulls(rows.num_rows, pa.string()))
    return None


def _expectations(rule: QualityRule, rows: pa.Table, snap: Snapshot, ctx: Context) -> list[tuple[str, Any]]:
    import great_expectations as gx

    E = gx.expectations
    meta = {"severity": rule.severity}
    many = len(rule.targets) > 1
    if rule.expect == "not_null":
        return [(f"{rule.label}.{c}" if many else rule.label, E.ExpectColumnValuesToNotBeNull(column=c, meta=meta))
                for c in rule.targets]  # fmt: skip
    if rule.expect == "references" or (rule.expect == "unique" and rule.label in ctx.duplicates):
        derived = f"__{'orphan' if rule.expect == 'references' else 'dup'}__{rule.label}"
        return [(rule.label, E.ExpectColumnValuesToBeNull(column=derived, meta=meta))]
    column = rule.column or ""
    if rule.expect == "unique":
        if many:
            return [(rule.label, E.ExpectCompoundColumnsToBeUnique(column_list=rule.targets, meta=meta))]
        return [(rule.label, E.ExpectColumnValuesToBeUnique(column=rule.targets[0], meta=meta))]
    if rule.expect == "between":
        return [(rule.label, E.ExpectColumnValuesToBeBetween(column=column, min_value=rule.min,
                                                             max_value=rule.max, meta=meta))]  # fmt: skip
    if rule.expect == "in_set":
        return [(rule.label, E.ExpectColumnValuesToBeInSet(column=column, value_set=rule.values, meta=meta))]
    if rule.expect == "row_count" and snap.offsets_advanced is not None:
        letters = snap.dead_letters.num_rows if snap.dead_letters is not None else 0
        expected = max(snap.offsets_advanced - letters, 0)
        low = math.floor(expected * (1 - ctx.tolerance))
        return [(rule.label, E.ExpectTableRowCountToBeBetween(min_value=low, max_value=expected, meta=meta))]
    return []


def _schema(rule: QualityRule, schema: pa.Schema) -> Outcome:
    actual = {f.name: _kind(f.type) for f in schema}
    wrong = {
        c: actual.get(c, "missing") for c, k in rule.types.items() if c not in actual or k not in ("any", actual[c])
    }
    observed = json.dumps({c: actual.get(c, "missing") for c in rule.types})
    return Outcome(rule.label, "expect_table_columns_and_types", rule.severity, not wrong, None, observed,
                   len(wrong), len(rule.types), tuple(f"{c}: {k}" for c, k in wrong.items()))  # fmt: skip


def _total(rule: QualityRule, rows: pa.Table, expected: float | None) -> Outcome:
    """sum(column) equals what ``rule.query`` computes from the layers below (to a cent in a million)."""
    column = rule.column or ""
    actual = pc.sum(pc.cast(rows[column], pa.float64())).as_py() if column in rows.column_names else None
    actual, want = float(actual or 0), float(expected or 0)
    ok = column in rows.column_names and abs(actual - want) <= max(1e-9 * abs(want), 0.005)
    observed = json.dumps({"sum": actual, "expected": want})
    return Outcome(rule.label, "expect_column_sum_to_match_query", rule.severity, ok, column, observed,
                   0 if ok else 1, rows.num_rows, ())  # fmt: skip


def _dead_letters(snap: Snapshot, sample: int) -> Outcome:
    letters = snap.dead_letters if snap.dead_letters is not None else pa.table({"_offset": pa.array([], pa.int64())})
    keys: tuple[str, ...] = ()
    if letters.num_rows:
        head = letters.slice(0, sample).to_pylist()
        keys = tuple(f"{r['_topic']}[{r['_partition']}]@{r['_offset']}: {str(r['error'])[:80]}" for r in head)
    return Outcome("no_new_dead_letters", "expect_no_new_dead_letters", "warn", letters.num_rows == 0, None,
                   str(letters.num_rows), letters.num_rows, letters.num_rows, keys)  # fmt: skip


def run_suite(suite: Suite, snap: Snapshot, ctx: Context, *, docs_dir: str) -> list[Outcome]:
    """Validate ``snap`` against ``suite``; one outcome per expectation (GX results, in rule order)."""
    rows = snap.rows
    outcomes: list[Outcome] = []
    planned: list[tuple[str, Any]] = []
    for rule in suite.rules:
        if rule.expect == "columns":
            outcomes.append(_schema(rule, rows.schema))
            continue
        if rule.expect == "total":
            outcomes.append(_total(rule, rows, ctx.totals.get(rule.label)))
            continue
        derived = _derive(rows, rule, ctx)
        if derived is not None:
            rows = rows.append_column(*derived)
        planned += _expectations(rule, rows, snap, ctx)
    if suite.layer == "bronze":
        outcomes.append(_dead_letters(snap, ctx.sample_size))
    if planned:
        outcomes = _run_gx(suite, rows, planned, ctx, docs_dir) + outcomes
    return outcomes


def _run_gx(suite: Suite, rows: pa.Table, planned: list[tuple[str, Any]], ctx: Context, docs_dir: str) -> list[Outcome]:
    index = [c for c in suite.index if c in rows.column_names]
    frame = rows.to_pandas(types_mapper=None)
    results = gx_context.validate(docs_dir, suite.name, frame, [e for _, e in planned], index=index)
    out = []
    for (label, _), r in zip(planned, results, strict=True):
        res = r.result or {}
        raised = (r.exception_info or {}).get("raised_exception") if isinstance(r.exception_info, dict) else False
        observed = res.get("observed_value")
        if raised:
            observed = (r.exception_info or {}).get("exception_message")
        checked = r.expectation_config.kwargs.get("column")
        sample = [_name_row(row, index, checked) for row in (res.get("unexpected_index_list") or [])[: ctx.sample_size]]
        if not sample:
            sample = [str(v) for v in (res.get("partial_unexpected_list") or [])[: ctx.sample_size]]
        config = r.expectation_config
        out.append(Outcome(label, config.type, config.meta.get("severity", "error"), bool(r.success),
                           config.kwargs.get("column"), None if observed is None else json.dumps(observed, default=str),
                           int(res.get("unexpected_count") or (1 if raised else 0)),
                           int(res.get("element_count") or 0), tuple(sample)))  # fmt: skip
    return out


def _name_row(row: Any, index: list[str], checked: str | None) -> str:
    """``id=11: 99`` — the failing row's key and, when it is not the key, the offending value."""
    if not isinstance(row, dict):
        return str(row)
    name = ",".join(f"{c}={row.get(c)}" for c in index) if index else json.dumps(row, default=str)
    value = row.get(checked) if checked and checked not in index else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return name  # a null is the failure itself: the key says it all
    return f"{name}: {value}"
