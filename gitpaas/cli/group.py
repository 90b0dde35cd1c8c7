"""The ``gitpaas`` click group: every command module adds its commands to it, and every
GitpaasError a command raises is rendered here, once — one line on stderr, the error's exit code."""

from __future__ import annotations

import errno
import sys

import click

from gitpaas.cli.common import login, platform
from gitpaas.errors import DiskFull, GitpaasError, UsageError
from gitpaas.locks import recover_all
from gitpaas.operations import refresh_entry_points
from gitpaas.output import StreamOutput

#: commands that must not wait on recovery (it may need the Docker engine they are setting up, or
#: wait for: boot settles releases itself once the engine answers)
NO_RECOVERY = {"stack:build", "boot"}

#: what a team member does from another machine once logged in, through the server's Platform API;
#: every other command acts on a server's home and runs there (setup, backups, accounts, the sshd)
REMOTE = {
    "login", "logout", "whoami", "git:remote", "git:credential",
    "apps", "apps:create", "apps:info", "apps:destroy",
    "config", "config:get", "config:set", "config:unset",
    "releases", "releases:info", "releases:output", "releases:retry", "releases:retention", "rollback",
    "ps", "ps:scale", "ps:restart", "ps:stop", "ps:type", "ps:resize", "run", "run:detached", "logs",
    "domains", "domains:add", "domains:remove", "domains:clear",
    "access", "access:add", "access:remove",
    "webhooks", "webhooks:add", "webhooks:remove", "webhooks:deliveries",
    "addons", "addons:info", "addons:create", "addons:destroy", "pg:psql", "redis:cli",
    "pg:backups", "pg:backups:capture", "pg:backups:restore", "pg:backups:download", "pg:backups:delete",
    "pg:backups:schedule", "pg:backups:unschedule",
    "stack", "stack:set", "maintenance", "maintenance:on", "maintenance:off", "drains", "drains:add", "drains:remove",
    "pipelines", "pipelines:create", "pipelines:info", "pipelines:add", "pipelines:update", "pipelines:remove",
    "pipelines:destroy", "pipelines:diff", "pipelines:promote",
    "reviewapps", "reviewapps:enable", "reviewapps:disable", "reviewapps:config", "reviewapps:config:set",
    "reviewapps:config:unset",
}
#: commands that need no home at all (they manage the login itself)
NO_HOME = {"login", "logout", "whoami", "git:credential"}


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

    On the server, state lives in $GITPAAS_HOME; the router answers on $GITPAAS_HTTP_PORT for
    *.$GITPAAS_DOMAIN. From another machine, `gitpaas login --server URL` first: the app commands
    then act on that server through its Platform API.
    """
    command = ctx.invoked_subcommand
    if command in NO_HOME:
        return
    remote = login()
    if remote is not None:
        if command not in REMOTE:
            raise UsageError(f"`gitpaas {command}` acts on the server's home and runs on the server only; this "
                             f"machine is logged in to {remote.server} (`gitpaas logout` to use a home here)")
        return
    refresh_entry_points(platform())
    if command not in NO_RECOVERY:
        recover_all(platform(), StreamOutput(sys.stderr))
