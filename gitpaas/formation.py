"""The formation: which processes of which release an app runs, and the one way to ask for it.

A deploy's swap, ``ps:scale``, ``ps:restart``, a domain change and recovery after a crash all end
in the same request to the scheduler — :func:`deployment` builds it — so they share one guarantee
(no request lost) and one place where the rules for quantities live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gitpaas import procfile
from gitpaas.addons.store import AddonStore
from gitpaas.errors import UsageError
from gitpaas.release import Release
from gitpaas.scheduler import Deployment, ReleaseSpec
from gitpaas.settings import Settings
from gitpaas.store.apps import App

MAX_QUANTITY = 100


def next_formation(current: Mapping[str, int], process_types: Mapping[str, str | None]) -> dict[str, int]:
    """Quantities for a release's process types: keep what was scaled, default the new ones."""
    return {name: current.get(name, procfile.default_quantity(name))
            for name in procfile.formation_types(dict(process_types))}


def check_quantities(changes: Mapping[str, int]) -> None:
    for process_type, quantity in changes.items():
        if process_type == procfile.RELEASE:
            raise UsageError("the release process runs once per release and cannot be scaled")
        if not 0 <= quantity <= MAX_QUANTITY:
            raise UsageError(f"quantity for {process_type} must be between 0 and {MAX_QUANTITY}")


def hosts(settings: Settings, app: App) -> list[str]:
    """Every host name the router sends to the app: APP.$GITPAAS_DOMAIN, then its custom domains."""
    return [settings.app_host(app.name), *app.domains]


def release_spec(release: Release, addon_values: Mapping[str, str] | None = None) -> ReleaseSpec:
    """What the scheduler needs of ``release`` (its slug as the slug store published it).
    ``addon_values``: the add-ons' config vars as they are now, which replace the values the
    release recorded for them (a password rotated since is the one that works)."""
    env = dict(release.config_vars)
    env.update({key: value for key, value in (addon_values or {}).items() if key in release.addon_config_vars})
    return ReleaseSpec(app=release.app["name"], version=release.version, id=release.id, image=release.image or "",
                       process_types=dict(release.process_types), env=env, healthchecks=dict(release.healthchecks),
                       images=dict(release.process_images))


def deployment(settings: Settings, app: App, release: Release, formation: Mapping[str, int],
               replace: Iterable[str] = ()) -> Deployment:
    """Run ``formation`` of ``release`` (with its add-ons' current credentials)."""
    spec = release_spec(release, AddonStore(settings).config_vars(app.name))
    return Deployment(release=spec, formation=dict(formation), hosts=hosts(settings, app),
                      replace=frozenset(replace), sizes=dict(app.sizes))
