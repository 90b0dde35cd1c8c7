"""Release-creating events other than a deploy: a config change, a rollback, a retry, a release of
a slug (the Platform API's ``POST /apps/{app}/releases``).

Each creates vN from an existing slug (never a build), runs the release phase with vN's config,
and swaps only when it exits zero — the same ``create_release`` → ``release_and_swap`` as a deploy.
Each comes in two halves: ``begin_*`` takes the app's lock, checks, and records vN ``pending``
(errors before that are raised at once); the :class:`~gitpaas.pipeline.PendingRelease` it returns
finishes the release. ``rollback``, ``retry`` and ``change_config`` do both, for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitpaas import config as config_vars
from gitpaas.addons.store import AddonStore
from gitpaas.errors import InvalidParams, UsageError
from gitpaas.identity import Actor
from gitpaas.locks import AppLock, release_lock
from gitpaas.output import Output
from gitpaas.pipeline import PendingRelease, create_release
from gitpaas.platform import Platform
from gitpaas.release import FAILED, PENDING, SUCCEEDED, Release


@dataclass
class ConfigChange:
    config: dict[str, str]
    #: the release that applies the change; None when nothing changed or the app has no release yet
    #: (it then applies at the first deploy)
    pending: PendingRelease | None
    changed: bool


def begin_config_change(platform: Platform, app_name: str, actor: Actor, output: Output, *,
                        set_values: dict[str, str] | None = None,
                        unset_keys: list[str] | None = None) -> ConfigChange:
    """Store the change first (it stays even if the release fails, as on Heroku), then release it.
    Every name and value is checked first (``gitpaas.config``), whichever shell sent it."""
    set_values = {config_vars.validate_key(key): config_vars.validate_value(key, value)
                  for key, value in (set_values or {}).items()}
    unset_keys = [config_vars.validate_key(key) for key in (unset_keys or [])]
    with held(release_lock(platform, app_name, output)) as lock:
        addons = AddonStore(platform.settings)
        for key in [*set_values, *unset_keys]:
            owner = addons.owner_of(app_name, key)
            if owner is not None:
                raise InvalidParams(f"{key} belongs to the add-on {owner.name} (attached as {owner.attachment}): it "
                                    f"changes with the add-on (`gitpaas addons:rotate-credentials {owner.name}`)")
        store = platform.apps.config(app_name)
        before = store.get()
        after = {**before, **set_values}
        for key in unset_keys:
            after.pop(key, None)
        if after == before:
            return ConfigChange(before, None, changed=False)
        config_vars.validate_total(after)
        store.replace(after)
        current = _current(platform, app_name)
        if current is None:
            return ConfigChange(after, None, changed=True)
        removed = [key for key in unset_keys if key in before]
        description = config_vars.describe_change(list(set_values), removed)
        release = release_from(platform, app_name, actor, current, description, config=after)
        return ConfigChange(after, lock.hand_over(platform, release), changed=True)


def change_config(platform: Platform, app_name: str, actor: Actor, output: Output, *,
                  set_values: dict[str, str] | None = None, unset_keys: list[str] | None = None) -> ConfigChange:
    change = begin_config_change(platform, app_name, actor, output, set_values=set_values, unset_keys=unset_keys)
    if change.pending is not None:
        change.pending.finish(output)
    return change


def begin_rollback(platform: Platform, app_name: str, actor: Actor, output: Output,
                   target_version: int | None = None) -> PendingRelease:
    """New release with the slug and config vars of ``target_version`` (default: the previous eligible one)."""
    with held(release_lock(platform, app_name, output)) as lock:
        releases = platform.apps.releases(app_name)
        current = _current(platform, app_name)
        if current is None:
            raise UsageError(f"{app_name} has no release to roll back from: deploy it with git push first")
        if target_version is None:
            target = next((r for r in releases.walk_down(below=current.version)
                           if ineligibility(platform, r) is None), None)
            if target is None:
                raise UsageError(f"no release before v{current.version} is eligible for rollback")
        else:
            target = releases.get(target_version)
            reason = ineligibility(platform, target)
            if reason:
                raise UsageError(f"cannot roll back to v{target.version}: {reason}")
        platform.apps.config(app_name).replace(target.own_config_vars)
        release = release_from(platform, app_name, actor, target, f"Rollback to v{target.version}",
                                config=target.own_config_vars)
        kept = sorted(set(release.addon_config_vars) - set(target.addon_config_vars))
        if kept:  # as Heroku's CLI says it: add-ons are not rolled back
            output.warn(f"v{target.version} is from before {', '.join(kept)}: the add-ons stay attached "
                        "(rollbacks restore code and config vars, never add or remove add-ons)")
        return lock.hand_over(platform, release)


def rollback(platform: Platform, app_name: str, actor: Actor, output: Output,
             target_version: int | None = None) -> Release:
    return begin_rollback(platform, app_name, actor, output, target_version).finish(output)


def begin_retry(platform: Platform, app_name: str, actor: Actor, output: Output) -> PendingRelease:
    """Run the release phase again for the latest release's slug and config, as a new release."""
    with held(release_lock(platform, app_name, output)) as lock:
        latest = platform.apps.releases(app_name).latest()
        if latest is None:
            raise UsageError(f"{app_name} has no releases to retry")
        if not has_slugs(platform, latest):
            raise UsageError(f"cannot retry v{latest.version}: its slug image was pruned")
        release = release_from(platform, app_name, actor, latest, f"Retry of v{latest.version}",
                                config=latest.own_config_vars)
        return lock.hand_over(platform, release)


