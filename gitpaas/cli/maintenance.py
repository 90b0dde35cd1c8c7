"""maintenance, maintenance:on, maintenance:off, drains, drains:add, drains:remove."""

from __future__ import annotations

import click

from gitpaas.cli.common import (
    app_option,
    backend,
    json_option,
    print_json,
    print_table,
    when,
)
from gitpaas.cli.group import cli


@cli.command("maintenance")
@app_option
def maintenance(app: str) -> None:
    """Say whether the app is in maintenance mode (on: its URL answers the maintenance page, 503)."""
    click.echo("on" if backend().maintenance(app) else "off")


@cli.command("maintenance:on")
@app_option
def maintenance_on(app: str) -> None:
    """Answer every request for the app with the maintenance page (503); its processes keep running."""
    changed = backend().set_maintenance(app, True)
    click.echo(f"Enabling maintenance mode for {app}... done" + ("" if changed else " (it was on already)"))


@cli.command("maintenance:off")
@app_option
def maintenance_off(app: str) -> None:
    """Serve the app again."""
    changed = backend().set_maintenance(app, False)
    click.echo(f"Disabling maintenance mode for {app}... done" + ("" if changed else " (it was off already)"))


@cli.command("drains")
@app_option
@json_option
def drains_list(app: str, as_json: bool) -> None:
    """List the app's log drains and how their deliveries go (`gitpaas server` feeds them)."""
    drains = backend().drains(app)
    if as_json:
        print_json(drains)
        return
    if not drains:
        click.echo(f"{app} has no drains. Add one with `gitpaas drains:add URL -a {app}` "
                   "(https://…, syslog://HOST:PORT or syslog+tls://HOST:PORT).")
        return

    def state(status: dict) -> str:
        if status.get("failures"):
            return f"failing ({status['failures']}×): {status.get('last_error')}"
        if status.get("delivered_at"):
            return f"{status['delivered']} lines, last {when(status['delivered_at'])}"
        return "nothing sent yet"
    print_table(["url", "token", "delivery", "dropped"],
                ((d["url"], d["token"], state(d["status"]), d["status"].get("dropped", 0)) for d in drains),
                title=f"=== {app} Drains")


@cli.command("drains:add")
@click.argument("url")
@app_option
def drains_add(url: str, app: str) -> None:
    """Send every line of the app's logs to URL: https://…, syslog://HOST:PORT or syslog+tls://HOST:PORT
    (public hosts only, unless the operator allows private ones)."""
    drain = backend().add_drain(app, url)
    click.echo(f"Successfully added drain {drain['url']} (token {drain['token']})")


@cli.command("drains:remove")
@click.argument("url_or_token")
@app_option
def drains_remove(url_or_token: str, app: str) -> None:
    """Stop sending the app's logs to a drain (named by its URL, token or id)."""
    drain = backend().remove_drain(app, url_or_token)
    click.echo(f"Successfully removed drain {drain['url']}")
