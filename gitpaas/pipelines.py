"""Pipelines: apps ordered by stage, and promotion — build once, release the very same slug downstream.

(Not to be confused with ``gitpaas.pipeline``, the story of one release.) A promotion takes the
source app's current release — its slug image, never rebuilt — and makes it a new release of each
target app, described ``Promote SOURCE vN`` as on Heroku, with the *target's* config vars and
add-ons: the release phase runs there with the target's config, and the target swaps only when it
exits zero. Targets are released one after the other, each on its own: one that fails keeps its
old release and does not undo the others. The release record says where its slug came from
(``promoted_from``).

Every check that can refuse a promotion runs before any target is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from dulwich.errors import NotCommitError
from dulwich.repo import Repo

from gitpaas import stacks
from gitpaas.errors import Forbidden, GitpaasError, NotFound, ReleaseFailed, UsageError
from gitpaas.events import has_slugs, held
from gitpaas.identity import Actor
from gitpaas.locks import release_lock
from gitpaas.output import NullOutput, Output
from gitpaas.pipeline import PendingRelease, create_release
from gitpaas.platform import Platform
from gitpaas.release import SUCCEEDED, Release
from gitpaas.store.pipelines import (
    STAGES,
    Coupling,
    Pipeline,
    PipelineStore,
    Promotion,
    Target,
    validate_pipeline_name,
    validate_stage,
)


def store(platform: Platform) -> PipelineStore:
    return PipelineStore(platform.settings)


# --- who sees what -----------------------------------------------------------------------------

def may_see(platform: Platform, actor: Actor, pipeline: Pipeline) -> bool:
    """The operator, the pipeline's creator, and whoever may use one of its apps."""
    return (actor.is_operator or actor.account == pipeline.owner
            or any(may_use(platform, actor, coupling.app) for coupling in pipeline.couplings))


def visible(platform: Platform, actor: Actor) -> list[Pipeline]:
    return [p for p in store(platform).list() if may_see(platform, actor, p)]


def get(platform: Platform, actor: Actor, name_or_id: str) -> Pipeline:
    found = store(platform).get(name_or_id)
    if not may_see(platform, actor, found):
        raise NotFound(f"pipeline {name_or_id!r} not found (see `gitpaas pipelines`)")
    return found


def _usable_app(platform: Platform, actor: Actor, name: str):
    app = platform.apps.get(name)
    if not actor.may_use(app.owner, app.collaborators):
        raise Forbidden(f"you do not have access to {name}")
    return app


def may_use(platform: Platform, actor: Actor, name: str) -> bool:
    try:
        app = platform.apps.get(name)
    except NotFound:
        return False
    return actor.may_use(app.owner, app.collaborators)


def check_manage(platform: Platform, actor: Actor, pipeline: Pipeline) -> None:
    """What changes a pipeline as a whole (its apps, its review apps and their config, destroying
    it) is for the operator, its creator, or whoever may use every one of its apps — not for a
    collaborator on one of them."""
    if actor.is_operator or actor.account == pipeline.owner:
        return
    for coupling in pipeline.couplings:
        if not may_use(platform, actor, coupling.app):
            raise Forbidden(f"only the pipeline's creator, or someone with access to all of its apps, may change "
                            f"{pipeline.name}; you do not have access to {coupling.app}")


# --- pipelines and their apps ------------------------------------------------------------------

def create(platform: Platform, actor: Actor, name: str) -> Pipeline:
    validate_pipeline_name(name)
    pipelines = store(platform)
    with pipelines.lock():
        if pipelines.exists(name):
            raise UsageError(f"pipeline {name!r} already exists")
        pipeline = Pipeline(name=name, owner=actor.account)
        pipelines.save(pipeline)
    return pipeline


def couple(platform: Platform, actor: Actor, name_or_id: str, app_name: str, stage: str) -> Coupling:
    """Put an app in a pipeline at ``stage``; an app is in one pipeline at most."""
    validate_stage(stage)
    app = _usable_app(platform, actor, app_name)
    pipelines = store(platform)
    with pipelines.lock():
        pipeline = get(platform, actor, name_or_id)
        check_manage(platform, actor, pipeline)
        current = pipelines.of_app(app.name)
        if current is not None:
            where = current.coupling(app.name)
            raise UsageError(f"{app.name} is already in pipeline {current.name} ({where.stage}); "
                             f"`gitpaas pipelines:update -a {app.name} --stage STAGE` moves it, "
                             f"`gitpaas pipelines:remove -a {app.name}` takes it out")
        coupling = Coupling(app=app.name, app_id=app.id, stage=stage)
        pipeline.couplings.append(coupling)
        pipelines.save(pipeline)
    return coupling


