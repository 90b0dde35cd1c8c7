"""logs: the app's process output."""

from __future__ import annotations

import click

from gitpaas.cli.common import app_option, backend
from gitpaas.cli.group import cli


@cli.command("logs")
@app_option
@click.option("-n", "--num", "lines", type=click.IntRange(1, 1500), default=100, show_default=True,
              help="how many lines (at most 1500, as on Heroku)")
@click.option("-t", "--tail", "follow", is_flag=True, help="keep printing new lines as they come")
def logs(app: str, lines: int, follow: bool) -> None:
    """Show the output of the app's processes."""
    try:
        for line in backend().logs(app, lines, follow):
            if line:  # (following, "" marks a second of silence)
                click.echo(line)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a person stops `logs --tail`: end quietly
