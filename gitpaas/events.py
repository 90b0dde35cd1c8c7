"""Release-creating events other than a deploy: a config change, a rollback, a retry.

Each creates vN from an existing slug (never a build), runs the release phase with vN's config,
and swaps only when it exits zero — the same ``create_release`` → ``release_and_swap`` as a deploy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitpaas import config as config_vars
from gitpaas.errors import UsageError
from gitpaas.output import Output
from gitpaas.pipeline import create_release, release_and_swap
from gitpaas.release import FAILED, PENDING, SUCCEEDED, Release

if TYPE_CHECKING:
    from gitpaas.platform import Platform


@dataclass
class ConfigChange:
    config: dict[str, str]
    release: Release | None  # None when the app has no release yet (it applies at the first deploy)
    changed: bool


def change_config(platform: Platform, app_name: str, output: Output, *, set_values: dict[str, str] | None = None,
                  unset_keys: list[str] | None = None) -> ConfigChange:
    """Store the change first (it stays even if the release fails, as on Heroku), then release it."""
    set_values = set_values or {}
    unset_keys = [config_vars.validate_key(key) for key in (unset_keys or [])]
    platform.apps.get(app_name)
    with platform.release_lock(app_name, output):
        before = platform.config.get(app_name)
        after = {**before, **set_values}
        for key in unset_keys:
            after.pop(key, None)
        if after == before:
            return ConfigChange(before, None, changed=False)
        platform.config.replace(app_name, after)
        current = platform.current_release(app_name)
        if current is None:
            return ConfigChange(after, None, changed=True)
        removed = [key for key in unset_keys if key in before]
        description = config_vars.describe_change(list(set_values), removed)
        release = _release_from(platform, app_name, current, description, config=after)
        release_and_swap(platform, platform.apps.get(app_name), release, output)
        return ConfigChange(after, release, changed=True)


def rollback(platform: Platform, app_name: str, output: Output, target_version: int | None = None) -> Release:
    """New release with the slug and config vars of ``target_version`` (default: the previous eligible one)."""
    platform.apps.get(app_name)
    with platform.release_lock(app_name, output):
        releases = platform.apps.releases(app_name)
        current = platform.current_release(app_name)
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
        platform.config.replace(app_name, target.config_vars)
        release = _release_from(platform, app_name, target, f"Rollback to v{target.version}",
                                config=target.config_vars)
        return release_and_swap(platform, platform.apps.get(app_name), release, output)


def retry(platform: Platform, app_name: str, output: Output) -> Release:
    """Run the release phase again for the latest release's slug and config, as a new release."""
    platform.apps.get(app_name)
    with platform.release_lock(app_name, output):
        latest = platform.apps.releases(app_name).latest()
        if latest is None:
            raise UsageError(f"{app_name} has no releases to retry")
        if not platform.slugs.exists(latest.image):
            raise UsageError(f"cannot retry v{latest.version}: its slug image was pruned")
        release = _release_from(platform, app_name, latest, f"Retry of v{latest.version}", config=latest.config_vars)
        return release_and_swap(platform, platform.apps.get(app_name), release, output)


def ineligibility(platform: Platform, release: Release) -> str | None:
    """Why ``release`` cannot be rolled back to, or None when it can."""
    if release.status == FAILED:
        reason = (release.failure or {}).get("reason", "unknown reason")
        return f"v{release.version} failed ({reason}), so it is not eligible for rollback"
    if release.status == PENDING:
        return f"v{release.version} is still pending"
    if release.status != SUCCEEDED:
        return f"v{release.version} is {release.status}"
    if release.slug_pruned or not platform.slugs.exists(release.image):
        return f"v{release.version}'s slug image was pruned, so it is not eligible for rollback"
    return None


def _release_from(platform: Platform, app_name: str, source: Release, description: str,
                  config: dict[str, str]) -> Release:
    return create_release(
        platform, platform.apps.get(app_name), description=description, source_image=source.image,
        slug_id=(source.slug or {}).get("id", ""), commit=source.commit,
        process_types=dict(source.process_types), config_vars=config, build_log=source.build_log,
        healthchecks=source.healthchecks,
    )
