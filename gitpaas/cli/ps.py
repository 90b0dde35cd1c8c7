"""ps, ps:scale."""

from __future__ import annotations

import click

from gitpaas.cli.group import cli
from gitpaas.cli.common import app_option, json_option, platform, print_json, print_table, release_output
from gitpaas.errors import UsageError
from gitpaas.operations import processes as list_processes
from gitpaas.operations import restart, scale, stop_process
from gitpaas.shapes import dyno_json


@cli.command("ps")
@app_option
@json_option
def ps(app: str, as_json: bool) -> None:
    """List the app's running processes."""
    plat = platform()
    processes = list_processes(plat, app)
    if as_json:
        app_id = plat.apps.get(app).id
        print_json([dyno_json(p, app_id) for p in processes])
        return
    if not processes:
        click.echo(f"No processes are running for {app}.")
        return
    print_table(["process", "state", "release", "command", "since", "restarts"], (
        (p.name, p.state, f"v{p.release_version}", p.command or "(image default)", p.created_at.replace("T", " "),
         p.restarts) for p in processes), title=f"=== {app} processes")


@cli.command("ps:scale")
@click.argument("changes", nargs=-1, required=True, metavar="TYPE=N...")
@app_option
def ps_scale(changes: tuple[str, ...], app: str) -> None:
    """Change how many processes of each type run, e.g. web=2 worker=1."""
    wanted: dict[str, int] = {}
    for change in changes:
        name, sep, raw = change.partition("=")
        if not sep or not name or not raw.isdigit():
            raise UsageError(f"cannot read {change!r}: write TYPE=N, e.g. web=2")
        wanted[name] = int(raw)
    formation = scale(platform(), app, wanted, release_output())
    click.echo(f"Scaling {app}... done, now running " + ", ".join(f"{t}={q}" for t, q in formation.items()))


@cli.command("ps:stop")
@click.argument("dyno", metavar="PROCESS")
@app_option
def ps_stop(dyno: str, app: str) -> None:
    """Stop a process: a running release command (release.NNNN) is cancelled; web.1 etc. restart."""
    outcome = stop_process(platform(), app, dyno, release_output())
    if outcome == "stopped":
        click.echo(f"Stopping {dyno} of {app}... done (the release it was running fails: release command stopped)")
    else:
        click.echo(f"Stopping {dyno} of {app}... done, it restarted (use ps:scale to run fewer)")


@cli.command("ps:restart")
@click.argument("target", required=False, metavar="[TYPE|PROCESS]")
@app_option
def ps_restart(target: str | None, app: str) -> None:
    """Restart the formation (or one type, or one process) with fresh processes, no downtime."""
    names = restart(platform(), app, target, release_output())
    click.echo(f"Restarting {', '.join(names)} of {app}... done")
