"""stack:build: the base image every app is built on, made from Debian packages."""

from __future__ import annotations

import click

from gitpaas.cli.common import platform
from gitpaas.cli.group import cli
from gitpaas.errors import EnvironmentProblem
from gitpaas.settings import DEFAULT_STACK_IMAGE


@cli.command("stack:build")
@click.option("--force", is_flag=True, help="rebuild even when the image is current")
@click.option("--verbose", is_flag=True, help="show debootstrap's and apt's own output")
def stack_build(force: bool, verbose: bool) -> None:
    """Build the stack image (debootstrap + docker import; reused when current)."""
    # Imported when the command runs: every other command starts without loading docker-py.
    from gitpaas.build.stack import build_stack, stack_status

    plat = platform()
    image = plat.settings.stack_image
    if image != DEFAULT_STACK_IMAGE:
        if stack_status(plat.engine(), image) == "missing":
            raise EnvironmentProblem(f"GITPAAS_STACK_IMAGE names {image}, which is not in the Docker engine; "
                                     "build or load it, or unset GITPAAS_STACK_IMAGE to use gitpaas's own stack")
        click.echo(f"-----> using {image} (GITPAAS_STACK_IMAGE); nothing to build")
        return
    build_stack(plat.engine(), image, click.echo, force=force, verbose=verbose)
