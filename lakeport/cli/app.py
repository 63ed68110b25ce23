"""The ``lakeport`` command line: one typer app; every command is registered here, by name, from
the module of its group (``ingest``, ``lake``, ``dev``), which share ``options``."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from lakeport.cli import dead_letters, dev, ingest, lake

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Land Kafka topics in a Delta Lake, exactly once.",
)
COMMANDS: tuple[Callable[..., None], ...] = (
    ingest.ingest,
    ingest.capture,
    ingest.status,
    lake.silver,
    lake.reconcile,
    lake.check,
    lake.sql,
    lake.shell,
    lake.gold,
)
for command in COMMANDS:
    app.command()(command)
app.command()(dev.dagster)

stack = typer.Typer(no_args_is_help=True, help="The local stack: Kafka-API broker (Tansu) and S3 (SeaweedFS).")
stack.command("up")(dev.dev_up)
stack.command("down")(dev.dev_down)
stack.command("status")(dev.dev_status)
app.add_typer(stack, name="dev")

letters = typer.Typer(no_args_is_help=True, help="Records that could not land (ops.dead_letters): list, replay.")
letters.command("list")(dead_letters.list_letters)
letters.command("replay")(dead_letters.replay)
app.add_typer(letters, name="dead-letters")

demo = typer.Typer(no_args_is_help=True, help="The e-commerce demo.")
demo.command("run")(dev.demo_run)
demo.command("workload")(dev.demo_workload)
app.add_typer(demo, name="demo")


def main() -> None:
    """The console script. After the command, flush and leave without interpreter teardown: the
    Rust (delta-rs) and Arrow thread pools can abort the process while being torn down at exit
    ("terminate called without an active exception") after the command itself succeeded."""
    import os

    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