def retry(platform: Platform, app_name: str, actor: Actor, output: Output) -> Release:
    return begin_retry(platform, app_name, actor, output).finish(output)


def begin_slug_release(platform: Platform, app_name: str, actor: Actor, output: Output, slug_id: str,
                       description: str | None = None) -> PendingRelease:
    """A release of a slug this app has released before, with the app's current config vars."""
    with held(release_lock(platform, app_name, output)) as lock:
        source = next((r for r in platform.apps.releases(app_name).walk_down()
                       if (r.slug or {}).get("id") == slug_id), None)
        if source is None or not has_slugs(platform, source):
            raise UsageError(f"no slug {slug_id} on this server")
        release = release_from(platform, app_name, actor, source, description or f"Release of slug {slug_id[:8]}",
                                config=platform.apps.config(app_name).get())
        return lock.hand_over(platform, release)


def has_slugs(platform: Platform, release: Release) -> bool:
    """Whether every image the release runs (heroku.yml's per-type ones too) is still tagged."""
    return all(platform.slugs.exists(image) for image in release.images)


def ineligibility(platform: Platform, release: Release) -> str | None:
    """Why ``release`` cannot be rolled back to, or None when it can."""
    if release.status == FAILED:
        reason = (release.failure or {}).get("reason", "unknown reason")
        return f"v{release.version} failed ({reason}), so it is not eligible for rollback"
    if release.status == PENDING:
        return f"v{release.version} is still pending"
    if release.status != SUCCEEDED:
        return f"v{release.version} is {release.status}"
    if release.slug_pruned or not has_slugs(platform, release):
        return f"v{release.version}'s slug image was pruned, so it is not eligible for rollback"
    return None


def _current(platform: Platform, app_name: str) -> Release | None:
    app = platform.apps.get(app_name)
    return platform.apps.releases(app_name).get(app.current_release) if app.current_release else None


def release_from(platform: Platform, app_name: str, actor: Actor, source: Release, description: str,
                  config: dict[str, str]) -> Release:
    return create_release(
        platform, platform.apps.get(app_name), actor, description=description, source_image=source.image,
        slug_id=(source.slug or {}).get("id", ""), commit=source.commit,
        process_types=dict(source.process_types), config_vars=config, build_log=source.build_log,
        healthchecks=source.healthchecks, stack=source.stack, process_images=source.process_images,
    )


class held:
    """Hold an AppLock for a block that either hands it over (to a PendingRelease, which releases
    it when the release finishes) or ends, releasing it — also when the block raises."""

    def __init__(self, lock: AppLock) -> None:
        self.lock = lock
        self.handed_over = False

    def __enter__(self) -> "held":
        self.lock.acquire()
        return self

    def hand_over(self, platform: Platform, release: Release, release_phase: bool = True) -> PendingRelease:
        self.handed_over = True
        return PendingRelease(platform, self.lock, release, release_phase)

    def __exit__(self, *exc_info: object) -> None:
        if not self.handed_over:
            self.lock.release()
