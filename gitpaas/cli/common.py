"""What every command module shares: the platform, the -a option, JSON and table output."""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any, Iterable, Sequence

import click

from gitpaas.cli.backend import Backend, Local, release_output  # noqa: F401  (for the commands)
from gitpaas.client import credentials
from gitpaas.client.credentials import Login
from gitpaas.identity import OPERATOR, Actor
from gitpaas.platform import Platform
from gitpaas.settings import Settings


def platform() -> Platform:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Platform(Settings.from_env())
    return root.obj


def actor() -> Actor:
    """Who a command typed on the server acts as: the server's operator (who may use every app)."""
    return OPERATOR


def login() -> Login | None:
    """The login the commands use, if they act on a server rather than a home: a home named in the
    environment (``GITPAAS_HOME``) wins, so the server's own shells never go through the API."""
    if os.environ.get("GITPAAS_HOME"):
        return None
    return credentials.load()


def backend() -> Backend:
    """Where the command's data comes from: the server logged in to, else this machine's home."""
    root = click.get_current_context().find_root()
    if "gitpaas.backend" not in root.meta:
        found = login()
        if found:
            # Loaded when logged in: the API client (requests) is not what a command on the server needs.
            from gitpaas.client.remote import Remote

            root.meta["gitpaas.backend"] = Remote(found)
        else:
            root.meta["gitpaas.backend"] = Local(platform(), actor())
    return root.meta["gitpaas.backend"]


app_option = click.option("-a", "--app", "app", required=True, metavar="APP", help="the app to act on")
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")


def when(timestamp: str) -> str:
    """A record's ``2026-12-01T22:00:00Z`` as a person reads it: ``2026-12-01 22:00:00 UTC``."""
    return timestamp.replace("T", " ").replace("Z", " UTC")


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def console():
    """A rich Console (rich is loaded here, on first use: a command printing JSON never loads it).
    Into a pipe or a file, a row is one line however long (for grep), not wrapped at some width."""
    from rich.console import Console

    width = shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else 1000
    return Console(width=width, highlight=False, soft_wrap=False)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    from rich.table import Table, box

    table = Table(*columns, box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    out = console()
    with out.capture() as captured:
        out.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines() if line.strip()))
