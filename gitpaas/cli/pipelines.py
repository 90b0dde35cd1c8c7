"""pipelines*, reviewapps*: apps by stage, promotion of the very same slug, review apps from branches."""

from __future__ import annotations

import click

from gitpaas import reviewapps
from gitpaas.cli.common import (
    app_option,
    backend,
    json_option,
    platform,
    print_json,
    print_table,
    release_output,
    when,
)
from gitpaas.cli.group import cli
from gitpaas.config import parse_assignments
from gitpaas.errors import UsageError
from gitpaas.store.pipelines import STAGES

stage_option = click.option("-s", "--stage", required=True, type=click.Choice(STAGES), help="the app's stage")
pipeline_option = click.option("-p", "--pipeline", "pipeline", required=True, metavar="PIPELINE",
                               help="the pipeline (name or id)")


def _review_line(review: dict) -> str:
    if not review["enabled"]:
        return "off"
    return (f"on, for {review['app']}'s branches"
            + (f"; destroyed after {review['stale_days']} days without a push" if review["autodestroy"] else ""))


@cli.command("pipelines:create")
@click.argument("name")
@click.option("-a", "--app", "app", default=None, metavar="APP", help="an app to add to it at once (with --stage)")
@click.option("-s", "--stage", default=None, type=click.Choice(STAGES), help="the stage of --app")
def pipelines_create(name: str, app: str | None, stage: str | None) -> None:
    """Create a pipeline: apps by stage (review, development, staging, production), promoted downstream."""
    if (app is None) != (stage is None):
        raise UsageError("--app and --stage go together")
    pipeline = backend().create_pipeline(name)
    click.echo(f"Creating {pipeline['name']} pipeline... done")
    if app:
        backend().couple(pipeline["name"], app, stage)
        click.echo(f"Adding {app} to {pipeline['name']} pipeline as {stage}... done")


@cli.command("pipelines")
@json_option
def pipelines_list(as_json: bool) -> None:
    """List the pipelines."""
    found = backend().pipelines()
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("No pipelines yet. Create one with `gitpaas pipelines:create NAME`.")
        return
    print_table(["name", "apps", "review apps", "created"],
                ((p["name"], ", ".join(f"{a['app']} ({a['stage']})" for a in p["apps"] if a["stage"] != "review")
                  or "none", _review_line(p["review"]), when(p["created_at"])) for p in found), title="=== Pipelines")


@cli.command("pipelines:info")
@click.argument("name")
@json_option
def pipelines_info(name: str, as_json: bool) -> None:
    """Show a pipeline's apps by stage, with the release each runs."""
    pipeline = backend().pipeline(name)
    if as_json:
        print_json(pipeline)
        return
    click.echo(f"=== {pipeline['name']}")
    click.echo(f"owner: {pipeline['owner'] or 'the server operator'}")
    click.echo(f"review apps: {_review_line(pipeline['review'])}")
    if not pipeline["apps"]:
        click.echo(f"No apps yet. Add one with `gitpaas pipelines:add {pipeline['name']} -a APP --stage STAGE`.")
        return

    def release(r: dict | None) -> str:
        if not r:
            return "none"
        origin = r.get("promoted_from")
        return f"v{r['version']} {r['description']}" + (" (same slug)" if origin else "")
    print_table(["app name", "stage", "release", "commit", "slug"],
                ((a["app"], a["stage"], release(a["release"]), ((a["release"] or {}).get("commit") or "")[:7],
                  (((a["release"] or {}).get("slug") or {}).get("id") or "")[:8]) for a in pipeline["apps"]))


@cli.command("pipelines:add")
@click.argument("name")
@app_option
@stage_option
def pipelines_add(name: str, app: str, stage: str) -> None:
    """Add an app to a pipeline at a stage."""
    pipeline = backend().couple(name, app, stage)
    click.echo(f"Adding {app} to {pipeline['name']} pipeline as {stage}... done")


@cli.command("pipelines:update")
@app_option
@stage_option
def pipelines_update(app: str, stage: str) -> None:
    """Move an app to another stage of its pipeline."""
    click.echo(f"Changing {app} to {stage} in {backend().move(app, stage)}... done")


@cli.command("pipelines:remove")
@app_option
def pipelines_remove(app: str) -> None:
    """Take an app out of its pipeline (the app stays)."""
    click.echo(f"Removing {app} from {backend().uncouple(app)}... done")


@cli.command("pipelines:destroy")
@click.argument("name")
def pipelines_destroy(name: str) -> None:
    """Destroy a pipeline (its apps stay, out of any pipeline)."""
    click.echo(f"Destroying {backend().destroy_pipeline(name)} pipeline... done")


@cli.command("pipelines:diff")
@app_option
def pipelines_diff(app: str) -> None:
    """The commits the app's current release has that each app of the next stage lacks."""
    source_commit, differences = backend().diff(app)
    if not differences:
        click.echo(f"{app} has no apps downstream to compare with")
        return
    for difference in differences:
        target, ahead, behind = difference["target"], difference["ahead"], difference["behind"]
        if difference["unknown"]:
            click.echo(f"{app} was not compared to {target}: {difference['unknown']}")
        elif not ahead and not behind:
            click.echo(f"{app} is up to date with {target} ({source_commit[:7]})")
        else:
            click.echo(f"=== {app} is ahead of {target} by {len(ahead)} commit{'' if len(ahead) == 1 else 's'}"
                       + (f" (and behind by {behind})" if behind else ""))
            if ahead:
                print_table(["sha", "date", "author", "message"],
                            ((c["sha"][:7], when(c["date"]), c["author"], c["message"]) for c in ahead))


