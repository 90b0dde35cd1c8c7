"""Pipelines on disk: ``$GITPAAS_HOME/pipelines/NAME/pipeline.json`` (its apps by stage and its
review-app settings) and ``pipelines/NAME/promotions/ID.json`` (each promotion and its targets).

A pipeline orders apps by stage — review, development, staging, production — and a promotion copies
one app's slug to the apps of a later stage. An app belongs to at most one pipeline (Heroku's rule).
Every change holds one lock for the home's pipelines, so two commands never lose each other's change.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitpaas.errors import DamagedRecord, NotFound, UsageError
from gitpaas.names import is_uuid
from gitpaas.release import now_iso
from gitpaas.settings import Settings
from gitpaas.store.files import read_json, write_json
from gitpaas.lazy import lazy

#: file locks, loaded on first use: reading records takes none
filelock = lazy("filelock")

#: the stages in promotion order: a promotion goes from one stage to a later one
STAGES = ("review", "development", "staging", "production")
REVIEW = "review"
_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,28}[a-z0-9])?")
#: how many promotions each pipeline keeps on record (the oldest go first)
KEEP_PROMOTIONS = 100
#: Heroku's default: a review app with no push for this many days is destroyed (with autodestroy on)
DEFAULT_STALE_DAYS = 5


def validate_pipeline_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"invalid pipeline name {name!r}: use a lowercase letter first, then lowercase letters, "
                         "digits and dashes, not ending with a dash, 30 characters at most")
    return name


def validate_stage(stage: str) -> str:
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}: choose one of {', '.join(STAGES)}")
    return stage


def _fields(cls, data: dict[str, Any]) -> dict[str, Any]:
    """``data``'s keys that ``cls`` (a dataclass) has: a record written by a newer gitpaas still reads."""
    return {key: value for key, value in data.items() if key in cls.__dataclass_fields__}


@dataclass
class Coupling:
    app: str
    app_id: str
    stage: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)


@dataclass
class ReviewApps:
    """The pipeline's review apps: pushing a branch of ``app`` (not main or master) deploys it."""

    enabled: bool = False
    #: the app whose repository's branches get review apps
    app: str | None = None
    #: redeploy a branch's review app on each push of it (the Heroku CLI's flag; see ``reviewapps``)
    autodeploy: bool = True
    #: destroy a review app whose branch was not pushed for ``stale_days`` days
    autodestroy: bool = False
    stale_days: int = DEFAULT_STALE_DAYS
    #: config vars every new review app gets (over app.json's ``env`` values)
    config: dict[str, str] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None


@dataclass
class Pipeline:
    name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    #: e-mail of the account that created it (None: the server's operator)
    owner: str | None = None
    couplings: list[Coupling] = field(default_factory=list)
    review: ReviewApps = field(default_factory=ReviewApps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Pipeline":
        known = _fields(cls, data)
        known["couplings"] = [Coupling(**_fields(Coupling, c)) for c in known.get("couplings", [])]
        known["review"] = ReviewApps(**_fields(ReviewApps, known.get("review") or {}))
        return cls(**known)

    def coupling(self, app: str) -> Coupling | None:
        return next((c for c in self.couplings if c.app == app), None)

    def apps_at(self, stage: str) -> list[str]:
        return [c.app for c in self.couplings if c.stage == stage]


@dataclass
class Target:
    """One app a promotion releases to, and how that went."""

    app: str
    app_id: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "pending"  # pending → succeeded | failed
    error_message: str | None = None
    release: dict[str, Any] | None = None  # {"id", "version"} of the release made there


@dataclass
class Promotion:
    pipeline: str
    pipeline_id: str
    source: dict[str, Any]  # {"app": {"id", "name"}, "release": {"id", "version"}}
    targets: list[Target]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "pending"  # pending → completed
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Promotion":
        known = _fields(cls, data)
        known["targets"] = [Target(**_fields(Target, t)) for t in known.get("targets", [])]
        return cls(**known)


class PipelineStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.home / "pipelines"

    def lock(self) -> filelock.FileLock:
        """Held around every read-change-write of a pipeline."""
        folder = self.settings.home / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(folder / "pipelines.lock"))

    def _file(self, name: str) -> Path:
        return self.root / name / "pipeline.json"

    def _read(self, path: Path) -> Pipeline:
        try:
            return Pipeline.from_dict(read_json(path))
        except (ValueError, TypeError, AttributeError) as exc:
            raise DamagedRecord(f"pipeline {path.parent.name}'s record is damaged ({exc.__class__.__name__}); "
                                "restore it from a backup or remove its folder") from None

    def list(self) -> list[Pipeline]:
        """Every pipeline; a damaged record is left out (``get`` names it) so one never stops the
        others, nor every push and ``apps:info`` that asks which pipeline an app is in."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.iterdir()):
            if (path / "pipeline.json").is_file():
                try:
                    found.append(self._read(path / "pipeline.json"))
                except DamagedRecord:
                    continue
        return found

    def get(self, name_or_id: str) -> Pipeline:
        """A pipeline by its name or its id."""
        if is_uuid(name_or_id):
            found = next((p for p in self.list() if p.id == name_or_id), None)
            if found:
                return found
        elif isinstance(name_or_id, str) and _NAME.fullmatch(name_or_id) and self._file(name_or_id).is_file():
            return self._read(self._file(name_or_id))
        raise NotFound(f"pipeline {name_or_id!r} not found (see `gitpaas pipelines`)")

    def exists(self, name: str) -> bool:
        return self._file(name).is_file()

    def save(self, pipeline: Pipeline) -> None:
        pipeline.updated_at = now_iso()
        write_json(self._file(pipeline.name), pipeline.to_dict())

    def delete(self, pipeline: Pipeline) -> None:
        self._file(pipeline.name).unlink(missing_ok=True)
        shutil.rmtree(self.root / pipeline.name, ignore_errors=True)

    def forget_app(self, app: str) -> None:
        """An app is destroyed: it leaves its pipeline (and stops being its review apps' parent)."""
        with self.lock():
            for pipeline in self.list():
                coupling = pipeline.coupling(app)
                if coupling is None and pipeline.review.app != app:
                    continue
                if coupling is not None:
                    pipeline.couplings.remove(coupling)
                if pipeline.review.app == app:
                    pipeline.review.enabled = False
                self.save(pipeline)

    def of_app(self, app: str) -> Pipeline | None:
        """The pipeline ``app`` is coupled to, if any."""
        return next((p for p in self.list() if p.coupling(app)), None)

    # --- promotions ------------------------------------------------------------------------
    def _promotions(self, pipeline: str) -> Path:
        return self.root / pipeline / "promotions"

    def save_promotion(self, promotion: Promotion) -> None:
        promotion.updated_at = now_iso()
        folder = self._promotions(promotion.pipeline)
        write_json(folder / f"{promotion.id}.json", promotion.to_dict())
        records = sorted(folder.glob("*.json"), key=lambda path: path.stat().st_mtime)
        for old in records[:-KEEP_PROMOTIONS]:
            old.unlink(missing_ok=True)

    def promotions(self, pipeline: str) -> list[Promotion]:
        folder = self._promotions(pipeline)
        found = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                found.append(Promotion.from_dict(read_json(path)))
            except (ValueError, TypeError, AttributeError):
                continue  # damaged: left out
        return found

    def promotion(self, promotion_id: str) -> Promotion:
        if is_uuid(promotion_id):
            for pipeline in self.list():
                path = self._promotions(pipeline.name) / f"{promotion_id}.json"
                if path.is_file():
                    return Promotion.from_dict(read_json(path))
        raise NotFound(f"promotion {promotion_id!r} not found")
