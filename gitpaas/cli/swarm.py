"""scheduler, scheduler:set, nodes, nodes:add, nodes:remove: where this home's processes run.

docker-local (the default) runs every process on this machine's engine; swarm hands each process
type to a Docker Swarm service, on the nodes of an existing swarm, with slugs pushed to a registry
the nodes pull from. These commands act on the home they run in (on the server itself).
"""

from __future__ import annotations

import click

from gitpaas import cluster
from gitpaas.cli.common import json_option, platform, print_json, print_table
from gitpaas.cli.group import cli
from gitpaas.errors import UsageError


@cli.command("scheduler")
@json_option
def scheduler_show(as_json: bool) -> None:
    """Show which scheduler runs this home's processes."""
    settings = platform().settings
    shown = {"scheduler": settings.scheduler}
    if settings.scheduler == "swarm":
        shown.update(manager=settings.swarm_manager, registry=settings.swarm_registry)
    if as_json:
        print_json(shown)
        return
    for key, value in shown.items():
        click.echo(f"{key.title() + ':':11}{value}")


@cli.command("scheduler:set")
@click.argument("scheduler", type=click.Choice(["docker-local", "swarm"]))
@click.option("--manager", metavar="URL", help="swarm: the manager's engine (unix:///…sock or tcp://HOST:2376)")
@click.option("--registry", metavar="HOST:PORT", help="swarm: the registry the nodes pull slugs from")
def scheduler_set(scheduler: str, manager: str | None, registry: str | None) -> None:
    """Choose the scheduler of this home (only while no app has a release running).

    swarm checks that the manager answers and is a swarm manager, and that the registry answers.
    """
    if scheduler == "swarm" and (not manager or not registry):
        raise UsageError("scheduler:set swarm needs --manager URL and --registry HOST:PORT")
    if scheduler == "docker-local" and (manager or registry):
        raise UsageError("--manager and --registry are for the swarm scheduler")
    recorded = cluster.set_scheduler(platform(), scheduler, manager or "", registry or "")
    click.echo(f"This home's processes now run on {recorded}.")


@cli.command("nodes")
@json_option
def nodes_list(as_json: bool) -> None:
    """List the swarm's nodes, with this home's processes on each."""
    nodes = cluster.swarm_nodes(platform())
    if as_json:
        print_json(nodes)
        return
    print_table(["node", "role", "state", "availability", "address", "engine", "processes"], (
        (n["hostname"], n["role"] + (" (leader)" if n["leader"] else ""), n["state"], n["availability"],
         n["address"], n["engine"], ", ".join(n["processes"]) or "-") for n in nodes),
        title="=== Swarm nodes")


@cli.command("nodes:add")
@click.option("--manager", "as_manager", is_flag=True, help="join it as a manager (for high availability)")
def nodes_add(as_manager: bool) -> None:
    """Print the command that joins a new machine to the swarm (run it there)."""
    command = cluster.swarm_join_command(platform(), as_manager)
    click.echo("Run this on the new machine (Docker installed, ports 2377, 7946 and 4789 open to the others):")
    click.echo(f"  {command}")
    click.echo("It then shows in `gitpaas nodes`; Swarm places new and rescheduled processes on it.")


@cli.command("nodes:remove")
@click.argument("node")
def nodes_remove(node: str) -> None:
    """Drain a node (Swarm moves its processes elsewhere), then remove it from the swarm."""
    moved = cluster.swarm_remove_node(platform(), node)
    click.echo(f"Drained {node}" + (f" (moved: {', '.join(moved)})" if moved else "") + "; removed it from the swarm.")