def move(platform: Platform, actor: Actor, app_name: str, stage: str) -> tuple[Pipeline, Coupling]:
    """Move an app to another stage of its pipeline."""
    validate_stage(stage)
    app = _usable_app(platform, actor, app_name)
    pipelines = store(platform)
    with pipelines.lock():
        pipeline = _pipeline_of(platform, app.name)
        coupling = pipeline.coupling(app.name)
        coupling.stage = stage
        coupling.updated_at = pipeline.updated_at
        pipelines.save(pipeline)
    return pipeline, coupling


def uncouple(platform: Platform, actor: Actor, app_name: str) -> tuple[Pipeline, Coupling]:
    """Take an app out of its pipeline: for who may use the app, or the pipeline's creator."""
    app = platform.apps.get(app_name)
    pipelines = store(platform)
    with pipelines.lock():
        pipeline = _pipeline_of(platform, app.name)
        if not may_see(platform, actor, pipeline):
            raise NotFound(f"app {app_name!r} not found (see `gitpaas apps`)")
        if not actor.may_use(app.owner, app.collaborators) and actor.account != pipeline.owner:
            raise Forbidden(f"you do not have access to {app_name}")
        coupling = pipeline.coupling(app.name)
        pipeline.couplings.remove(coupling)
        if pipeline.review.app == app.name:
            pipeline.review.enabled = False
        pipelines.save(pipeline)
    return pipeline, coupling


def destroy(platform: Platform, actor: Actor, name_or_id: str) -> Pipeline:
    """Remove the pipeline and its promotions' records; its apps stay, out of any pipeline."""
    pipelines = store(platform)
    with pipelines.lock():
        pipeline = get(platform, actor, name_or_id)
        check_manage(platform, actor, pipeline)
        pipelines.delete(pipeline)
    return pipeline


def _pipeline_of(platform: Platform, app_name: str) -> Pipeline:
    pipeline = store(platform).of_app(app_name)
    if pipeline is None:
        raise UsageError(f"{app_name} is not in a pipeline (add it with `gitpaas pipelines:add PIPELINE -a {app_name} "
                         "--stage STAGE`)")
    return pipeline


def pipeline_of(platform: Platform, app_name: str) -> Pipeline | None:
    return store(platform).of_app(app_name)


def downstream_stage(stage: str, pipeline: Pipeline | None = None) -> str | None:
    """The stage after ``stage``; with ``pipeline``, the first later one that has apps (a review
    app promotes to staging when the pipeline has no development app)."""
    for later in STAGES[STAGES.index(stage) + 1:]:
        if pipeline is None or pipeline.apps_at(later):
            return later
    return None


# --- promotion ---------------------------------------------------------------------------------

@dataclass
class Plan:
    """A promotion checked and recorded, its targets still to release."""

    promotion: Promotion
    source: Release


def begin_promotion(platform: Platform, actor: Actor, source_name: str, to: list[str] | None = None) -> Plan:
    """Check everything and record the promotion ``pending``; raises, touching nothing, when the
    source has no succeeded release with its slug, or a target is not downstream in the same
    pipeline, is on another stack, or is not the actor's to deploy."""
    source_app = _usable_app(platform, actor, source_name)
    pipeline = _pipeline_of(platform, source_app.name)
    stage = pipeline.coupling(source_app.name).stage
    release = (platform.apps.releases(source_app.name).get(source_app.current_release)
               if source_app.current_release else None)
    if release is None or release.status != SUCCEEDED:
        raise UsageError(f"{source_app.name} has no succeeded release to promote: deploy it with git push first")
    if not has_slugs(platform, release):
        raise UsageError(f"cannot promote {source_app.name} v{release.version}: its slug image was pruned")
    if to:
        names = list(dict.fromkeys(to))
    else:
        following = downstream_stage(stage, pipeline)
        names = pipeline.apps_at(following) if following else []
        if not names:
            raise UsageError(f"nothing to promote {source_app.name} to: it is at the {stage} stage of {pipeline.name}"
                             " and no app is at a later one")
    slug_stack = stacks.of_record(release.stack).name
    targets = []
    for name in names:
        if name == source_app.name:
            raise UsageError(f"cannot promote {source_app.name} to itself")
        target = platform.apps.get(name)
        coupling = pipeline.coupling(target.name)
        if coupling is None:
            raise UsageError(f"{target.name} is not in pipeline {pipeline.name}: only its apps can be promoted to")
        if STAGES.index(coupling.stage) <= STAGES.index(stage):
            raise UsageError(f"cannot promote from {stage} to {target.name} at {coupling.stage}: promotions go "
                             f"downstream ({' → '.join(STAGES)})")
        if not actor.may_use(target.owner, target.collaborators):
            raise Forbidden(f"you cannot deploy to {target.name}: you are not its owner or a collaborator")
        target_stack = stacks.of_record(target.build_stack).name
        if target_stack != slug_stack:
            raise UsageError(f"cannot promote to {target.name}: it is on the {target_stack} stack and "
                             f"{source_app.name} v{release.version} was built on {slug_stack} "
                             f"(`gitpaas stack:set {slug_stack} -a {target.name}` first)")
        targets.append(Target(app=target.name, app_id=target.id))
    promotion = Promotion(pipeline=pipeline.name, pipeline_id=pipeline.id, targets=targets, source={
        "app": {"id": source_app.id, "name": source_app.name},
        "release": {"id": release.id, "version": release.version, "slug": (release.slug or {}).get("id"),
                    "commit": release.commit},
    })
    store(platform).save_promotion(promotion)
    return Plan(promotion, release)


