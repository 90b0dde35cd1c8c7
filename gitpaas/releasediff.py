"""What changed between two releases: the slug, the commit, the stack, the process types, the
config vars (their values kept, for the shells to mask) and the add-ons. Pure: two records in, one
value out; the dashboard shows it."""

from __future__ import annotations

from dataclasses import dataclass, field

from gitpaas.release import Release


@dataclass(frozen=True)
class Change:
    """One thing that differs: ``before`` is None when it was added, ``after`` when it was removed."""

    name: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> str:
        return "added" if self.before is None else "removed" if self.after is None else "changed"


@dataclass
class ReleaseDiff:
    older: Release
    newer: Release
    #: slug, commit, stack, image: what the two releases run
    runs: list[Change] = field(default_factory=list)
    process_types: list[Change] = field(default_factory=list)
    config_vars: list[Change] = field(default_factory=list)
    #: config vars owned by an add-on (``DATABASE_URL``…), of those in ``config_vars``
    addon_config_vars: set[str] = field(default_factory=set)
    addons: list[Change] = field(default_factory=list)

    @property
    def same_slug(self) -> bool:
        return _slug(self.older) == _slug(self.newer)

    @property
    def unchanged(self) -> bool:
        return not (self.runs or self.process_types or self.config_vars or self.addons)


def _slug(release: Release) -> str | None:
    return (release.slug or {}).get("id")


def _changes(before: dict[str, str | None], after: dict[str, str | None]) -> list[Change]:
    names = sorted(set(before) | set(after))
    return [Change(name, before.get(name), after.get(name))
            for name in names if (name in before) != (name in after) or before.get(name) != after.get(name)]


def diff(older: Release, newer: Release) -> ReleaseDiff:
    """Everything that differs from ``older`` to ``newer`` (either order: the names say which is which)."""
    runs = _changes({"slug": _slug(older), "commit": older.commit, "stack": older.stack},
                    {"slug": _slug(newer), "commit": newer.commit, "stack": newer.stack})
    # a process type run by the image's own command has no command text: shown as such
    process_types = _changes({k: v or "(the image's command)" for k, v in older.process_types.items()},
                             {k: v or "(the image's command)" for k, v in newer.process_types.items()})
    addons = _changes({name: "attached" for name in older.addon_plan_names},
                      {name: "attached" for name in newer.addon_plan_names})
    return ReleaseDiff(older, newer, runs=runs, process_types=process_types,
                       config_vars=_changes(older.config_vars, newer.config_vars),
                       addon_config_vars=set(older.addon_config_vars) | set(newer.addon_config_vars), addons=addons)