@cli.command("pipelines:promote")
@app_option
@click.option("-t", "--to", "to", default=None, metavar="APP1,APP2",
              help="the apps to promote to (default: every app of the next stage)")
def pipelines_promote(app: str, to: str | None) -> None:
    """Release the app's current slug — the same image, not rebuilt — to the next stage's apps,
    each with its own config vars and add-ons; its release phase runs there first."""
    chosen = [name.strip() for name in (to or "").split(",") if name.strip()] or None

    def announce(source: dict, targets: list[str]) -> None:
        click.echo(f"Promoting {source['app']} v{source['version']} (slug {(source['slug'] or '')[:8]}, "
                   f"commit {(source['commit'] or 'none')[:7]}) to {', '.join(targets)}")
    targets = backend().promote(app, chosen, announce)
    click.echo("")
    for target in targets:
        version = f" v{target['release']['version']}" if target["release"] else ""
        click.echo(f"{target['app']}: {target['status']}{version}"
                   + (f": {target['error_message']}" if target["error_message"] else ""))
    failed = [t["app"] for t in targets if t["status"] != "succeeded"]
    if failed:
        kept = [f"{name} keeps running {backend().app(name)['current_release'] or 'nothing'}" for name in failed]
        click.echo(" !    Promotion to some apps failed; " + ", ".join(kept), err=True)
        raise click.exceptions.Exit(7)
    click.echo("Promotion successful")


# --- review apps -------------------------------------------------------------------------------

@cli.command("reviewapps:enable")
@pipeline_option
@app_option
@click.option("--autodeploy", is_flag=True,
              help="accepted for the Heroku CLI's sake: gitpaas deploys a branch's review app on every push")
@click.option("--autodestroy", is_flag=True, help="destroy a review app whose branch was not pushed for --stale-days")
@click.option("--stale-days", type=click.IntRange(1, 30), default=None,
              help="days without a push before --autodestroy (default 5)")
def reviewapps_enable(pipeline: str, app: str, autodeploy: bool, autodestroy: bool, stale_days: int | None) -> None:
    """Give each branch pushed to APP (other than main or master) its own review app in PIPELINE."""
    found = backend().enable_review_apps(pipeline, app, autodestroy, stale_days)
    click.echo(f"Review apps enabled for {found['name']}: {_review_line(found['review'])}")
    click.echo("Push a branch: git push <remote> BRANCH; delete it to destroy its review app: git push <remote> :BRANCH")


@cli.command("reviewapps:disable")
@pipeline_option
def reviewapps_disable(pipeline: str) -> None:
    """Stop making review apps (the existing ones stay until their branches are deleted)."""
    click.echo(f"Review apps disabled for {backend().disable_review_apps(pipeline)['name']}")


@cli.command("reviewapps")
@pipeline_option
@json_option
def reviewapps_list(pipeline: str, as_json: bool) -> None:
    """List a pipeline's review apps."""
    found, apps = backend().review_apps(pipeline)
    if as_json:
        print_json(apps)
        return
    if not apps:
        click.echo(f"{found['name']} has no review apps." + ("" if found["review"]["enabled"] else
                   f" Enable them with `gitpaas reviewapps:enable -p {found['name']} -a APP`."))
        return
    print_table(["app", "branch", "release", "url", "last push"],
                ((a["app"], a["branch"], f"v{a['current_release']}" if a["current_release"] else "none",
                  a["web_url"], when(a["pushed_at"])) for a in apps), title=f"=== {found['name']} review apps")


@cli.command("reviewapps:config")
@pipeline_option
@json_option
def reviewapps_config(pipeline: str, as_json: bool) -> None:
    """The config vars each new review app gets (over app.json's env values)."""
    config = backend().review_config(pipeline)
    if as_json:
        print_json(config)
        return
    if not config:
        click.echo(f"No review config vars. Set some with `gitpaas reviewapps:config:set KEY=VALUE -p {pipeline}`.")
    for key, value in sorted(config.items()):
        click.echo(f"{key}: {value}")


@cli.command("reviewapps:config:set")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@pipeline_option
def reviewapps_config_set(assignments: tuple[str, ...], pipeline: str) -> None:
    """Set config vars new review apps get."""
    values = parse_assignments(assignments)
    backend().review_config(pipeline, values, [])
    click.echo(f"Set {', '.join(values)} for {pipeline}'s new review apps")


@cli.command("reviewapps:config:unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@pipeline_option
def reviewapps_config_unset(keys: tuple[str, ...], pipeline: str) -> None:
    """Unset config vars new review apps would get."""
    backend().review_config(pipeline, {}, list(keys))
    click.echo(f"Unset {', '.join(keys)} for {pipeline}'s new review apps")


@cli.command("reviewapps:prune")
def reviewapps_prune() -> None:
    """Destroy the review apps whose branch was not pushed for their pipeline's stale days (with
    autodestroy on); `gitpaas server` does this every hour."""
    destroyed = reviewapps.destroy_stale(platform(), release_output())
    click.echo("Destroyed " + ", ".join(destroyed) if destroyed else "No stale review apps")