def run_promotion(platform: Platform, actor: Actor, plan: Plan,
                  output_for: Callable[[Target, Release], Output] | None = None) -> Promotion:
    """Release the source's slug to each target in turn; each target's outcome is its own.
    ``output_for(target, its new release)`` says where that release tells its story (an output
    with a ``close`` is closed once the release ended)."""
    promotion, pipelines = plan.promotion, store(platform)
    for target in promotion.targets:
        output: Output = NullOutput()
        try:
            pending = begin_target_release(platform, actor, target.app, plan.source)
            target.release = {"id": pending.release.id, "version": pending.release.version}
            try:  # a record or a story that cannot be written must not leave the release (and its lock) pending
                pipelines.save_promotion(promotion)
                if output_for is not None:
                    output = output_for(target, pending.release)
            except Exception:  # noqa: BLE001
                pass
            release = pending.finish(output)
        except ReleaseFailed as exc:
            target.status, target.error_message = "failed", exc.reason
        except GitpaasError as exc:
            target.status, target.error_message = "failed", exc.message
        except Exception as exc:  # noqa: BLE001 — one target's surprise must not leave the others unreleased
            target.status, target.error_message = "failed", f"unexpected error ({exc.__class__.__name__})"
        else:
            target.status, target.release = "succeeded", {"id": release.id, "version": release.version}
        finally:
            close = getattr(output, "close", None)
            if close is not None:
                close()
        pipelines.save_promotion(promotion)
    promotion.status = "completed"
    pipelines.save_promotion(promotion)
    return promotion


def settle_promotions(platform: Platform) -> list[str]:
    """Promotions a stopped server left ``pending`` (``gitpaas server`` calls this as it starts):
    each target whose release ended takes its outcome; one never begun, or whose release never
    ended, is failed, as the interrupted release is. Returns the promotions settled."""
    pipelines, settled = store(platform), []
    for pipeline in pipelines.list():
        for promotion in pipelines.promotions(pipeline.name):
            if promotion.status != "pending":
                continue
            for target in promotion.targets:
                if target.status != "pending":
                    continue
                try:
                    release = (platform.apps.releases(target.app).get(target.release["version"])
                               if target.release else None)
                except NotFound:
                    release = None
                if release is not None and release.status == SUCCEEDED:
                    target.status = "succeeded"
                else:
                    target.status = "failed"
                    target.error_message = ((release.failure or {}).get("reason") if release and release.failure
                                            else "interrupted: the server stopped before this target was released")
            promotion.status = "completed"
            pipelines.save_promotion(promotion)
            settled.append(promotion.id)
    return settled


def target_record(target: Target) -> dict[str, Any]:
    """A promotion's target as the CLI shows it, on the server and off it."""
    return {"app": target.app, "status": target.status, "error_message": target.error_message,
            "release": dict(target.release) if target.release else None}


def begin_target_release(platform: Platform, actor: Actor, target_name: str, source: Release) -> PendingRelease:
    """vN of the target: the source's slug (tagged, never rebuilt) with the target's config vars."""
    with held(release_lock(platform, target_name)) as lock:
        target = platform.apps.get(target_name)
        description = f"Promote {source.app['name']} v{source.version}"
        release = create_release(
            platform, target, actor, description=description, source_image=source.image,
            slug_id=(source.slug or {}).get("id", ""), commit=source.commit, process_types=dict(source.process_types),
            config_vars=platform.apps.config(target.name).get(), build_log=None, healthchecks=source.healthchecks,
            stack=source.stack, process_images=source.process_images,
            promoted_from={"app": dict(source.app), "release": {"id": source.id, "version": source.version}},
        )
        return lock.hand_over(platform, release)


def promote(platform: Platform, actor: Actor, source_name: str, to: list[str] | None = None,
            output_for: Callable[[Target, Release], Output] | None = None) -> Promotion:
    return run_promotion(platform, actor, begin_promotion(platform, actor, source_name, to), output_for)


