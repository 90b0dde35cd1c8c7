"""PostgreSQL backups: ``pg:backups:capture``, ``restore``, ``download``, a daily schedule, and the
final backup kept when an add-on (or its app) is destroyed.

A backup is ``pg_dump``'s custom format, streamed out of the add-on's container into
``backups/APP/ADDON/ID.dump`` in the home (0600), with ``ID.json`` beside it; backups outlive the
add-on and the app, until deleted by name (``pg:backups:delete``). A restore is
``pg_restore --clean --single-transaction``: all or nothing.

Each runs under the app's release lock, like every change to an app: a restore never runs while a
release's migration does, and nothing here brings back an add-on that was destroyed meanwhile (the
record is read again once the lock is held).
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from filelock import Timeout

from gitpaas.addons import runtime
from gitpaas.addons.plans import POSTGRESQL
from gitpaas.addons.store import Addon, AddonStore, Backup, BackupStore
from gitpaas.build.cache import describe_size
from gitpaas.errors import EnvironmentProblem, GitpaasError, UsageError
from gitpaas.locks import release_lock
from gitpaas.output import NullOutput, Output
from gitpaas.platform import Platform


def capture(platform: Platform, app: str, name: str | None = None, kind: str = "manual",
            output: Output | None = None) -> Backup:
    """Dump the app's PostgreSQL add-on (``name``, or its DATABASE) now."""
    output = output or NullOutput()
    with release_lock(platform, app, output):
        return capture_held(platform, AddonStore(platform.settings).of_service(app, POSTGRESQL, name), kind, output)


def capture_held(platform: Platform, addon: Addon, kind: str, output: Output, now: datetime | None = None) -> Backup:
    """Dump ``addon``'s database; the caller holds the app's release lock. The record says
    whether it completed; a dump that did not is not kept."""
    backups = BackupStore(platform.settings)
    backup, path = backups.new(addon, kind, now.strftime("%Y-%m-%dT%H:%M:%SZ") if now else None)
    status, errors = None, ""
    try:
        runtime.ready(platform, addon, output)
        user, database = addon.credentials["user"], addon.credentials["database"]
        status, errors = platform.scheduler.addon_exec(
            runtime.spec(addon), ["pg_dump", "-Fc", "-U", user, "-d", database], stdout_file=path)
    finally:
        backup.status = "completed" if status == 0 else "failed"
        if status == 0:
            path.chmod(0o600)
            backup.size = path.stat().st_size
        else:
            path.unlink(missing_ok=True)
        backups.save(backup)
    if status != 0:
        last = (errors.strip().splitlines() or [f"exit status {status}"])[-1]
        raise EnvironmentProblem(f"pg_dump of {addon.name} failed: {last}")
    return backup


def restore(platform: Platform, app: str, backup_id: str, name: str | None = None,
            output: Output | None = None) -> Addon:
    """Put backup ``backup_id`` of the app back into its PostgreSQL add-on, all or nothing, once no
    release of the app runs. Returns the add-on it went into."""
    output = output or NullOutput()
    backups = BackupStore(platform.settings)
    with release_lock(platform, app, output):
        backup = backups.get(backup_id, app)
        addon = AddonStore(platform.settings).of_service(app, POSTGRESQL, name)
        if backup.status != "completed":
            raise UsageError(f"backup {backup.id} did not complete: it cannot be restored")
        runtime.ready(platform, addon, output)
        user, database = addon.credentials["user"], addon.credentials["database"]
        status, errors = platform.scheduler.addon_exec(
            runtime.spec(addon), ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                                  "--exit-on-error", "-U", user, "-d", database], stdin_file=backups.dump_path(backup))
    if status != 0:
        last = (errors.strip().splitlines() or ["pg_restore failed"])[-1]
        raise EnvironmentProblem(f"restoring {backup.id} into {addon.name} failed, nothing was changed: {last}")
    return addon


def download(platform: Platform, backup: Backup, target: Path) -> int:
    """Copy the backup's dump (pg_dump's custom format) to ``target``; returns its size."""
    source = BackupStore(platform.settings).dump_path(backup)
    if backup.status != "completed" or not source.exists():
        raise UsageError(f"backup {backup.id} did not complete: there is nothing to download")
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise UsageError(f"cannot write {target.name}: {exc.strerror}") from None
    return target.stat().st_size


