"""releases, releases:info, releases:output."""

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
from gitpaas.errors import UsageError
from gitpaas.names import parse_number
from gitpaas.release import FAILED, Release, describe_timings, parse_version


def _resolve(app: str, version: str | None) -> Release:
    return backend().release(app, None if version is None else _version_number(version))


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
    found, damaged = backend().releases(app, limit)
    for warning in damaged:  # the others are listed; this says which could not be
        click.echo(f" !    {warning}", err=True)
    if as_json:
        print_json([release.to_dict() for release in found])
        return
    if not found:
        click.echo(f"{app} has no releases yet. Deploy with: git push {backend().app(app)['git_url']} main")
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
        ("Slug", (release.slug or {}).get("id")),
        ("Promoted from", f"{release.promoted_from['app']['name']} v{release.promoted_from['release']['version']} "
                          "(the same slug, not rebuilt)" if release.promoted_from else None),
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
    where = backend()
    release = _resolve(app, version)
    printed = 0
    for text in where.output(app, release):
        click.echo(text, nl=False)
        printed += len(text)
    release = where.release(app, release.version)
    if not printed:
        click.echo(f"v{release.version} ran no release command.", err=True)
    if release.status == FAILED:
        click.echo(f" !    v{release.version} failed: {(release.failure or {}).get('reason')}", err=True)
        raise SystemExit(1)


@cli.command("rollback")
@click.argument("version", required=False)
@app_option
def rollback(version: str | None, app: str) -> None:
    """Roll back to a release (default: the one before the current): a new release with its slug and config."""
    target = None if version is None else _version_number(version)
    release = backend().rollback(app, target)
    click.echo(f"Rolling back {app}... done, v{release.version} ({release.description})")


@cli.command("releases:retry")
@app_option
def releases_retry(app: str) -> None:
    """Run the latest release's release phase again, as a new release (no build)."""
    release = backend().retry(app)
    click.echo(f"Retrying the release phase of {app}... done, v{release.version} ({release.description})")


@cli.command("releases:retention")
@app_option
@click.option("--keep", "keep", metavar="N|all", required=True,
              help="keep the slug images of the newest N releases; 'all' keeps every one (the default)")
def releases_retention(app: str, keep: str) -> None:
    """Prune old releases' slug images (records stay; pruned releases cannot be rolled back to)."""
    if keep != "all" and parse_number(keep, digits=9) is None:
        raise UsageError(f"--keep takes a number or 'all', not {keep!r}")
    pruned = backend().retention(app, None if keep == "all" else int(keep))
    policy = "every release's slug" if keep == "all" else f"the slugs of the newest {keep} releases"
    click.echo(f"{app} keeps {policy}." + (" Pruned: " + ", ".join(f"v{v}" for v in pruned) if pruned else ""))
