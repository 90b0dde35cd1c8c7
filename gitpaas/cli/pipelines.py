"""pipelines*, reviewapps*: apps by stage, promotion of the very same slug, review apps from branches."""

from __future__ import annotations

import click

from gitpaas import pipelines, reviewapps
from gitpaas.cli.common import (
    actor,
    app_option,
    json_option,
    platform,
    print_json,
    print_table,
    release_output,
    when,
)
from gitpaas.cli.group import cli
from gitpaas.config import parse_assignments
from gitpaas.store.pipelines import STAGES

stage_option = click.option("-s", "--stage", required=True, type=click.Choice(STAGES), help="the app's stage")
pipeline_option = click.option("-p", "--pipeline", "pipeline", required=True, metavar="PIPELINE",
                               help="the pipeline (name or id)")


def _pipeline_json(pipeline) -> dict:
    data = pipeline.to_dict()
    data["review"] = {key: value for key, value in data["review"].items() if key != "config"}
    return data


@cli.command("pipelines:create")
@click.argument("name")
@click.option("-a", "--app", "app", default=None, metavar="APP", help="an app to add to it at once (with --stage)")
@click.option("-s", "--stage", default=None, type=click.Choice(STAGES), help="the stage of --app")
def pipelines_create(name: str, app: str | None, stage: str | None) -> None:
    """Create a pipeline: apps by stage (review, development, staging, production), promoted downstream."""
    if (app is None) != (stage is None):
        raise click.UsageError("--app and --stage go together")
    pipeline = pipelines.create(platform(), actor(), name)
    click.echo(f"Creating {pipeline.name} pipeline... done")
    if app:
        pipelines.couple(platform(), actor(), pipeline.name, app, stage)
        click.echo(f"Adding {app} to {pipeline.name} pipeline as {stage}... done")


@cli.command("pipelines")
@json_option
def pipelines_list(as_json: bool) -> None:
    """List the pipelines."""
    found = pipelines.visible(platform(), actor())
    if as_json:
        print_json([_pipeline_json(p) for p in found])
        return
    if not found:
        click.echo("No pipelines yet. Create one with `gitpaas pipelines:create NAME`.")
        return
    print_table(["name", "apps", "review apps", "created"],
                ((p.name, ", ".join(f"{c.app} ({c.stage})" for c in p.couplings if c.stage != "review") or "none",
                  f"on ({p.review.app}'s branches)" if p.review.enabled else "off", when(p.created_at))
                 for p in found), title="=== Pipelines")


@cli.command("pipelines:info")
@click.argument("name")
@json_option
def pipelines_info(name: str, as_json: bool) -> None:
    """Show a pipeline's apps by stage, with the release each runs."""
    plat = platform()
    pipeline = pipelines.get(plat, actor(), name)
    rows = list(pipelines.describe_stage_apps(plat, pipeline))
    if as_json:
        print_json({"pipeline": _pipeline_json(pipeline),
                    "apps": [{"stage": stage, "app": app, "release": {k: release.get(k) for k in (
                        "version", "description", "commit", "slug", "status", "promoted_from")} if release else None}
                             for stage, app, release in rows]})
        return
    click.echo(f"=== {pipeline.name}")
    click.echo(f"owner: {pipeline.owner or 'the server operator'}")
    review = pipeline.review
    click.echo("review apps: " + (f"on, for {review.app}'s branches"
                                  + (f"; destroyed after {review.stale_days} days without a push" if review.autodestroy
                                     else "") if review.enabled else "off"))
    if not rows:
        click.echo(f"No apps yet. Add one with `gitpaas pipelines:add {pipeline.name} -a APP --stage STAGE`.")
        return
    print_table(["app name", "stage", "release", "commit", "slug"],
                ((app, stage, f"v{r['version']} {r['description']}" if r else "none",
                  (r.get("commit") or "")[:7] if r else "", ((r.get("slug") or {}).get("id") or "")[:8] if r else "")
                 for stage, app, r in rows))


