"""The ``gitpaas`` click group: every command module adds its commands to it, and every
GitpaasError a command raises is rendered here, once — one line on stderr, the error's exit code.

The group loads a command's module only when that command runs: ``commands.py`` says which module
holds which command, and the start of its help, so ``gitpaas --help`` imports no command module and a
command imports only what it uses (``gitpaas releases`` neither Docker's client nor the pipeline).
``manifest_source()`` writes ``commands.py`` anew from the modules themselves; a unit test checks
it is current.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import sys

import click

from gitpaas.cli.commands import COMMANDS, MODULES
from gitpaas.errors import DiskFull, GitpaasError, UsageError

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
    """A click group whose commands are imported on first use (see the module's docstring)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(COMMANDS[cmd_name][0])
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """click's, with its "Did you mean" drawn from every command (not only the loaded ones)."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            raise click.exceptions.NoSuchCommand(exc.command_name, possibilities=self._visible(ctx), ctx=ctx) from None

    def _visible(self, ctx: click.Context) -> list[str]:
        return [name for name in self.list_commands(ctx)
                if not (self.commands[name].hidden if name in self.commands else COMMANDS[name][2])]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's list of commands, from ``commands.py``: the help imports no command module."""
        names = self._visible(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, (self.commands.get(name) or click.Command(name, help=COMMANDS[name][1])).get_short_help_str(limit))
                for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
    # Loaded here, not above: `gitpaas --help` and a mistyped command need none of it.
    from gitpaas.cli.common import login, platform

    remote = login()
    if remote is not None:
        if command not in REMOTE:
            raise UsageError(f"`gitpaas {command}` acts on the server's home and runs on the server only; this "
                             f"machine is logged in to {remote.server} (`gitpaas logout` to use a home here)")
        return
    from gitpaas.locks import recover_all
    from gitpaas.output import StreamOutput
    from gitpaas.settings import entry_points_outdated, read_home_record

    if entry_points_outdated(read_home_record(platform().settings.home)):
        from gitpaas.operations import refresh_entry_points
        refresh_entry_points(platform())
    if command not in NO_RECOVERY:
        recover_all(platform(), StreamOutput(sys.stderr))


def manifest_source() -> str:
    """``commands.py`` as it should read: every command of MODULES, its module, the first paragraph
    of its help (what click shortens into the list of commands)."""
    for module in MODULES:
        importlib.import_module(module)
    width = max(len(name) for name in cli.commands)
    lines = []
    for name in sorted(cli.commands):
        command = cli.commands[name]
        help_line = inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0]
        lines.append(f"    {name!r}: {' ' * (width - len(name))}({command.callback.__module__!r}, {help_line!r}, "
                     f"{command.hidden!r}),")
    modules = "".join(f"    {module!r},\n" for module in MODULES)
    return (f'''"""Which module holds each ``gitpaas`` command, and the start of its help: the group imports a module
only when one of its commands runs (``group.py``). Written by ``group.manifest_source()``:

    .venv/bin/python -c 'from gitpaas.cli.group import manifest_source as m; print(m(), end="")' > gitpaas/cli/commands.py
"""

#: the modules that add commands to the group
MODULES = (
{modules})

#: command → (its module, the first paragraph of its help, whether --help leaves it out)
COMMANDS = {{
''' + "\n".join(lines) + "\n}\n")
