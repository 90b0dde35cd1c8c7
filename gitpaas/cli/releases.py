"""releases, releases:info, releases:output."""

from __future__ import annotations

import time

import click

from gitpaas import events
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
from gitpaas.errors import UsageError
from gitpaas.names import parse_number
from gitpaas.operations import set_retention
from gitpaas.release import FAILED, PENDING, Release, describe_timings, parse_version


def _resolve(app: str, version: str | None) -> Release:
    releases = platform().apps.releases(app)
    platform().apps.get(app)
    if version is None:
        latest = releases.latest()
        if latest is None:
            raise UsageError(f"{app} has no releases yet")
        return latest
    return releases.get(_version_number(version))


def _version_number(version: str) -> int:
    number = parse_version(version)
    if number is None:
        raise UsageError(f"{version!r} is not a release version (write it as v12 or 12)")
    return number


@cli.command("releases")
@app_option
@json_option
@click.option("-n", "--num", "limit", type=click.IntRange(min=1), default=15, show_default=True,
              help="how many of the newest releases")
def releases_list(app: str, as_json: bool, limit: int) -> None:
    """List an app's releases, newest first."""
    plat = platform()
    plat.apps.get(app)
    store = plat.apps.releases(app)
    found = store.list(limit=limit)
    for damaged in store.skipped:  # the others are listed; this says which could not be
        click.echo(f" !    {damaged.record} is damaged ({damaged.reason}) and left out of this list", err=True)
    if as_json:
        print_json([release.to_dict() for release in found])
        return
    if not found:
        click.echo(f"{app} has no releases yet. Deploy with: git push {plat.apps.repo_path(app)} main")
        return
    print_table(["version", "change", "by", "when", "status"], (
        (f"v{r.version}" + (" (current)" if r.current else ""), r.description, r.user.get("email"), when(r.created_at), r.status)
        for r in found), title=f"=== {app} releases")


@cli.command("releases:info")
@click.argument("version", required=False)
@app_option
@json_option
def releases_info(version: str | None, app: str, as_json: bool) -> None:
    """Show one release (the latest by default)."""
    release = _resolve(app, version)
    if as_json:
        print_json(release.to_dict())
        return
    click.echo(f"=== Release v{release.version}")
    rows = [
        ("Change", release.description), ("By", release.user.get("email")), ("When", when(release.created_at)),
        ("Status", release.status + (f": {release.failure['reason']}" if release.failure else "")),
        ("Rollback", "eligible" if release.eligible_for_rollback else "not eligible"
         + (" (slug pruned)" if release.slug_pruned else "")),
        ("Current", "yes" if release.current else "no"), ("Commit", release.commit), ("Image", release.image),
        ("Process types", ", ".join(release.process_types) or "-"),
        ("Config vars", ", ".join(sorted(release.config_vars)) or "-"),
        ("Add-ons", ", ".join(release.addon_plan_names) or "-"),
        ("Output", release.output_stream_url),
        ("Timings", describe_timings(release.version, release.timings, verb="released") if release.timings else None),
    ]
    for key, value in rows:
        click.echo(f"{key + ':':15}{value if value is not None else '-'}")


@cli.command("releases:output")
@click.argument("version", required=False)
@app_option
def releases_output(version: str | None, app: str) -> None:
    """Print a release command's output; while the release is pending, follow it until it ends.

    Exits 0 when the release succeeded, 1 when it failed.
    """
    release = _resolve(app, version)
    releases = platform().apps.releases(app)
    path = releases.output_path(release.version)
    printed = 0
    while True:
        pending = releases.get(release.version).status == PENDING  # read before the file: no lost tail
        printed += _print_from(path, printed)
        if not pending:
            break
        time.sleep(0.2)
    release = releases.get(release.version)
    if not printed:
        click.echo(f"v{release.version} ran no release command.", err=True)
    if release.status == FAILED:
        click.echo(f" !    v{release.version} failed: {(release.failure or {}).get('reason')}", err=True)
        raise SystemExit(1)


def _print_from(path, offset: int) -> int:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return 0
    if data:
        click.echo(data.decode("utf-8", "replace"), nl=False)
    return len(data)


@cli.command("rollback")
@click.argument("version", required=False)
@app_option
def rollback(version: str | None, app: str) -> None:
    """Roll back to a release (default: the one before the current): a new release with its slug and config."""
    target = None if version is None else _version_number(version)
    release = events.rollback(platform(), app, actor(), release_output(), target)
    click.echo(f"Rolling back {app}... done, v{release.version} ({release.description})")


@cli.command("releases:retry")
@app_option
def releases_retry(app: str) -> None:
    """Run the latest release's release phase again, as a new release (no build)."""
    release = events.retry(platform(), app, actor(), release_output())
    click.echo(f"Retrying the release phase of {app}... done, v{release.version} ({release.description})")


@cli.command("releases:retention")
@app_option
@click.option("--keep", "keep", metavar="N|all", required=True,
              help="keep the slug images of the newest N releases; 'all' keeps every one (the default)")
def releases_retention(app: str, keep: str) -> None:
    """Prune old releases' slug images (records stay; pruned releases cannot be rolled back to)."""
    if keep != "all" and parse_number(keep, digits=9) is None:
        raise UsageError(f"--keep takes a number or 'all', not {keep!r}")
    pruned = set_retention(platform(), app, None if keep == "all" else int(keep))
    policy = "every release's slug" if keep == "all" else f"the slugs of the newest {keep} releases"
    click.echo(f"{app} keeps {policy}." + (" Pruned: " + ", ".join(f"v{v}" for v in pruned) if pruned else ""))
