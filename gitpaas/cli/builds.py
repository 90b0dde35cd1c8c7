"""builds:cache:clear."""

from __future__ import annotations

import sys

import click

from gitpaas.build.cache import describe_size
from gitpaas.cli.common import app_option, platform
from gitpaas.cli.group import cli
from gitpaas.operations import clear_build_cache
from gitpaas.output import StreamOutput


@cli.command("builds:cache:clear")
@app_option
def builds_cache_clear(app: str) -> None:
    """Empty the app's build cache (pip and npm caches, virtualenv, node_modules): the next build starts cold."""
    freed = clear_build_cache(platform(), app, StreamOutput(sys.stderr))
    click.echo(f"Clearing the build cache of {app}... done, freed {describe_size(freed)}")