# --- diff --------------------------------------------------------------------------------------

@dataclass
class Difference:
    target: str
    #: the target's current commit (None: nothing released yet, or a release without a commit)
    target_commit: str | None
    #: commits the source has and the target does not: (sha, author, date, first line), newest first
    ahead: list[tuple[str, str, str, str]]
    #: commits the target has that the source does not (the target is ahead, or they diverged)
    behind: int
    #: why the commits could not be compared, if they could not
    unknown: str | None = None


def diff(platform: Platform, actor: Actor, source_name: str) -> tuple[str | None, list[Difference]]:
    """The commits between the app's current release and each app of the next stage's."""
    source_app = _usable_app(platform, actor, source_name)
    pipeline = _pipeline_of(platform, source_app.name)
    following = downstream_stage(pipeline.coupling(source_app.name).stage, pipeline)
    source_commit = _current_commit(platform, source_app.name)
    differences = []
    for name in pipeline.apps_at(following) if following else []:
        target_commit = _current_commit(platform, name)
        differences.append(_compare(platform, source_app.name, name, source_commit, target_commit))
    return source_commit, differences


def _current_commit(platform: Platform, app_name: str) -> str | None:
    app = platform.apps.get(app_name)
    if not app.current_release:
        return None
    return platform.apps.releases(app_name).get(app.current_release).commit


def _compare(platform: Platform, source: str, target: str, new: str | None, old: str | None) -> Difference:
    if new is None:
        return Difference(target, old, [], 0, f"{source} has no release with a commit yet")
    if old is None:
        return Difference(target, None, [], 0, f"{target} has no release with a commit yet")
    parent = (platform.apps.get(source).review or {}).get("parent")  # a review app's commits are its parent's
    for repo_app in [source, target, *([parent] if parent and platform.apps.exists(parent) else [])]:
        # (a promoted commit lives in the repository it was pushed to)
        repo = Repo(str(platform.apps.repo_path(repo_app)))
        try:
            if new.encode() not in repo.object_store or old.encode() not in repo.object_store:
                continue
            ahead = [_describe(entry.commit) for entry in repo.get_walker(include=[new.encode()], exclude=[old.encode()])]
            behind = sum(1 for _ in repo.get_walker(include=[old.encode()], exclude=[new.encode()]))
            return Difference(target, old, ahead, behind)
        except (KeyError, NotCommitError):
            continue
        finally:
            repo.close()
    return Difference(target, old, [], 0, f"{old[:7]} and {new[:7]} are not in one repository: their histories "
                                         "cannot be compared")


def _describe(commit) -> tuple[str, str, str, str]:
    author = commit.author.decode("utf-8", "replace").split(" <")[0]
    when = datetime.fromtimestamp(commit.author_time, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = commit.message.decode("utf-8", "replace").strip().splitlines()
    return commit.id.decode(), author, when, message[0] if message else ""


def record(platform: Platform, pipeline: Pipeline, actor: Actor) -> dict[str, Any]:
    """A pipeline as the CLI shows it (``pipelines:info --json``), on the server and off it: its apps
    by stage with the release each runs (of the apps ``actor`` may use), and its review apps'
    settings (not their config vars)."""
    review = pipeline.review
    return {
        "id": pipeline.id, "name": pipeline.name, "owner": pipeline.owner, "created_at": pipeline.created_at,
        "updated_at": pipeline.updated_at,
        "review": {"enabled": review.enabled, "app": review.app, "autodestroy": review.autodestroy,
                   "stale_days": review.stale_days},
        "apps": [{"stage": stage, "app": app, "release": {key: release.get(key) for key in (
                    "version", "description", "commit", "slug", "status", "promoted_from")} if release else None}
                 for stage, app, release in describe_stage_apps(platform, pipeline, actor)],
    }


def difference_record(difference: Difference) -> dict[str, Any]:
    return {"target": difference.target, "target_commit": difference.target_commit, "behind": difference.behind,
            "unknown": difference.unknown,
            "ahead": [{"sha": sha, "author": author, "date": date, "message": message}
                      for sha, author, date, message in difference.ahead]}


def describe_stage_apps(platform: Platform, pipeline: Pipeline, actor: Actor) -> Iterator[tuple[str, str, dict]]:
    """(stage, app name, its current release's record or {}) for each app, in stage order; {} for
    an app ``actor`` may not use (its name shows, not what it runs)."""
    for stage in STAGES:
        for name in pipeline.apps_at(stage):
            try:
                app = platform.apps.get(name)
            except NotFound:
                continue
            usable = actor.may_use(app.owner, app.collaborators)
            release = platform.apps.releases(name).get(app.current_release) if app.current_release and usable else None
            yield stage, name, (release.to_dict() if release else {})

