"""``lakeport shell``: a small interactive SQL prompt over a DuckDB connection to the lake."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from lakeport.settings.log import redact

HELP = "SQL ends with ';'. .tables lists the lake's tables, .help this text, .quit (or Ctrl-D) leaves."


def _show(cursor: Any, out: Console, limit: int = 200) -> None:
    if cursor.description is None:
        return
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchmany(limit + 1)
    table = Table(*columns)
    for row in rows[:limit]:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    out.print(table)
    out.print(f"{min(len(rows), limit)} row(s)" + (" (more not shown)" if len(rows) > limit else ""))


def repl(con: Any, *, out: Console, err: Console, interactive: bool) -> None:
    """Read statements until EOF or .quit; a failing statement prints its error and the prompt goes on."""
    import duckdb

    if interactive:
        out.print(f"lakeport shell — DuckDB over the lake. {HELP}")
    pending: list[str] = []
    while True:
        try:
            line = input("lake> " if not pending else "  ... ") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not interactive and line == "":
            break
        text = line.strip()
        if not pending and text in (".quit", ".exit"):
            break
        if not pending and text == ".help":
            out.print(HELP)
            continue
        if not pending and text == ".tables":
            _show(con.execute("SELECT layer, name, version FROM lakeport.tables ORDER BY 1, 2"), out)
            continue
        pending.append(line)
        if not text.endswith(";"):
            continue
        statement, pending = "\n".join(pending), []
        try:
            _show(con.execute(statement), out)
        except duckdb.Error as exc:
            err.print(f"error: {redact(str(exc))}")