@cli.command("pipelines:add")
@click.argument("name")
@app_option
@stage_option
def pipelines_add(name: str, app: str, stage: str) -> None:
    """Add an app to a pipeline at a stage."""
    pipeline = pipelines.get(platform(), actor(), name)
    pipelines.couple(platform(), actor(), pipeline.name, app, stage)
    click.echo(f"Adding {app} to {pipeline.name} pipeline as {stage}... done")


@cli.command("pipelines:update")
@app_option
@stage_option
def pipelines_update(app: str, stage: str) -> None:
    """Move an app to another stage of its pipeline."""
    pipeline, _ = pipelines.move(platform(), actor(), app, stage)
    click.echo(f"Changing {app} to {stage} in {pipeline.name}... done")


@cli.command("pipelines:remove")
@app_option
def pipelines_remove(app: str) -> None:
    """Take an app out of its pipeline (the app stays)."""
    pipeline, _ = pipelines.uncouple(platform(), actor(), app)
    click.echo(f"Removing {app} from {pipeline.name}... done")


@cli.command("pipelines:destroy")
@click.argument("name")
def pipelines_destroy(name: str) -> None:
    """Destroy a pipeline (its apps stay, out of any pipeline)."""
    pipeline = pipelines.destroy(platform(), actor(), name)
    click.echo(f"Destroying {pipeline.name} pipeline... done")


@cli.command("pipelines:diff")
@app_option
def pipelines_diff(app: str) -> None:
    """The commits the app's current release has that each app of the next stage lacks."""
    source_commit, differences = pipelines.diff(platform(), actor(), app)
    if not differences:
        click.echo(f"{app} has no apps downstream to compare with")
        return
    for difference in differences:
        target = difference.target
        if difference.unknown:
            click.echo(f"{app} was not compared to {target}: {difference.unknown}")
        elif not difference.ahead and not difference.behind:
            click.echo(f"{app} is up to date with {target} ({source_commit[:7]})")
        else:
            click.echo(f"=== {app} is ahead of {target} by {len(difference.ahead)} commit"
                       f"{'' if len(difference.ahead) == 1 else 's'}"
                       + (f" (and behind by {difference.behind})" if difference.behind else ""))
            if difference.ahead:
                print_table(["sha", "date", "author", "message"],
                            ((sha[:7], when(date), author, message) for sha, author, date, message in difference.ahead))


@cli.command("pipelines:promote")
@app_option
@click.option("-t", "--to", "to", default=None, metavar="APP1,APP2",
              help="the apps to promote to (default: every app of the next stage)")
def pipelines_promote(app: str, to: str | None) -> None:
    """Release the app's current slug — the same image, not rebuilt — to the next stage's apps,
    each with its own config vars and add-ons; its release phase runs there first."""
    plat, who = platform(), actor()
    targets = [name.strip() for name in (to or "").split(",") if name.strip()] or None
    plan = pipelines.begin_promotion(plat, who, app, targets)
    source = plan.source
    click.echo(f"Promoting {app} v{source.version} (slug {(source.slug or {}).get('id', '')[:8]}, "
               f"commit {(source.commit or 'none')[:7]}) to "
               + ", ".join(t.app for t in plan.promotion.targets))
    output = release_output()

    def output_for(target):
        output.stage(f"Promoting to {target.app}")
        return output

    promotion = pipelines.run_promotion(plat, who, plan, output_for)
    click.echo("")
    for target in promotion.targets:
        version = f" v{target.release['version']}" if target.release else ""
        click.echo(f"{target.app}: {target.status}{version}" + (f": {target.error_message}" if target.error_message else ""))
    failed = [t.app for t in promotion.targets if t.status != "succeeded"]
    if failed:
        running = {name: plat.apps.get(name).current_release for name in failed}
        click.echo(" !    Promotion to some apps failed; " + ", ".join(
            f"{name} keeps running " + (f"v{version}" if version else "nothing") for name, version in running.items()),
            err=True)
        raise click.exceptions.Exit(7)
    click.echo("Promotion successful")


