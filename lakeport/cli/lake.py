"""The ``lakeport`` commands over the lake: silver, reconcile, check, sql, shell, gold.

Registered by name on the one typer app in :mod:`lakeport.cli.app`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lakeport.cli.options import AsOfOpt, AtVersionOpt, ConfigOpt, JsonOpt, err, out, print_rows, settings_from
from lakeport.settings import log as logging
from lakeport.settings.runtime import tune_memory


def silver(
    config: ConfigOpt = None,
    table: Annotated[str | None, typer.Option(help="only this table")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply pending bronze changes to silver current-state tables (and ``_history`` where configured)."""
    from lakeport.lake.refresh import failed, refresh_silver

    logging.configure()  # to stderr: stdout carries the results
    tune_memory()
    results = refresh_silver(settings_from(config), table=table)
    if as_json:
        sys.stdout.write(json.dumps(results) + "\n")
    else:
        print_rows(
            ["table", "kind", "changes", "stale", "silver version", "seconds", "error"],
            [
                (r["table"], r["kind"], r.get("changes"), r.get("stale", ""), r.get("version"),
                 round(r.get("seconds", 0.0), 2), r.get("error") or "")
                for r in results
            ],
            "table",
        )  # fmt: skip
    if failed(results):
        raise typer.Exit(1)


def reconcile(
    config: ConfigOpt = None,
    table: Annotated[str | None, typer.Option(help="only this table")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare silver tables with their source database row by row; exit 1 on any difference."""
    from dataclasses import asdict

    from lakeport.lake.reconcile import reconcile as compare

    reports = compare(settings_from(config), table=table)
    if as_json:
        sys.stdout.write(json.dumps([{**asdict(r), "ok": r.ok} for r in reports]) + "\n")
    else:
        columns = ["table", "source", "source rows", "lake rows", "missing", "extra", "duplicate keys", "different",
                   "in columns", "ok"]  # fmt: skip
        rows = [(r.table, f"{r.source}:{r.source_table}", r.source_rows, r.lake_rows, r.missing_count, r.extra_count,
                 r.duplicate_count, r.different_count, ", ".join(sorted(r.different_columns)), r.ok)
                for r in reports]  # fmt: skip
        print_rows(columns, rows, "table")
    raise typer.Exit(0 if reports and all(r.ok for r in reports) else 1)


def check(
    config: ConfigOpt = None,
    table: Annotated[str | None, typer.Option(help="only this table's suites")] = None,
    layer: Annotated[str | None, typer.Option(help="only bronze or silver suites")] = None,
    as_json: JsonOpt = False,
    alert: Annotated[bool, typer.Option("--alert/--no-alert", help="send alerts and recoveries")] = True,
) -> None:
    """Run the quality suites (Great Expectations); exit 1 if an error-severity expectation fails."""
    from lakeport.quality.report import print_results, to_json
    from lakeport.quality.run import check as run_checks

    logging.configure(level="WARNING")
    results = run_checks(settings_from(config), table=table, layer=layer, alert=alert)
    if as_json:
        sys.stdout.write(json.dumps(to_json(results), default=str) + "\n")
    else:
        print_results(results, out)
    raise typer.Exit(0 if all(r.passed for r in results) else 1)


def _lake(config: Path | None, at_version: list[str] | None, as_of: str | None) -> Any:
    """The lake, time-travelled as asked; bad options exit 2 naming them."""
    from datetime import datetime

    from lakeport.lake import Lake

    try:
        pins = {t: int(v) for t, _, v in (p.partition("=") for p in at_version or [])}
        when = datetime.fromisoformat(as_of) if as_of else None
        return Lake(settings_from(config), versions=pins, as_of=when)
    except ValueError as exc:
        err.print(f"[red]error:[/red] --at-version/--as-of: {exc}")
        raise typer.Exit(2) from None


def sql(
    query: Annotated[str | None, typer.Argument(help="SQL over bronze.*, silver.*, gold.*, ops.*")] = None,
    config: ConfigOpt = None,
    file: Annotated[Path | None, typer.Option("--file", "-F", help="read the query from this file")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json | csv")] = "table",
    at_version: AtVersionOpt = None,
    as_of: AsOfOpt = None,
) -> None:
    """Run SQL with DuckDB over the lake (optionally as it was at a version or a time)."""
    import duckdb

    if fmt not in ("table", "json", "csv"):
        raise typer.BadParameter("--format must be one of table, json, csv")
    if (query is None) == (file is None):
        raise typer.BadParameter("give a query or --file, not both")
    con = _lake(config, at_version, as_of)
    try:
        cursor = con.execute(file.read_text() if file else query)
    except duckdb.Error as exc:
        err.print(f"[red]error:[/red] {logging.redact(str(exc))}")
        raise typer.Exit(1) from None
    print_rows([d[0] for d in cursor.description or []], cursor.fetchall(), fmt)


def shell(config: ConfigOpt = None, at_version: AtVersionOpt = None, as_of: AsOfOpt = None) -> None:
    """An interactive SQL prompt over the lake: end statements with ';', `.tables` lists, `.quit` leaves."""
    from lakeport.cli.shell import repl

    repl(_lake(config, at_version, as_of).con, out=out, err=err, interactive=sys.stdin.isatty())


def gold(
    config: ConfigOpt = None,
    model: Annotated[str | None, typer.Option(help="only this model (lake/models/<model>.sql)")] = None,
) -> None:
    """Rebuild the gold tables from their SQL models (full refresh, one Delta commit each)."""
    from lakeport.lake.gold import refresh_gold

    for r in refresh_gold(settings_from(config), model=model):
        out.print(f"gold.{r.model:<16} version {r.version:>4}  {r.rows:>9,} rows  {r.files} files  {r.seconds:.2f}s")
