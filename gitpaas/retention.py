"""Retention: how many releases keep their slug (and so can be rolled back to).

Every release record is kept forever; with a policy of N (``releases:retention --keep N``), the
slug tags of releases beyond the newest N are pruned, unless something still serves from them.
A process being retired does not count: it will never serve again, so it must not keep its
release eligible for rollback (``--keep 2`` leaves exactly the current and the previous release).
"""

from __future__ import annotations

from gitpaas.platform import Platform


def apply_retention(platform: Platform, name: str) -> list[int]:
    """Prune the slug tags of releases beyond the newest N that nothing serves from; returns the versions pruned."""
    app = platform.apps.get(name)
    if app.retention is None:
        return []
    releases = platform.apps.releases(name)
    in_use = {p.release_version for p in platform.scheduler.processes(name) if not p.retiring}
    if app.current_release:
        in_use.add(app.current_release)
    pruned = []
    newest_first = releases.versions()[::-1]
    # the slugs that stay: a pruned release's slug that one of these reuses (a rollback, a config
    # change) must stay where the nodes pull it from
    kept = {image for version in {*newest_first[:app.retention], *in_use} if version in newest_first
            for image in releases.get(version).images}
    for version in newest_first[app.retention:]:
        release = releases.get(version)
        if release.slug_pruned:
            break  # pruning goes oldest-last, so everything older is pruned already
        if version in in_use:
            continue
        for image in release.images:
            platform.slugs.untag(image, kept=kept)
        release.slug_pruned = True
        release.eligible_for_rollback = False
        releases.save(release)
        pruned.append(version)
    return pruned
