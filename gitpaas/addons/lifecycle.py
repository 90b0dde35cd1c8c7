"""Add-ons come and go as releases, the way Heroku documents it:

- **create** provisions the add-on (container, volume, credentials; it must accept connections),
  then — if the app has a release — makes one, "Attach DATABASE (postgresql-curved-12345)", that
  runs the release phase with the new ``DATABASE_URL`` and restarts the formation;
- **destroy** keeps a final backup (PostgreSQL), removes the add-on and its data, then makes a
  release, "Detach DATABASE (…)", that runs the release phase without it;
- **rotate credentials** gives the add-on new ones and makes a release, "Update DATABASE_URL by
  heroku-postgresql", that does *not* run the release phase and uses the latest release's slug
  even when that release failed — so a failed release is the most recent one for as short a time
  as possible (the warning says so).

Each comes in two halves like every release-creating event (``gitpaas.events``): ``begin_*``
under the app's lock, then ``finish`` on the pending release it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitpaas.addons import backups, runtime
from gitpaas.addons.plans import parse_plan
from gitpaas.addons.store import Addon, AddonStore, Backup
from gitpaas.errors import BootFailed, ChangeReleaseFailed, ReleaseFailed, UsageError
from gitpaas.events import held, release_from
from gitpaas.identity import Actor
from gitpaas.locks import release_lock
from gitpaas.output import Output
from gitpaas.pipeline import PendingRelease
from gitpaas.platform import Platform
from gitpaas.release import FAILED, Release


@dataclass
class AddonChange:
    addon: Addon
    #: the release that applies the change (None when the app has no release yet)
    pending: PendingRelease | None
    #: the final backup kept when an add-on was destroyed
    backup: Backup | None = None
    #: the release, once finished
    release: Release | None = None


def begin_create(platform: Platform, app: str, actor: Actor, output: Output, plan: str, *,
                 attachment: str | None = None, name: str | None = None) -> AddonChange:
    service = parse_plan(plan)
    if platform.settings.scheduler == "swarm":  # (refused before anything is recorded)
        raise UsageError("add-ons need the docker-local scheduler for now: on a swarm their data would live on "
                         "one node's volume, and pinning them there is not built yet")
    with held(release_lock(platform, app, output)) as lock:
        addon = runtime.provision(platform, app, service, output, attachment=attachment, name=name)
        current = _current(platform, app)
        if current is None:
            return AddonChange(addon, None)
        release = release_from(platform, app, actor, current, f"Attach {addon.attachment} ({addon.name})",
                               config=platform.apps.config(app).get())
        return AddonChange(addon, lock.hand_over(platform, release))


def begin_destroy(platform: Platform, app: str, actor: Actor, output: Output, name: str) -> AddonChange:
    with held(release_lock(platform, app, output)) as lock:
        store = AddonStore(platform.settings)
        addon = store.get(name, app)
        backup = backups.final(platform, addon, output)
        # The container and the data first: if the engine fails, the record is still there to say so.
        platform.scheduler.remove_addon(runtime.spec(addon), keep_data=False)
        store.delete(addon)
        output.info(f"Removed {addon.name} and its data" + (f" (a final backup is kept: {backup.id})" if backup else ""))
        current = _current(platform, app)
        if current is None:
            return AddonChange(addon, None, backup)
        release = release_from(platform, app, actor, current, f"Detach {addon.attachment} ({addon.name})",
                               config=platform.apps.config(app).get())
        return AddonChange(addon, lock.hand_over(platform, release), backup)


def begin_rotate(platform: Platform, app: str | None, actor: Actor, output: Output, name: str) -> AddonChange:
    store = AddonStore(platform.settings)
    app = app or store.get(name).app
    with held(release_lock(platform, app, output)) as lock:
        addon = store.get(name, app)
        runtime.ready(platform, addon, output)  # settles, in this record, a rotation cut short before
        addon = runtime.rotate_password(platform, addon)
        output.info(f"Rotated the credentials of {addon.name}: {addon.config_var} changed")
        latest = platform.apps.releases(app).latest()
        if latest is None:
            return AddonChange(addon, None)
        if latest.status == FAILED:
            output.warn(f"The latest release, v{latest.version}, failed: this release uses its slug anyway, as "
                        "Heroku does (no release phase runs for an add-on's config change)")
        release = release_from(platform, app, actor, latest, f"Update {addon.config_var} by {addon.kind.heroku_name}",
                               config=platform.apps.config(app).get())
        return AddonChange(addon, lock.hand_over(platform, release, release_phase=False))


def create(platform: Platform, app: str, actor: Actor, output: Output, plan: str, *,
           attachment: str | None = None, name: str | None = None) -> AddonChange:
    """Provision and attach, then finish the release it makes (the release phase runs)."""
    return _finished(platform, app, output, lambda: begin_create(
        platform, app, actor, output, plan, attachment=attachment, name=name), "is attached")


def destroy(platform: Platform, app: str, actor: Actor, output: Output, name: str) -> AddonChange:
    return _finished(platform, app, output, lambda: begin_destroy(platform, app, actor, output, name), "was removed")


def rotate(platform: Platform, app: str | None, actor: Actor, output: Output, name: str) -> AddonChange:
    return _finished(platform, app, output, lambda: begin_rotate(platform, app, actor, output, name),
                     "has new credentials")


def _finished(platform: Platform, app: str | None, output: Output, begin, done: str) -> AddonChange:
    change = begin()
    if change.pending is not None:
        app = change.addon.app
        previous = platform.apps.get(app).current_release
        try:
            change.release = change.pending.finish(output)
        except (ReleaseFailed, BootFailed) as exc:
            reason = exc.reason if isinstance(exc, ReleaseFailed) else str(exc)
            raise ChangeReleaseFailed(app, f"the add-on {change.addon.name} {done}", exc.version, reason, previous,
                                      getattr(exc, "exit_status", None)) from exc
    return change


def _current(platform: Platform, app: str):
    record = platform.apps.get(app)
    return platform.apps.releases(app).get(record.current_release) if record.current_release else None

