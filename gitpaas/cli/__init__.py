"""The ``gitpaas`` command: one click group, one module per noun, errors rendered once here."""

from __future__ import annotations

import sys

import click
from docker.errors import DockerException

from gitpaas.errors import EnvironmentProblem, GitpaasError


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
        except DockerException as exc:
            raise _Failure(EnvironmentProblem(f"Docker engine: {exc}")) from exc


#: commands that must not wait on recovery (it may need the Docker engine they are setting up)
NO_RECOVERY = {"stack:build"}


@click.group(cls=GitpaasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gitpaas")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """gitpaas: git push to deploy, with Heroku's release model, on a server you own.

    State lives in $GITPAAS_HOME; the router answers on $GITPAAS_HTTP_PORT for *.$GITPAAS_DOMAIN.
    """
    if ctx.invoked_subcommand not in NO_RECOVERY:
        from gitpaas.cli.common import platform
        from gitpaas.output import StreamOutput

        platform().recover_all(StreamOutput(sys.stderr))


def _register() -> None:
    from gitpaas.cli import accounts, apps, builds, certs, config, domains, logs, ps, releases, server, stack, webhooks  # noqa: F401  (each adds its commands)


_register()


def main() -> None:
    sys.exit(cli.main(prog_name="gitpaas"))
