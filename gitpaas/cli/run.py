"""run, run:detached: one-off dynos of the app's current release (a console, a migration, a fix)."""

from __future__ import annotations

import shlex
import sys

import click

from gitpaas.cli.common import app_option, backend
from gitpaas.cli.group import cli
from gitpaas.client.terminal import attach
from gitpaas.operations import run_env

_ARGS = {"ignore_unknown_options": True, "allow_interspersed_args": False}
size_option = click.option("-s", "--size", metavar="SIZE", help="its dyno size (default: the app's run size, standard-1x)")
env_option = click.option("-e", "--env", metavar="'K=V;K2=V2'", help="config vars for this dyno only, on top of the app's")


def command_line(words: tuple[str, ...]) -> str:
    """One word is a shell line as it is (``"rake db:migrate && rake seed"``); several are quoted
    so each stays one argument."""
    return words[0] if len(words) == 1 else shlex.join(words)


@cli.command("run", context_settings=_ARGS)
@app_option
@size_option
@env_option
@click.option("--no-tty", is_flag=True, help="no terminal, even when this one is (output as in a pipe)")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND...")
def run(app: str, size: str | None, env: str | None, no_tty: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND in a one-off dyno (run.NNNN) of the app's current release, with its config vars
    and add-ons: a terminal when this is one (`gitpaas run -a APP bash`), its exit status returned.
    Ctrl-C and a dropped connection stop it."""
    line = command_line(command)
    tty = not no_tty and sys.stdin.isatty() and sys.stdout.isatty()
    name, channel = backend().run(app, line, size, run_env(env), tty)
    click.echo(f"Running {line} on {app}... up, {name}", err=True)
    sys.exit(attach(channel, tty))


@cli.command("run:detached", context_settings=_ARGS)
@app_option
@size_option
@env_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND...")
def run_detached(app: str, size: str | None, env: str | None, command: tuple[str, ...]) -> None:
    """Start COMMAND in a one-off dyno and return at once; its output goes to the app's logs."""
    line = command_line(command)
    name = backend().run_detached(app, line, size, run_env(env))
    click.echo(f"Running {line} on {app}... done, {name}")
    click.echo(f"Its output: gitpaas logs -a {app} --tail (lines marked app[{name}]); stop it: gitpaas ps:stop {name} -a {app}")
