"""ps, ps:scale, ps:restart, ps:stop, ps:type (alias ps:resize)."""

from __future__ import annotations

import click

from gitpaas import sizes
from gitpaas.cli.common import app_option, backend, json_option, print_json, print_table
from gitpaas.cli.group import cli
from gitpaas.errors import UsageError
from gitpaas.names import parse_number
from gitpaas.shapes import dyno_json


@cli.command("ps")
@app_option
@json_option
def ps(app: str, as_json: bool) -> None:
    """List the app's running processes."""
    app_id, processes = backend().processes(app)
    if as_json:
        print_json([dyno_json(p, app_id) for p in processes])
        return
    if not processes:
        click.echo(f"No processes are running for {app}.")
        return
    nodes = any(p.node for p in processes)  # (a swarm: where each runs)
    print_table(["process", "state", "release", *(["node"] if nodes else []), "size", "command", "since", "restarts",
                 "last crash"], (
        (p.name, p.state, f"v{p.release_version}", *([p.node or "-"] if nodes else []), p.size,
         p.command or "(image default)", p.created_at.replace("T", " "), p.restarts, p.crash_reason)
        for p in processes),
        title=f"=== {app} processes")


@cli.command("ps:scale")
@click.argument("changes", nargs=-1, required=True, metavar="TYPE=N...")
@app_option
def ps_scale(changes: tuple[str, ...], app: str) -> None:
    """Change how many processes of each type run, e.g. web=2 worker=1."""
    wanted: dict[str, int] = {}
    for change in changes:
        name, sep, raw = change.partition("=")
        quantity = parse_number(raw, digits=9)
        if not sep or not name or quantity is None:
            raise UsageError(f"cannot read {change!r}: write TYPE=N, e.g. web=2")
        wanted[name] = quantity
    formation = backend().scale(app, wanted)
    click.echo(f"Scaling {app}... done, now running " + ", ".join(f"{t}={q}" for t, q in formation.items()))


@cli.command("ps:stop")
@click.argument("dyno", metavar="PROCESS")
@app_option
def ps_stop(dyno: str, app: str) -> None:
    """Stop a process: a running release command (release.NNNN) is cancelled; web.1 etc. restart."""
    outcome = backend().stop(app, dyno)
    if outcome == "stopped" and dyno.startswith("release."):
        click.echo(f"Stopping {dyno} of {app}... done (the release it was running fails: release command stopped)")
    elif outcome == "stopped":
        click.echo(f"Stopping {dyno} of {app}... done")
    else:
        click.echo(f"Stopping {dyno} of {app}... done, it restarted (use ps:scale to run fewer)")


@cli.command("ps:restart")
@click.argument("target", required=False, metavar="[TYPE|PROCESS]")
@app_option
def ps_restart(target: str | None, app: str) -> None:
    """Restart the formation (or one type, or one process) with fresh processes, no downtime."""
    names = backend().restart(app, target)
    click.echo(f"Restarting {', '.join(names)} of {app}... done")


@cli.command("ps:type")
@click.argument("changes", nargs=-1, metavar="[TYPE=SIZE...]")
@app_option
@json_option
def ps_type(changes: tuple[str, ...], app: str, as_json: bool) -> None:
    """Show or set each process type's dyno size, e.g. web=standard-2x (sizes: see README).

    A changed type's processes are replaced by fresh ones at the new size, with no downtime;
    release=SIZE sizes the release command from the next release on."""
    wanted: dict[str, str] = {}
    for change in changes:
        name, sep, size = change.partition("=")
        if not sep or not name or not size:
            raise UsageError(f"cannot read {change!r}: write TYPE=SIZE, e.g. web=standard-2x")
        wanted[name] = size
    current, formation = backend().sizes(app, wanted)
    rows = [(process_type, sizes.get(size), formation.get(process_type, 0)) for process_type, size in current.items()]
    if as_json:
        print_json([{"type": t, "size": s.name, "quantity": q, "memory_mb": s.memory_mb, "cpu_share": s.cpu_share,
                     "pids": s.pids} for t, s, q in rows])
        return
    if not rows:
        click.echo(f"{app} has no process types yet: deploy it with git push first.")
        return
    print_table(["type", "size", "qty", "memory", "cpu share", "processes"],
                ((t, s.name, q, f"{s.memory_mb} MB", f"{s.cpu_share:g}", s.pids) for t, s, q in rows),
                title=f"=== {app} dyno sizes")


cli.add_command(ps_type, "ps:resize")

