"""Suite results for people (a rich table) and for machines (JSON)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from lakeport.quality.run import SuiteResult


def to_json(results: list[SuiteResult]) -> dict[str, Any]:
    return {
        "passed": all(r.passed for r in results),
        "suites": [
            {**{k: v for k, v in asdict(r).items() if k != "outcomes"}, "passed": r.passed,
             "outcomes": [asdict(o) for o in r.outcomes]}
            for r in results
        ],
    }  # fmt: skip


def print_results(results: list[SuiteResult], console: Console) -> None:
    table = Table("suite", "version", "rows", "expectation", "severity", "result", "failing", "sample keys")
    for r in results:
        if r.version is None:
            table.add_row(r.suite, "-", "-", "(table does not exist yet)", "", "", "", "")
        for o in r.outcomes:
            mark = (
                "[green]ok[/green]"
                if o.success
                else ("[red]FAIL[/red]" if o.severity == "error" else "[yellow]warn[/yellow]")
            )
            table.add_row(r.suite, str(r.version), str(r.rows_checked), o.expectation, o.severity, mark,
                          str(o.unexpected_count) if not o.success else "", ", ".join(o.sample_keys[:3]))  # fmt: skip
    console.print(table)
    failed = sum(len(r.errors) for r in results)
    console.print(
        f"{failed} error-severity expectation(s) failed" if failed else "all error-severity expectations pass"
    )
