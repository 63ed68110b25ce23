"""``lakeport dead-letters list`` and ``replay``: what failed to land, and landing it after a fix."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated

import pyarrow.compute as pc
import typer

from lakeport.cli.options import ConfigOpt, JsonOpt, err, iso_time, out, print_rows, settings_from

TableOpt = Annotated[str | None, typer.Option("--table", help="only this table's dead letters")]


def list_letters(config: ConfigOpt = None, table: TableOpt = None, as_json: JsonOpt = False) -> None:
    """Dead letters by table, stage and error: counts, how many were replayed, how many can be, samples."""
    from lakeport.ingestion.replay import summary

    groups = summary(settings_from(config), table=table)
    if as_json:
        sys.stdout.write(json.dumps([asdict(g) for g in groups]) + "\n")
        return
    rows = [(g.table, g.stage, g.count, g.replayed, g.replayable, g.error, ", ".join(g.samples)) for g in groups]
    print_rows(["table", "stage", "records", "replayed", "replayable", "error", "samples"], rows, "table")


def replay(
    config: ConfigOpt = None,
    table: TableOpt = None,
    since: Annotated[str | None, typer.Option("--since", help="dead letters written at or after (ISO 8601)")] = None,
    error_like: Annotated[str | None, typer.Option("--error-like", help="whose error contains this text")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="decode and count; land nothing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-run dead letters through today's config and table schema; what now decodes lands once."""
    from lakeport.ingestion.replay import read_letters, replay_table

    settings = settings_from(config)
    start = iso_time(since, option="--since") if since else None
    letters = read_letters(settings, table=table, since=start, error_like=error_like)
    names = sorted(set(letters["table_name"].to_pylist()))
    unknown = [n for n in names if not any(t.name == n for t in settings.tables)]
    if unknown:
        err.print(f"not replayed: no table {', '.join(unknown)} in the configuration")
    results = []
    for name in (n for n in names if n not in unknown):
        mine = letters.filter(pc.equal(letters["table_name"], name))
        results.append(replay_table(settings, name, mine, dry_run=dry_run))
    if as_json:
        sys.stdout.write(json.dumps([asdict(r) for r in results]) + "\n")
        return
    verb = "would land" if dry_run else "landed"
    for r in results:
        out.print(f"{r.table}: {r.selected} selected, {verb} {r.landed}, {r.already_replayed} replayed before, "
                  f"{r.still_failing} still failing, {r.not_replayable} not replayable (raw value not kept)"
                  + (f"; version {r.version}" if r.version is not None else ""))  # fmt: skip
        for error, n in sorted(r.errors.items(), key=lambda e: -e[1])[:5]:
            out.print(f"  {n} x {error}")
    if not results:
        out.print("no dead letters matched")
