"""apps, apps:create, apps:info, apps:destroy."""

from __future__ import annotations

import click

from gitpaas.cli.common import backend, json_option, print_json, print_table
from gitpaas.cli.group import cli
from gitpaas.errors import UsageError


@cli.command("apps:create")
@click.argument("name")
@click.option("--owner", metavar="EMAIL", help="the account that owns it (may use it over the API, SSH and HTTPS)")
@click.option("-s", "--stack", metavar="STACK", help="the stack it is built on (default: the server's; see `gitpaas stacks`)")
def apps_create(name: str, owner: str | None, stack: str | None) -> None:
    """Create an app: its git repository, its records, its URL."""
    info = backend().create_app(name, stack, owner)
    click.echo(f"Creating {name}... done")
    click.echo(f"{info['web_url']} | {info['git_url']}")
    click.echo(f"Deploy with: git push {info['git_url']} main")


@cli.command("apps")
@json_option
def apps_list(as_json: bool) -> None:
    """List the apps (of this home, or the ones you may use on the server you are logged in to)."""
    where = backend()
    apps = where.apps()
    if as_json:
        print_json(apps)
        return
    if not apps:
        click.echo("No apps yet. Create one with `gitpaas apps:create NAME`.")
        return
    print_table(["name", "release", "url"], ((app["name"], app["current_release"] or "-", app["web_url"])
                                             for app in apps), title=f"=== Apps in {where.where}")


@cli.command("apps:info")
@click.option("-a", "--app", "app", required=True, metavar="APP")
@json_option
def apps_info(app: str, as_json: bool) -> None:
    """Show an app: URLs, current release, formation."""
    info = backend().app(app)
    if as_json:
        print_json(info)
        return
    click.echo(f"=== {info['name']}")
    for key in ("git_url", "web_url", "created_at", "current_release"):
        click.echo(f"{key.replace('_', ' ').title() + ':':18}{info[key] or '-'}")
    dynos = ", ".join(f"{f['type']}={f['quantity']}" for f in info["formation"]) or "-"
    click.echo(f"{'Formation:':18}{dynos}")
    stack = info["stack"] + ("" if info["build_stack"] == info["stack"] else f" (next build: {info['build_stack']})")
    click.echo(f"{'Stack:':18}{stack}")
    if info.get("scheduler"):
        click.echo(f"{'Scheduler:':18}{info['scheduler']}")
    if info.get("nodes"):
        click.echo(f"{'Nodes:':18}" + "; ".join(f"{node}: {', '.join(names)}" for node, names in info["nodes"].items()))
    if info.get("pipeline"):
        click.echo(f"{'Pipeline:':18}{info['pipeline']['name']} ({info['pipeline']['stage']})")
    if info.get("review"):
        click.echo(f"{'Review app:':18}of {info['review']['parent']}'s branch {info['review']['branch']} "
                   "(deleting the branch destroys it)")
    if info["postdeploy"]:
        post = info["postdeploy"]
        click.echo(f"{'Postdeploy:':18}{post['status']} after v{post['release']} (exit {post['exit_status']}; "
                   f"output in {post['log']})")


@cli.command("apps:destroy")
@click.argument("name", required=False)
@click.option("-a", "--app", "app", metavar="APP", help="the app (instead of NAME)")
@click.option("--confirm", metavar="NAME", help="the app's name again, to confirm")
def apps_destroy(name: str | None, app: str | None, confirm: str | None) -> None:
    """Destroy an app: its containers, images, add-ons, router entry, repository and records (a final
    backup of each PostgreSQL add-on is kept in the home, listed by `pg:backups`)."""
    target = name or app
    if not target:
        raise UsageError("which app? usage: gitpaas apps:destroy NAME --confirm NAME")
    where = backend()
    where.app(target)
    if confirm != target:
        raise UsageError(f"this permanently destroys {target}; to proceed, run again with --confirm {target}")
    kept = where.destroy_app(target)
    click.echo(f"Destroying {target} (including all its releases and add-ons)... done")
    for backup in kept:
        click.echo(f"Kept the final backup {backup['id']} of {backup['addon']} "
                   f"(`gitpaas pg:backups -a {target}`; delete it with `gitpaas pg:backups:delete {backup['id']} -a {target}`)")
