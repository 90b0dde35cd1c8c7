"""addons, addons:create, addons:info, addons:destroy, addons:rotate-credentials, pg:psql, redis:cli,
and pg:backups (capture, restore, download, delete, schedule)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from gitpaas.addons import backups as addon_backups
from gitpaas.addons import lifecycle, runtime
from gitpaas.addons.plans import POSTGRESQL, REDIS, Service
from gitpaas.addons.store import Addon, AddonStore, validate_backup_id
from gitpaas.build.cache import describe_size
from gitpaas.cli.common import (
    actor,
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
from gitpaas.client.terminal import attach
from gitpaas.errors import UsageError
from gitpaas.locks import release_lock
from gitpaas.output import NullOutput

optional_app = click.option("-a", "--app", "app", metavar="APP", help="the app (default: every app of the home)")


@cli.command("addons:create")
@click.argument("plan")
@app_option
@click.option("--as", "attachment", metavar="ATTACHMENT", help="the attachment's name: its config var is ATTACHMENT_URL")
@click.option("--name", metavar="NAME", help="the add-on's name (default: like postgresql-curved-12345)")
@click.option("--wait", is_flag=True, help="accepted as Heroku's CLI has it; gitpaas always waits until the add-on "
                                           "accepts connections")
def addons_create(plan: str, app: str, attachment: str | None, name: str | None, wait: bool) -> None:
    """Provision an add-on (postgresql, redis) and attach it: a release that runs the release phase."""
    addon, version = backend().create_addon(app, plan, attachment, name)
    click.echo(f"Creating {addon['name']} on {app}... done")
    click.echo(f"{addon['name']} is attached as {addon['attachment']}: {addon['config_vars'][0]} is set"
               + (f" (release v{version})" if version else "; the app gets it with its first deploy"))


@cli.command("addons")
@optional_app
@json_option
def addons_list(app: str | None, as_json: bool) -> None:
    """List the add-ons of an app (or of every app of the home)."""
    found = backend().addons(app)
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo(f"No add-ons{f' on {app}' if app else ''}. Create one with "
                   f"`gitpaas addons:create postgresql -a {app or 'APP'}`.")
        return
    print_table(["add-on", "plan", "app", "as", "state"], (
        (a["name"], a["plan"], a["app"], a["config_vars"][0], a["state"]) for a in found),
        title=f"=== Add-ons{f' of {app}' if app else ''}")


@cli.command("addons:info")
@click.argument("name")
@optional_app
@json_option
def addons_info(name: str, app: str | None, as_json: bool) -> None:
    """Show an add-on: its plan, app, attachment, data and backups."""
    addon = backend().addon(name, app)
    kept = addon.pop("backups_kept", None)
    if as_json:
        print_json(addon)
        return
    click.echo(f"=== {addon['name']}")
    rows = [("Plan", addon["plan"]), ("Price", "free (runs on this server)"), ("Owning app", addon["app"]),
            ("Attachments", f"{addon['app']}::{addon['attachment']}"), ("Config var", addon["config_vars"][0]),
            ("Installed at", when(addon["created_at"])), ("State", addon["state"])]
    if addon["service"] == POSTGRESQL.name:
        schedule = addon["backup_schedule"]
        rows += [("Backups", f"{kept} (`gitpaas pg:backups -a {addon['app']}`)"),
                 ("Backup schedule", f"daily at {schedule['at']} UTC, keeping {schedule['retain']}" if schedule else "none")]
    for key, value in rows:
        click.echo(f"{key + ':':17}{value}")


@cli.command("addons:destroy")
@click.argument("name")
@app_option
@click.option("--confirm", metavar="APP", help="the app's name again, to confirm")
def addons_destroy(name: str, app: str, confirm: str | None) -> None:
    """Destroy an add-on and its data (a PostgreSQL one keeps a final backup): a release without it."""
    where = backend()
    addon = where.addon(name, app)
    if confirm != app:
        raise UsageError(f"this destroys {addon['name']} and its data on {app}; to proceed, run again with --confirm {app}")
    _, version, backup = where.destroy_addon(app, name)
    click.echo(f"Destroying {addon['name']} on {app}... done" + (f" (release v{version})" if version else ""))
    if backup is not None:
        click.echo(f"Its final backup {backup} is kept: `gitpaas pg:backups -a {app}`")


@cli.command("addons:rotate-credentials")
@click.argument("name")
@optional_app
def addons_rotate(name: str, app: str | None) -> None:
    """Give an add-on new credentials: a release that does not run the release phase."""
    plat = platform()
    change = lifecycle.rotate(plat, app, actor(), release_output(), name)
    click.echo(f"Rotating the credentials of {change.addon.name}... done"
               + (f" (release v{change.release.version})" if change.release else ""))


# --- using the data ----------------------------------------------------------------------------

def _addon_of(app: str, name: str | None, service: Service) -> Addon:
    plat = platform()
    plat.apps.get(app)
    return AddonStore(plat.settings).of_service(app, service, name)


def _session(app: str, name: str | None, service: Service, command_text: str | None) -> None:
    """Run a session in the add-on, on this terminal (or this stdin), and exit with its status. The
    add-on is made ready under the app's lock (so one destroyed meanwhile is not brought back); the
    session itself holds no lock: deploys go on while it is open. From another machine, through the
    server's rendezvous, like `run`."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    where = backend()
    if where.remote:
        raise SystemExit(attach(where.addon_session(app, service.name, name, command_text, interactive), interactive))
    plat = platform()
    with release_lock(plat, app):
        addon = _addon_of(app, name, service)
        runtime.ready(plat, addon, NullOutput())
    spec = runtime.spec(addon)  # its secrets (Redis: REDISCLI_AUTH) reach the session by name, never in argv
    command = plat.scheduler.addon_session(spec, runtime.client_argv(addon, command_text), interactive,
                                           env_names=tuple(spec.secrets))
    try:
        status = subprocess.run(command, env={**os.environ, **spec.secrets}).returncode
    except FileNotFoundError:
        raise UsageError(f"cannot run {command[0]!r} here: it is not installed") from None
    except KeyboardInterrupt:
        status = 130
    raise SystemExit(status)


