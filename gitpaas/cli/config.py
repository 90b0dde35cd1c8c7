"""config, config:get, config:set, config:unset."""

from __future__ import annotations

import shlex

import click

from gitpaas import config as config_vars
from gitpaas.cli.common import app_option, backend, print_json
from gitpaas.cli.group import cli
from gitpaas.errors import UsageError


@cli.command("config")
@app_option
@click.option("--json", "as_json", is_flag=True, help="one JSON object of key → value")
@click.option("--shell", "as_shell", is_flag=True, help="KEY=value lines, quoted for a POSIX shell")
def config_show(app: str, as_json: bool, as_shell: bool) -> None:
    """Show the app's config vars (those its add-ons own are marked with the add-on's name)."""
    values, owners = backend().config(app)
    if as_json:
        print_json(values)
    elif as_shell:
        for key, value in values.items():
            click.echo(f"{key}={shlex.quote(value)}")
    elif not values:
        click.echo(f"{app} has no config vars.")
    else:
        click.echo(f"=== {app} Config Vars")
        width = max(len(key) for key in values) + 1
        for key, value in values.items():
            owner = owners.get(key)
            click.echo(f"{key + ':':{width}} {value}" + (f"  (add-on {owner})" if owner else ""))


@cli.command("config:get")
@click.argument("key")
@app_option
def config_get(key: str, app: str) -> None:
    """Print one config var's value, exactly."""
    values, _ = backend().config(app)
    if key not in values:
        raise UsageError(f"{key} is not set for {app}")
    click.echo(values[key])


@cli.command("config:set")
@click.argument("assignments", nargs=-1, metavar="KEY=VALUE...")
@app_option
def config_set(assignments: tuple[str, ...], app: str) -> None:
    """Set config vars; creates a release that runs the release phase and restarts the formation."""
    values = config_vars.parse_assignments(assignments)
    _apply(app, f"Setting {', '.join(values)}", values, [])


@cli.command("config:unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@app_option
def config_unset(keys: tuple[str, ...], app: str) -> None:
    """Remove config vars; creates a release like config:set."""
    _apply(app, f"Unsetting {', '.join(keys)}", {}, list(keys))


def _apply(app: str, doing: str, set_values: dict[str, str], unset_keys: list[str]) -> None:
    result = backend().change_config(app, set_values, unset_keys)
    if not result.changed:
        click.echo(f"{doing} for {app}... nothing changed, no new release")
    elif result.version is None:
        click.echo(f"{doing} for {app}... done; it takes effect with the first deploy")
    else:
        click.echo(f"{doing} and restarting {app}... done, v{result.version}")
