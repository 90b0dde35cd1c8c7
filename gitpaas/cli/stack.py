"""stacks, stack, stack:set, stack:build: the Debian bases apps are built on, and which one each app uses."""

from __future__ import annotations

import click

from gitpaas import stacks
from gitpaas.cli.common import app_option, backend, json_option, platform, print_json, print_table
from gitpaas.cli.group import cli
from gitpaas.errors import UsageError


@cli.command("stacks")
@json_option
def stacks_list(as_json: bool) -> None:
    """List the stacks this server has built or can build, with the runtimes each provides."""
    # Imported when the command runs: every other command starts without loading docker-py.
    from gitpaas.build.stack import provided_runtimes, stack_status

    plat = platform()
    client = plat.engine()
    provided = provided_runtimes(client, plat.settings)
    rows = []
    for stack in stacks.STACKS.values():
        image = plat.settings.stack_image(stack)
        status = stack_status(client, image, stack)
        runtimes = provided[stack.name]
        rows.append({
            "name": stack.name, "debian": stack.debian, "state": stack.state,
            "default": stack.name == plat.settings.default_stack, "image": image, "status": status,
            "python": [exact or minor for minor, exact in runtimes.python.items()], "node": runtimes.node,
        })
    if as_json:
        print_json(rows)
        return
    words = {"current": "built", "outdated": "to rebuild", "missing": "not built"}
    print_table(["name", "debian", "state", "image", "python", "node.js"], (
        (("* " if row["default"] else "") + row["name"], row["debian"], row["state"], words[row["status"]],
         ", ".join(row["python"]), row["node"]) for row in rows),
        title="=== Stacks (* new apps' default; a stack not built yet is built by its first build)")


@cli.command("stack")
@app_option
def stack_show(app: str) -> None:
    """Show the app's stack among those there are (as `heroku stack`)."""
    stack, build_stack = backend().stacks(app)
    click.echo(f"=== {app} Available Stacks")
    for candidate in stacks.STACKS.values():
        if candidate.name == stack:
            click.echo(f"* {candidate.name}")
        elif candidate.name == build_stack:
            click.echo(f"  {candidate.name} (active on next deploy)")
        else:
            click.echo(f"  {candidate.name}")


@cli.command("stack:set")
@click.argument("stack")
@app_option
def stack_set(stack: str, app: str) -> None:
    """Choose the stack of the app's next build (a push builds on it and releases as usual)."""
    current, build_stack = backend().set_stack(app, stack)
    click.echo(f"Setting stack to {build_stack}... done")
    if current != build_stack:
        click.echo(f"You will need to redeploy {app} for the change to take effect.")
        click.echo(f"Push a commit to build {app} on {build_stack} (an unchanged app can push an empty one: "
                   f"git commit --allow-empty -m 'Build on {build_stack}' && git push).")


@cli.command("stack:build")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="every stack gitpaas has")
@click.option("--force", is_flag=True, help="rebuild even when the image is current")
@click.option("--verbose", is_flag=True, help="show debootstrap's and apt's own output")
def stack_build(name: str | None, every: bool, force: bool, verbose: bool) -> None:
    """Build a stack image (default: the server's default stack) with debootstrap + docker import;
    an image that is current is reused."""
    from gitpaas.build.stack import build_stack

    if name and every:
        raise UsageError("name one stack or give --all, not both")
    plat = platform()
    chosen = list(stacks.STACKS.values()) if every else [stacks.get(name or plat.settings.default_stack)]
    for stack in chosen:
        build_stack(plat.engine(), stack, plat.settings.stack_image(stack), click.echo, force=force, verbose=verbose)