@cli.command("pg:psql")
@click.argument("name", required=False)
@app_option
@click.option("-c", "--command", "sql", metavar="SQL", help="run this SQL and exit (else: a session, or SQL on stdin)")
def pg_psql(name: str | None, app: str, sql: str | None) -> None:
    """psql on the app's PostgreSQL (DATABASE, or the add-on NAME)."""
    _session(app, name, POSTGRESQL, sql)


@cli.command("redis:cli")
@click.argument("name", required=False)
@app_option
@click.option("-c", "--command", "command", metavar="COMMAND",
              help="run this command and exit (like `GET key`; quote words with spaces)")
def redis_cli(name: str | None, app: str, command: str | None) -> None:
    """redis-cli on the app's Redis (REDIS, or the add-on NAME)."""
    _session(app, name, REDIS, command)


# --- backups -----------------------------------------------------------------------------------

@cli.command("pg:backups")
@optional_app
@json_option
def pg_backups(app: str | None, as_json: bool) -> None:
    """List the PostgreSQL backups of an app (or of the home), those of destroyed add-ons too."""
    found, live = backend().backups(app)
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo(f"No backups{f' of {app}' if app else ''}. Take one with "
                   f"`gitpaas pg:backups:capture -a {app or 'APP'}`.")
        return
    print_table(["id", "taken at", "status", "size", "kind", "app", "add-on"], (
        (b["id"], when(b["created_at"]), b["status"], describe_size(b["size"]), b["kind"], b["app"],
         b["addon"] + ("" if (b["app"], b["addon"]) in live else " (destroyed)")) for b in reversed(found)),
        title=f"=== Backups{f' of {app}' if app else ''}")


@cli.command("pg:backups:capture")
@click.argument("name", required=False)
@app_option
def pg_backups_capture(name: str | None, app: str) -> None:
    """Back up the app's PostgreSQL now (pg_dump's custom format, kept in the home)."""
    backup, addon = backend().capture_backup(app, name)
    click.echo(f"Backing up {addon['attachment']} ({addon['name']}) on {app}... done, {backup['id']} "
               f"({describe_size(backup['size'])})")


@cli.command("pg:backups:restore")
@click.argument("backup_id", metavar="BACKUP")
@click.argument("name", required=False)
@app_option
@click.option("--confirm", metavar="APP", help="the app's name again, to confirm")
def pg_backups_restore(backup_id: str, name: str | None, app: str, confirm: str | None) -> None:
    """Replace the database's contents with a backup's, all or nothing (once no release runs)."""
    backup_id = validate_backup_id(backup_id)
    if confirm != app:
        raise UsageError(f"this replaces everything in {app}'s database with {backup_id}; to proceed, run again "
                         f"with --confirm {app}")
    click.echo(f"Restoring {backup_id} on {app}...")
    addon = backend().restore_backup(app, backup_id, name)
    click.echo(f"done: {addon['attachment']} ({addon['name']}) holds {backup_id}'s data")


@cli.command("pg:backups:download")
@click.argument("backup_id", metavar="BACKUP")
@app_option
@click.option("-o", "--output", "target", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the file to write (pg_dump's custom format: pg_restore reads it)")
def pg_backups_download(backup_id: str, app: str, target: Path) -> None:
    """Copy a backup to a file (on this machine)."""
    backup_id = validate_backup_id(backup_id)
    size = backend().download_backup(app, backup_id, target)
    click.echo(f"Wrote {backup_id} to {target} ({describe_size(size)})")


@cli.command("pg:backups:delete")
@click.argument("backup_id", metavar="BACKUP")
@app_option
@click.option("--confirm", metavar="APP", help="the app's name again, to confirm")
def pg_backups_delete(backup_id: str, app: str, confirm: str | None) -> None:
    """Delete a backup (a destroyed add-on's final one too)."""
    deleted = backend().delete_backup(app, validate_backup_id(backup_id), confirm)
    click.echo(f"Deleted {deleted['id']}")


@cli.command("pg:backups:schedule")
@click.argument("name", required=False)
@app_option
@click.option("--at", "at", required=True, metavar="HH:MM", help="the time of day, UTC")
@click.option("--retain", type=click.IntRange(1, 1000), default=7, show_default=True,
              help="how many scheduled backups to keep")
def pg_backups_schedule(name: str | None, app: str, at: str, retain: int) -> None:
    """Back the database up every day (taken by `gitpaas server`, or `pg:backups:take-due` from cron)."""
    addon = backend().schedule_backups(app, name, at, retain)
    click.echo(f"Scheduled a daily backup of {addon['name']} at {addon['backup_schedule']['at']} UTC, keeping "
               f"{addon['backup_schedule']['retain']}")


@cli.command("pg:backups:unschedule")
@click.argument("name", required=False)
@app_option
def pg_backups_unschedule(name: str | None, app: str) -> None:
    """Stop the daily backups (those taken are kept)."""
    addon = backend().schedule_backups(app, name, None, 7)
    click.echo(f"Stopped the daily backups of {addon['name']}")


@cli.command("pg:backups:take-due")
def pg_backups_take_due() -> None:
    """Take the scheduled backups that are due (for cron, where `gitpaas server` does not run)."""
    for line in addon_backups.run_scheduled(platform()):
        click.echo(line)
