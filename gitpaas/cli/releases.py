"""releases, releases:info, releases:output."""

from __future__ import annotations

import click

from gitpaas.cli import cli
from gitpaas.cli.common import app_option, json_option, platform, print_json, print_table
from gitpaas.errors import UsageError
from gitpaas.release import Release, parse_version


def _when(release: Release) -> str:
    return release.created_at.replace("T", " ").replace("Z", " UTC")


def _resolve(app: str, version: str | None) -> Release:
    releases = platform().apps.releases(app)
    platform().apps.get(app)
    if version is None:
        latest = releases.latest()
        if latest is None:
            raise UsageError(f"{app} has no releases yet")
        return latest
    number = parse_version(version)
    if number is None:
        raise UsageError(f"{version!r} is not a release version (write it as v12 or 12)")
    return releases.get(number)


@cli.command("releases")
@app_option
@json_option
@click.option("-n", "--num", "limit", type=click.IntRange(min=1), default=15, show_default=True,
              help="how many of the newest releases")
def releases_list(app: str, as_json: bool, limit: int) -> None:
    """List an app's releases, newest first."""
    plat = platform()
    plat.apps.get(app)
    found = plat.apps.releases(app).list(limit=limit)
    if as_json:
        print_json([release.to_dict() for release in found])
        return
    if not found:
        click.echo(f"{app} has no releases yet. Deploy with: git push {plat.git_url(app)} main")
        return
    print_table(["version", "change", "by", "when", "status"], (
        (f"v{r.version}" + (" (current)" if r.current else ""), r.description, r.user.get("email"), _when(r), r.status)
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
        ("Change", release.description), ("By", release.user.get("email")), ("When", _when(release)),
        ("Status", release.status + (f": {release.failure['reason']}" if release.failure else "")),
        ("Current", "yes" if release.current else "no"), ("Commit", release.commit), ("Image", release.image),
        ("Process types", ", ".join(release.process_types) or "-"),
        ("Config vars", ", ".join(sorted(release.config_vars)) or "-"),
        ("Output", release.output_stream_url),
    ]
    for key, value in rows:
        click.echo(f"{key + ':':15}{value if value is not None else '-'}")


@cli.command("releases:output")
@click.argument("version", required=False)
@app_option
def releases_output(version: str | None, app: str) -> None:
    """Print the output of a release's release command."""
    release = _resolve(app, version)
    path = platform().apps.releases(app).output_path(release.version)
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    if not text and release.status != "pending":
        click.echo(f"v{release.version} ran no release command.", err=True)
    click.echo(text, nl=False)
