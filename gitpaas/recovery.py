"""Recovery from a release that never finished: gitpaas (the hook, the server, the machine) was
killed mid-release, leaving a ``pending`` record and maybe containers behind.

A pending release whose app lock nobody holds is orphaned: it is marked failed ("interrupted"), its
leftover containers are removed and the formation is put back on the last good release. One that
has been pending for more than a day is marked failed even if something still holds the lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from gitpaas.errors import GitpaasError
from gitpaas.output import Output
from gitpaas.pipeline import converge
from gitpaas.release import FAILED, PENDING, Release

if TYPE_CHECKING:
    from gitpaas.platform import Platform

STALE_AFTER = timedelta(hours=24)
#: how many of the newest records are looked at (a crash can only leave the newest ones pending)
LOOK_BACK = 10
INTERRUPTED = "interrupted: the process running this release stopped before it finished"


def pending_releases(platform: Platform, app_name: str) -> list[Release]:
    return [r for r in platform.apps.releases(app_name).list(limit=LOOK_BACK) if r.status == PENDING]


def recover(platform: Platform, app_name: str, output: Output, *, locked: bool) -> list[int]:
    """Settle orphaned pending releases of one app. Returns the versions marked failed."""
    if not pending_releases(platform, app_name):
        return []
    if locked:
        return _settle(platform, app_name, output)
    with platform.apps.release_lock(app_name, blocking=False) as acquired:
        if acquired:
            return _settle(platform, app_name, output)
    return _expire_stale(platform, app_name, output)


def _settle(platform: Platform, app_name: str, output: Output) -> list[int]:
    releases = platform.apps.releases(app_name)
    orphans = pending_releases(platform, app_name)
    for release in orphans:
        release.mark(FAILED, reason=INTERRUPTED, exit_status=None)
        release.current = False
        releases.save(release)
    app = platform.apps.get(app_name)
    versions = ", ".join(f"v{r.version}" for r in orphans)
    output.warn(f"{app_name}: {versions} never finished (gitpaas was stopped mid-release) and "
                f"{'is' if len(orphans) == 1 else 'are'} now marked failed")
    try:
        for release in orphans:
            platform.scheduler.remove_release(app_name, release.version)
        current = platform.current_release(app_name)
        if current is not None:
            converge(platform, app, current, app.formation, output)
            output.warn(f"{app_name}: the formation runs v{current.version}, the last good release")
    except GitpaasError as exc:
        output.warn(f"{app_name}: could not clean up the interrupted release's containers yet: {exc}")
    _normalize_current_flags(platform, app_name)
    return [r.version for r in orphans]


def _expire_stale(platform: Platform, app_name: str, output: Output) -> list[int]:
    releases = platform.apps.releases(app_name)
    expired = []
    now = datetime.now(timezone.utc)
    for release in pending_releases(platform, app_name):
        created = datetime.strptime(release.created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        if now - created > STALE_AFTER:
            release.mark(FAILED, reason="pending for more than 24 hours", exit_status=None)
            releases.save(release)
            expired.append(release.version)
    if expired:
        output.warn(f"{app_name}: " + ", ".join(f"v{v}" for v in expired) + " pending for over 24 h: marked failed")
    return expired


def _normalize_current_flags(platform: Platform, app_name: str) -> None:
    """Only the release app.json points at is current (a crash can leave a stale flag)."""
    releases = platform.apps.releases(app_name)
    current = platform.apps.get(app_name).current_release
    for release in releases.list(limit=LOOK_BACK):
        if release.current != (release.version == current):
            release.current = release.version == current
            releases.save(release)