def parse_time_of_day(at: str) -> str:
    """``3:30``, ``03:30`` → ``03:30``; anything else is a UsageError."""
    hour, _, minute = at.partition(":")
    if not (hour.isascii() and minute.isascii() and hour.isdigit() and minute.isdigit()
            and int(hour) < 24 and int(minute) < 60 and len(minute) == 2):
        raise UsageError(f"--at takes a time of day as HH:MM (UTC), not {at!r}")
    return f"{int(hour):02d}:{minute}"


def set_schedule(platform: Platform, app: str, name: str | None, at: str | None, retain: int = 7) -> Addon:
    """Back the add-on up every day at ``at`` (``HH:MM``, UTC), keeping ``retain`` of those; None stops it."""
    schedule = None
    if at is not None:
        if not 1 <= retain <= 365:
            raise UsageError("--retain must be between 1 and 365")
        schedule = {"at": parse_time_of_day(at), "retain": retain}
    with release_lock(platform, app):
        store = AddonStore(platform.settings)
        addon = store.of_service(app, POSTGRESQL, name)
        addon.schedule = schedule
        store.save(addon)
    return addon


def run_scheduled(platform: Platform, now: datetime | None = None) -> list[str]:
    """Take the scheduled backups that are due (today's time has passed and none completed since),
    then prune each add-on's scheduled backups to its retention (completed ones count; failed ones
    go once a later one completed). Run by ``gitpaas server`` every minute, or by cron
    (``pg:backups:take-due``). An app whose release is under way is left for the next minute.
    Returns what it did, one line each; one add-on that cannot be backed up is reported and the
    others are still taken."""
    now = now or datetime.now(timezone.utc)
    done = []
    for addon in AddonStore(platform.settings).all():
        if not addon.schedule or addon.service != POSTGRESQL.name or not _due(platform, addon, now):
            continue
        lock = platform.apps.release_lock(addon.app)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # a release of the app is under way: the backup is still due next minute
        try:
            done += _take_scheduled(platform, addon.app, addon.name, now)
        finally:
            lock.release()
    return done


def _due(platform: Platform, addon: Addon, now: datetime) -> bool:
    at = addon.schedule["at"]
    due = now.replace(hour=int(at[:2]), minute=int(at[3:]), second=0, microsecond=0)
    taken = [b for b in _scheduled(platform, addon) if b.status == "completed"]
    return now >= due and not (taken and taken[-1].created_at >= due.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _scheduled(platform: Platform, addon: Addon) -> list[Backup]:
    return [b for b in BackupStore(platform.settings).list(addon.app) if b.addon == addon.name and b.kind == "scheduled"]


def _take_scheduled(platform: Platform, app: str, name: str, now: datetime) -> list[str]:
    try:  # read again under the lock: destroyed or unscheduled meanwhile, it is left alone
        addon = AddonStore(platform.settings).get(name, app)
    except GitpaasError:
        return []
    if not addon.schedule or not _due(platform, addon, now):
        return []
    try:
        backup = capture_held(platform, addon, "scheduled", NullOutput(), now=now)
    except GitpaasError as exc:
        return [f"{app}: the scheduled backup of {addon.name} failed: {exc}"]
    done = [f"{app}: backed up {addon.name} as {backup.id} ({describe_size(backup.size)})"]
    backups = BackupStore(platform.settings)
    scheduled = _scheduled(platform, addon)
    completed = [b for b in scheduled if b.status == "completed"]
    stale = completed[:-addon.schedule["retain"]] + [b for b in scheduled if b.status != "completed"]
    for old in stale:
        backups.delete(old)
        done.append(f"{app}: deleted {old.id} ({'failed' if old.status != 'completed' else 'beyond the retention'})")
    return done


def final(platform: Platform, addon: Addon, output: Output) -> Backup | None:
    """A PostgreSQL add-on's data, kept before the add-on goes (Redis holds caches and queues: none);
    the caller holds the app's release lock. If it cannot be kept, EnvironmentProblem: the caller
    destroys nothing."""
    if addon.service != POSTGRESQL.name:
        return None
    try:
        backup = capture_held(platform, addon, "final", output)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(f"{exc}: {addon.name} was not destroyed, as its data could not be kept") from exc
    output.info(f"Kept a final backup of {addon.name}: {backup.id} ({describe_size(backup.size)}; `gitpaas pg:backups`)")
    return backup
