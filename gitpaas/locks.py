"""Serializing what changes an app, and settling the releases a crash left behind: one module,
because taking the lock is when a crashed release is found.

Everything that changes what an app runs — a push, a config change, a rollback, a scale, a
restart — holds the app's release lock (``$GITPAAS_HOME/locks/APP.lock``); a second one waits and
says so. Whoever takes the lock first settles the app's *orphaned* releases: ``pending`` records
whose process (the hook, the server, the machine) died mid-release, even by ``kill -9``. Each is
marked failed ("interrupted"), its leftover processes are removed and the formation is put back
on the last good release. A release pending for more than a day is marked failed even if
something still holds the lock. Every CLI command settles every app this way before it runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gitpaas.errors import GitpaasError
from gitpaas.lazy import lazy
from gitpaas.output import NullOutput, Output
from gitpaas.platform import Platform
from gitpaas.release import FAILED, PENDING, Release

#: file locks (loaded on first use: reading records takes none)
filelock = lazy("filelock")

# Used only to put a formation back after a crash: every command checks for one first, and would
# otherwise load the add-on records' module for nothing.
formation = lazy("gitpaas.formation")

STALE_AFTER = timedelta(hours=24)
#: how many of the newest records are looked at (a crash can only leave the newest ones pending)
LOOK_BACK = 10
INTERRUPTED = "interrupted: the process running this release stopped before it finished"


class AppLock:
    """The release lock of one app, held from :meth:`acquire` to :meth:`release`, in one thread."""

    def __init__(self, platform: Platform, app: str, output: Output | None = None) -> None:
        self.platform = platform
        self.app = app
        self.output = output or NullOutput()
        self._lock: filelock.FileLock = platform.apps.release_lock(app)

    def acquire(self) -> "AppLock":
        """Wait for the lock (saying so), then settle the app's orphaned releases."""
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            self.output.info(f"Waiting for another release of {self.app} to finish…")
            self._lock.acquire()
        try:
            _settle(self.platform, self.app, self.output)
        except BaseException:
            self._lock.release()
            raise
        return self

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> "AppLock":
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def release_lock(platform: Platform, app: str, output: Output | None = None) -> AppLock:
    """``with release_lock(platform, app, output):`` — hold the app's release lock."""
    platform.apps.get(app)
    return AppLock(platform, app, output)


def recover_all(platform: Platform, output: Output) -> None:
    """Settle every app's orphaned pending releases without waiting on anyone (before each CLI command)."""
    for app in platform.apps.list():
        recover(platform, app.name, output)


def recover(platform: Platform, app_name: str, output: Output) -> list[int]:
    """Settle one app's orphaned pending releases if nobody holds its lock; expire stale ones if
    someone does. Returns the versions marked failed."""
    if not pending_releases(platform, app_name):
        return []
    lock = platform.apps.release_lock(app_name)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return _expire_stale(platform, app_name, output)
    try:
        return _settle(platform, app_name, output)
    finally:
        lock.release()


def pending_releases(platform: Platform, app_name: str) -> list[Release]:
    return [r for r in platform.apps.releases(app_name).list(limit=LOOK_BACK) if r.status == PENDING]


def _settle(platform: Platform, app_name: str, output: Output) -> list[int]:
    """With the lock held: every pending release is an orphan."""
    orphans = pending_releases(platform, app_name)
    if not orphans:
        return []
    releases = platform.apps.releases(app_name)
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
        if app.current_release:
            current = releases.get(app.current_release)
            platform.scheduler.deploy(formation.deployment(platform.settings, app, current, app.formation), output)
            output.warn(f"{app_name}: the formation runs v{current.version}, the last good release")
    except GitpaasError as exc:
        output.warn(f"{app_name}: could not clean up the interrupted release's processes yet: {exc}")
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
