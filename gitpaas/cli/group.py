"""The ``gitpaas`` click group: every command module adds its commands to it, and every
GitpaasError a command raises is rendered here, once — one line on stderr, the error's exit code."""

from __future__ import annotations

import errno
import sys

import click

from gitpaas.cli.common import platform
from gitpaas.errors import DiskFull, GitpaasError
from gitpaas.locks import recover_all
from gitpaas.operations import refresh_entry_points
from gitpaas.output import StreamOutput

#: commands that must not wait on recovery (it may need the Docker engine they are setting up, or
#: wait for: boot settles releases itself once the engine answers)
NO_RECOVERY = {"stack:build", "boot"}


class _Failure(click.ClickException):
    """A GitpaasError shown as one line on stderr, with the error's own exit code."""

    def __init__(self, error: GitpaasError) -> None:
        super().__init__(error.message)
        self.exit_code = error.exit_code

    def show(self, file=None) -> None:
        click.echo(f" !    {self.message}", err=True)


class GitpaasGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GitpaasError as exc:
            raise _Failure(exc) from exc
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _Failure(DiskFull()) from exc
            raise


@click.group(cls=GitpaasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gitpaas")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """gitpaas: git push to deploy, with Heroku's release model, on a server you own.

    State lives in $GITPAAS_HOME; the router answers on $GITPAAS_HTTP_PORT for *.$GITPAAS_DOMAIN.
    """
    refresh_entry_points(platform())
    if ctx.invoked_subcommand not in NO_RECOVERY:
        recover_all(platform(), StreamOutput(sys.stderr))
