"""What every command shares: the consoles, the common options, settings built at the edge, and
printing rows as a table, JSON or CSV."""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lakeport.settings import ConfigError, Settings, load_settings
from lakeport.settings import log as logging

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="lakeport.yaml (default: $LAKEPORT_CONFIG or ./lakeport.yaml)"),
]
HomeOpt = Annotated[Path, typer.Option("--home", help="state directory of the local stack", envvar="LAKEPORT_HOME")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def settings_from(config: Path | None) -> Settings:
    """Build settings once, at the edge; a bad config exits 2 with the file and field named."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {logging.redact(str(exc))}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    secrets = [
        v.get_secret_value()
        for v in [*settings.kafka.properties.values(), *settings.lake.storage_options.values()]
        if hasattr(v, "get_secret_value")
    ] + [s.postgres.password.get_secret_value() for s in settings.sources]
    secrets += [*settings.alerts.secrets(), settings.security.hash_salt.get_secret_value()]
    logging.register_secrets(secrets)
    return settings


def iso_time(text: str, *, option: str) -> datetime:
    """An ISO 8601 time from the command line (``Z`` accepted, UTC when it names no zone)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{option}: not an ISO time: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode()
    return str(value)


def print_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=jsonable) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)


AtVersionOpt = Annotated[
    list[str] | None, typer.Option("--at-version", help="TABLE=VERSION, e.g. silver.orders=12 (repeatable)")
]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="every table as of this time (ISO 8601, UTC if no zone)")]
