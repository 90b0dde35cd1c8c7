"""config, config:get, config:set, config:unset."""

from __future__ import annotations

import shlex

import click

from gitpaas import config as config_vars
from gitpaas.addons.store import AddonStore
from gitpaas.cli.common import actor, app_option, platform, print_json, release_output
from gitpaas.cli.group import cli
from gitpaas.errors import BootFailed, ConfigChangeFailed, ReleaseFailed, UsageError
from gitpaas.events import change_config


@cli.command("config")
@app_option
@click.option("--json", "as_json", is_flag=True, help="one JSON object of key → value")
@click.option("--shell", "as_shell", is_flag=True, help="KEY=value lines, quoted for a POSIX shell")
def config_show(app: str, as_json: bool, as_shell: bool) -> None:
    """Show the app's config vars (those its add-ons own are marked with the add-on's name)."""
    plat = platform()
    plat.apps.get(app)
    owners = {addon.config_var: addon for addon in AddonStore(plat.settings).of_app(app)}
    values = AddonStore(plat.settings).with_own(app, plat.apps.config(app).get())
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
            click.echo(f"{key + ':':{width}} {value}" + (f"  (add-on {owner.name})" if owner else ""))


@cli.command("config:get")
@click.argument("key")
@app_option
def config_get(key: str, app: str) -> None:
    """Print one config var's value, exactly."""
    plat = platform()
    plat.apps.get(app)
    values = AddonStore(plat.settings).with_own(app, plat.apps.config(app).get())
    if key not in values:
        raise UsageError(f"{key} is not set for {app}")
    click.echo(values[key])


@cli.command("config:set")
@click.argument("assignments", nargs=-1, metavar="KEY=VALUE...")
@app_option
def config_set(assignments: tuple[str, ...], app: str) -> None:
    """Set config vars; creates a release that runs the release phase and restarts the formation."""
    values = config_vars.parse_assignments(assignments)
    _apply(app, f"Setting {', '.join(values)}", set_values=values)


@cli.command("config:unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@app_option
def config_unset(keys: tuple[str, ...], app: str) -> None:
    """Remove config vars; creates a release like config:set."""
    _apply(app, f"Unsetting {', '.join(keys)}", unset_keys=list(keys))


def _apply(app: str, doing: str, **change) -> None:
    plat = platform()
    previous = plat.apps.get(app).current_release
    try:
        result = change_config(plat, app, actor(), release_output(), **change)
    except (ReleaseFailed, BootFailed) as exc:
        reason = exc.reason if isinstance(exc, ReleaseFailed) else str(exc)
        raise ConfigChangeFailed(app, exc.version, reason, previous, getattr(exc, "exit_status", None)) from exc
    if not result.changed:
        click.echo(f"{doing} for {app}... nothing changed, no new release")
    elif result.pending is None:
        click.echo(f"{doing} for {app}... done; it takes effect with the first deploy")
    else:
        click.echo(f"{doing} and restarting {app}... done, v{result.pending.release.version}")
