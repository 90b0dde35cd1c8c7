"""backup, restore: a whole home in one archive, and back (on a fresh machine, say)."""

from __future__ import annotations

from pathlib import Path

import click

from gitpaas.backup import backup, restore
from gitpaas.cli.common import platform
from gitpaas.cli.group import cli
from gitpaas.output import StreamOutput


@cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(file: Path) -> None:
    """Write the home (apps, releases, config vars, repositories, accounts, certificates) to FILE.

    Taken while no release runs; FILE is written 0600, as it holds secrets."""
    manifest = backup(platform(), file, StreamOutput())
    count = len(manifest["apps"])
    click.echo(f"Backed up {count} app{'s' if count != 1 else ''} to {file}")


@cli.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_command(file: Path) -> None:
    """Bring a backup back into this (new, empty) home: every app at its current release."""
    plat = platform()
    restore(plat, file, StreamOutput())
    click.echo(f"Restored {file.name} into {plat.settings.home}")
