"""domains, domains:add, domains:remove, domains:clear."""

from __future__ import annotations

import click

from gitpaas.cli.common import app_option, backend, json_option, print_json
from gitpaas.cli.group import cli


@cli.command("domains")
@app_option
@json_option
def domains_list(app: str, as_json: bool) -> None:
    """List the host names routed to the app."""
    hosts = backend().domains(app)
    if as_json:
        print_json([{"hostname": host, "kind": "default" if index == 0 else "custom"}
                    for index, host in enumerate(hosts)])
        return
    click.echo(f"=== {app} Default Domain\n{hosts[0]}")
    if hosts[1:]:
        click.echo(f"\n=== {app} Custom Domains\n" + "\n".join(hosts[1:]))


@cli.command("domains:add")
@click.argument("host")
@app_option
def domains_add(host: str, app: str) -> None:
    """Route another host name to the app."""
    hosts = backend().add_domain(app, host)
    click.echo(f"Adding {hosts[-1]} to {app}... done")


@cli.command("domains:remove")
@click.argument("host")
@app_option
def domains_remove(host: str, app: str) -> None:
    """Stop routing a host name to the app."""
    backend().remove_domain(app, host)
    click.echo(f"Removing {host} from {app}... done")


@cli.command("domains:clear")
@app_option
def domains_clear(app: str) -> None:
    """Stop routing every custom host name to the app (its own host name stays)."""
    where = backend()
    for host in where.domains(app)[1:]:
        where.remove_domain(app, host)
    click.echo(f"Removing all domains from {app}... done")