# --- review apps -------------------------------------------------------------------------------

@cli.command("reviewapps:enable")
@pipeline_option
@app_option
@click.option("--autodeploy", is_flag=True,
              help="accepted for the Heroku CLI's sake: gitpaas deploys a branch's review app on every push")
@click.option("--autodestroy", is_flag=True, help="destroy a review app whose branch was not pushed for --stale-days")
@click.option("--stale-days", type=int, default=None, help="days without a push before --autodestroy (default 5)")
def reviewapps_enable(pipeline: str, app: str, autodeploy: bool, autodestroy: bool, stale_days: int | None) -> None:
    """Give each branch pushed to APP (other than main or master) its own review app in PIPELINE."""
    found = reviewapps.enable(platform(), actor(), pipeline, app, autodestroy=autodestroy, stale_days=stale_days)
    click.echo(f"Review apps enabled for {found.name}: each branch pushed to {app} gets one"
               + (f"; destroyed after {found.review.stale_days} days without a push" if autodestroy else ""))
    click.echo("Push a branch: git push <remote> BRANCH; delete it to destroy its review app: git push <remote> :BRANCH")


@cli.command("reviewapps:disable")
@pipeline_option
def reviewapps_disable(pipeline: str) -> None:
    """Stop making review apps (the existing ones stay until their branches are deleted)."""
    found = reviewapps.disable(platform(), actor(), pipeline)
    click.echo(f"Review apps disabled for {found.name}")


@cli.command("reviewapps")
@pipeline_option
@json_option
def reviewapps_list(pipeline: str, as_json: bool) -> None:
    """List a pipeline's review apps."""
    plat = platform()
    found = pipelines.get(plat, actor(), pipeline)
    apps = reviewapps.of_pipeline(plat, found)
    if as_json:
        print_json([{"app": a.name, "branch": a.review.get("branch"), "parent": a.review.get("parent"),
                     "current_release": a.current_release, "web_url": plat.settings.web_url(a.name),
                     "pushed_at": a.review.get("pushed_at")} for a in apps])
        return
    if not apps:
        click.echo(f"{found.name} has no review apps." + ("" if found.review.enabled else
                   f" Enable them with `gitpaas reviewapps:enable -p {found.name} -a APP`."))
        return
    print_table(["app", "branch", "release", "url", "last push"],
                ((a.name, a.review.get("branch"), f"v{a.current_release}" if a.current_release else "none",
                  plat.settings.web_url(a.name), when(a.review.get("pushed_at") or a.created_at)) for a in apps),
                title=f"=== {found.name} review apps")


@cli.command("reviewapps:config")
@pipeline_option
@json_option
def reviewapps_config(pipeline: str, as_json: bool) -> None:
    """The config vars each new review app gets (over app.json's env values)."""
    config = pipelines.get(platform(), actor(), pipeline).review.config
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
    reviewapps.set_config(platform(), actor(), pipeline, values, [])
    click.echo(f"Set {', '.join(values)} for {pipeline}'s new review apps")


@cli.command("reviewapps:config:unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@pipeline_option
def reviewapps_config_unset(keys: tuple[str, ...], pipeline: str) -> None:
    """Unset config vars new review apps would get."""
    reviewapps.set_config(platform(), actor(), pipeline, {}, list(keys))
    click.echo(f"Unset {', '.join(keys)} for {pipeline}'s new review apps")


@cli.command("reviewapps:prune")
def reviewapps_prune() -> None:
    """Destroy the review apps whose branch was not pushed for their pipeline's stale days (with
    autodestroy on); `gitpaas server` does this every hour."""
    destroyed = reviewapps.destroy_stale(platform(), release_output())
    click.echo("Destroyed " + ", ".join(destroyed) if destroyed else "No stale review apps")
