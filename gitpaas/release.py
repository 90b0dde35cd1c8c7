"""The release record: Heroku Platform API release fields plus what gitpaas needs to rerun it.

A record is plain data. It is written as ``releases/vN/release.json`` by the store and printed by
the CLI; the Platform API fields (Heroku's release schema; tests/data holds it) come first, gitpaas's own after.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from gitpaas.names import parse_number

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"

# The Platform API's release properties, in the order the records show them.
API_FIELDS = (
    "id", "version", "description", "status", "current", "created_at", "updated_at",
    "user", "slug", "app", "eligible_for_rollback", "output_stream_url", "addon_plan_names", "artifacts",
)


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Release:
    version: int
    description: str
    app: dict[str, str]
    user: dict[str, str]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = PENDING
    current: bool = False
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    slug: dict[str, str] | None = None
    eligible_for_rollback: bool = False
    output_stream_url: str | None = None
    addon_plan_names: list[str] = field(default_factory=list)
    artifacts: list[dict[str, str]] = field(default_factory=list)
    # gitpaas's own fields
    commit: str | None = None
    image: str | None = None
    process_types: dict[str, str] = field(default_factory=dict)
    config_vars: dict[str, str] = field(default_factory=dict)
    failure: dict[str, Any] | None = None
    build_log: str | None = None
    #: the retention policy removed this release's image tag: it can no longer be rolled back to
    slug_pruned: bool = False
    #: seconds each phase took: receive, build, release, health, swap (and total)
    timings: dict[str, float] = field(default_factory=dict)
    #: app.json's startup health checks, by process type (see gitpaas.healthchecks)
    healthchecks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the config vars (of ``config_vars``) that the app's add-ons owned (DATABASE_URL, …)
    addon_config_vars: list[str] = field(default_factory=list)
    #: the stack the slug was built on (gitpaas.stacks); None: built before stacks could be chosen (bookworm)
    stack: str | None = None
    #: process type → its own image (``repository:vN-TYPE``), for the types that do not run in ``image``
    #: (heroku.yml builds one image per build.docker entry; ``release`` when release.image names another)
    process_images: dict[str, str] = field(default_factory=dict)
    #: a promotion's release: where its slug came from, ``{"app": {"id", "name"}, "release": {"id", "version"}}``
    promoted_from: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"v{self.version}"

    @property
    def images(self) -> tuple[str, ...]:
        """Every image the release runs: its slug, then heroku.yml's images of other process types."""
        return (self.image or "", *self.process_images.values())

    @property
    def own_config_vars(self) -> dict[str, str]:
        """The app's own config vars in force for this release: without those its add-ons owned."""
        return {key: value for key, value in self.config_vars.items() if key not in self.addon_config_vars}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        ordered = {key: data.pop(key) for key in API_FIELDS}
        ordered.update(data)
        return ordered

    def to_api(self) -> dict[str, Any]:
        """Only the Platform API's release fields (the schema allows no others)."""
        data = self.to_dict()
        return {key: data[key] for key in API_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Release":
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        return cls(**known)

    def mark(self, status: str, **failure: Any) -> None:
        self.status = status
        self.updated_at = now_iso()
        self.eligible_for_rollback = status == SUCCEEDED and self.slug is not None and not self.slug_pruned
        self.failure = failure or None


def parse_version(text: str | int) -> int | None:
    """``"v12"``, ``"12"`` or ``12`` → 12; anything else → None."""
    if isinstance(text, int):
        return text if text > 0 else None
    number = parse_number(text[1:] if text[:1] in ("v", "V") else text)
    return number or None  # versions start at 1


PHASES = ("receive", "build", "release", "health", "swap")


def total_seconds(timings: dict[str, float]) -> float:
    """A release's time from push (or command) to swap: its ``total``, else the sum of its phases."""
    return timings.get("total", sum(timings.get(phase, 0.0) for phase in PHASES))


def describe_timings(version: int, timings: dict[str, float], verb: str = "deployed") -> str:
    """``deployed v12 in 1.4 s: build 0.5, release 0.3, health 0.2, swap 0.1``."""
    parts = ", ".join(f"{phase} {timings[phase]:.1f}" for phase in PHASES if phase in timings)
    total = total_seconds(timings)
    return f"{verb} v{version} in {total:.1f} s" + (f": {parts}" if parts else "")
