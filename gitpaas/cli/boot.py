"""boot: bring the home's apps back after the machine or the Docker engine restarted."""

from __future__ import annotations

import click

from gitpaas.boot import ENGINE_WAIT, boot
from gitpaas.cli.common import platform
from gitpaas.cli.group import cli
from gitpaas.output import StreamOutput


@cli.command("boot")
@click.option("--engine-wait", type=click.FloatRange(min=0), default=ENGINE_WAIT, show_default=True,
              help="seconds to wait for the Docker engine to answer")
def boot_command(engine_wait: float) -> None:
    """Start the router, settle interrupted releases and bring every app's formation back.

    Run at startup (the gitpaas-boot systemd unit does); running it again changes nothing.
    """
    output = StreamOutput()
    output.stage(f"Booting {platform().settings.home}")
    boot(platform(), output, engine_wait)
