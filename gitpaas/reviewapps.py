"""Review apps: a disposable app for every branch pushed to an app whose pipeline has them enabled.

The timeline is Heroku's: a branch's first push creates its review app (named from the app and the
branch) in the pipeline's review stage, with the pipeline's review config vars over app.json's
``env``, and app.json's add-ons; every push builds and releases it, the release phase included;
app.json's ``scripts.postdeploy`` runs once, after its first successful release. Deleting the
branch (``git push REMOTE :BRANCH``) runs ``scripts.pr-predestroy`` and destroys the review app and
its add-ons (no final backup: a review app is disposable). With autodestroy on, a review app whose
branch was not pushed for ``stale_days`` days is destroyed too (``destroy_stale``, from the server).

The branch lives in the parent app's repository; the review app's builds read it from there.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from contextlib import contextmanager
from typing import Iterator, Mapping

from filelock import FileLock

from gitpaas import appjson, appview, operations, pipelines
from gitpaas import config as config_vars
from gitpaas.errors import GitpaasError, PushRefused, UsageError
from gitpaas.git.repo import ZERO_SHA, ensure_ref_unmoved, note_ref_update, wait_for_noted_ref_update
from gitpaas.git.tree import PushedTree
from gitpaas.identity import Actor
from gitpaas.locks import release_lock
from gitpaas.output import NullOutput, Output
from gitpaas.pipeline import deploy_tree, run_script, tell_deployed
from gitpaas.platform import Platform
from gitpaas.release import Release, now_iso
from gitpaas.store.apps import App
from gitpaas.store.pipelines import REVIEW, Coupling, Pipeline, PipelineStore, ReviewApps

#: app names are 30 characters at most; a longer review app name is cut and ends with this many hex digits
HASH_LENGTH = 6
MAX_NAME = 30


def review_app_name(parent: str, branch: str) -> str:
    """``shop`` + ``feature/Login`` → ``shop-feature-login``; cut to 30 characters with a hash of the
    branch when longer (so two long branches never share a name)."""
    words = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-") or "branch"
    name = f"{parent}-{words}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha1(f"{parent}\0{branch}".encode()).hexdigest()[:HASH_LENGTH]
    return f"{name[:MAX_NAME - HASH_LENGTH - 1].rstrip('-')}-{digest}"


def find(platform: Platform, parent: App, branch: str) -> App | None:
    """The review app of ``parent``'s ``branch``, if it has one (by the parent's id: never a review
    app of an earlier app that had the same name)."""
    return next((app for app in platform.apps.list()
                 if app.review and app.review.get("parent_id") == parent.id and app.review.get("branch") == branch),
                None)


def of_parent(platform: Platform, parent: App) -> list[App]:
    return [app for app in platform.apps.list() if app.review and app.review.get("parent_id") == parent.id]


def of_pipeline(platform: Platform, pipeline: Pipeline) -> list[App]:
    return [app for app in platform.apps.list() if app.review and app.review.get("pipeline") == pipeline.id]


def record(platform: Platform, app: App) -> dict:
    """A review app as ``reviewapps`` shows it, on the server and off it."""
    return {"app": app.name, "branch": app.review.get("branch"), "parent": app.review.get("parent"),
            "current_release": app.current_release, "web_url": platform.settings.web_url(app.name),
            "created_at": app.review.get("created_at") or app.created_at,
            "pushed_at": app.review.get("pushed_at") or app.created_at}


# --- enabling ----------------------------------------------------------------------------------

def enable(platform: Platform, actor: Actor, pipeline_name: str, app_name: str, autodestroy: bool = False,
           stale_days: int | None = None) -> Pipeline:
    """Branches pushed to ``app_name`` get review apps in ``pipeline_name`` (the app must be in it)."""
    app = pipelines._usable_app(platform, actor, app_name)
    _check_stale_days(stale_days)
    with _managed(platform, actor, pipeline_name) as pipeline:
        if pipeline.coupling(app.name) is None:
            raise UsageError(f"{app.name} is not in pipeline {pipeline.name}: add it first "
                             f"(`gitpaas pipelines:add {pipeline.name} -a {app.name} --stage development`)")
        if pipeline.coupling(app.name).stage == REVIEW:
            raise UsageError(f"{app.name} is a review app itself: choose the app whose branches get review apps")
        review = pipeline.review
        review.enabled, review.app, review.autodestroy = True, app.name, autodestroy
        review.stale_days = stale_days or review.stale_days
        review.created_at = review.created_at or now_iso()
        review.updated_at = now_iso()
    return pipeline


def set_autodestroy(platform: Platform, actor: Actor, pipeline_name: str, autodestroy: bool | None,
                    stale_days: int | None) -> Pipeline:
    """Change how stale review apps go, without enabling or disabling review apps."""
    _check_stale_days(stale_days)
    with _managed(platform, actor, pipeline_name) as pipeline:
        if autodestroy is not None:
            pipeline.review.autodestroy = autodestroy
        pipeline.review.stale_days = stale_days or pipeline.review.stale_days
        pipeline.review.updated_at = now_iso()
    return pipeline


@contextmanager
def _managed(platform: Platform, actor: Actor, pipeline_name: str) -> Iterator[Pipeline]:
    """The pipeline, to change as a whole (``pipelines.check_manage``) under the pipelines' lock;
    saved when the block ends, unchanged on disk when it raises."""
    store = PipelineStore(platform.settings)
    with store.lock():
        pipeline = pipelines.get(platform, actor, pipeline_name)
        pipelines.check_manage(platform, actor, pipeline)
        yield pipeline
        store.save(pipeline)


def _check_stale_days(stale_days: int | None) -> None:
    if stale_days is not None and not 1 <= stale_days <= 30:
        raise UsageError("--stale-days must be between 1 and 30")


def disable(platform: Platform, actor: Actor, pipeline_name: str) -> Pipeline:
    """Stop making review apps; the ones there are stay until their branches are deleted."""
    with _managed(platform, actor, pipeline_name) as pipeline:
        pipeline.review.enabled = False
        pipeline.review.updated_at = now_iso()
    return pipeline


def config_of(platform: Platform, actor: Actor, pipeline_name: str) -> dict[str, str]:
    """The config vars new review apps get: for who may change the pipeline (they may be secrets)."""
    pipeline = pipelines.get(platform, actor, pipeline_name)
    pipelines.check_manage(platform, actor, pipeline)
    return dict(pipeline.review.config)


def set_config(platform: Platform, actor: Actor, pipeline_name: str, set_values: Mapping[str, str],
               unset_keys: list[str]) -> dict[str, str]:
    """The config vars new review apps get (existing review apps keep theirs)."""
    values = {config_vars.validate_key(k): config_vars.validate_value(k, v) for k, v in set_values.items()}
    keys = [config_vars.validate_key(k) for k in unset_keys]
    with _managed(platform, actor, pipeline_name) as pipeline:
        config = {**pipeline.review.config, **values}
        for key in keys:
            config.pop(key, None)
        config_vars.validate_total(config)
        pipeline.review.config = config
    return dict(config)


# --- a pushed branch ---------------------------------------------------------------------------

def on_branch_push(platform: Platform, parent: str, old: str, new: str, ref: str, output: Output, actor: Actor,
                   environ: Mapping[str, str] | None = None) -> Release | None:
    """A push of a branch other than main or master to ``parent``: deploy its review app (made on
    the first push), destroy it (the branch deleted), or refuse, saying how to enable review apps."""
    if not ref.startswith("refs/heads/"):
        raise PushRefused(f"gitpaas deploys branches, not {ref}")
    branch = ref.removeprefix("refs/heads/")
    if new == ZERO_SHA:
        destroy_for_branch(platform, parent, branch, old, output, environ)
        return None
    pipeline = _enabled_for(platform, parent)
    if pipeline is None:
        where = PipelineStore(platform.settings).of_app(parent)
        how = (f"`gitpaas reviewapps:enable -p {where.name} -a {parent}`" if where else
               f"`gitpaas pipelines:create NAME`, `gitpaas pipelines:add NAME -a {parent} --stage development`, "
               f"then `gitpaas reviewapps:enable -p NAME -a {parent}`")
        raise PushRefused(f"gitpaas deploys only the main or master branch, not {branch!r}; push it with "
                          f"`git push <remote> {branch}:main`, or give each branch a review app: {how}")
    started = time.monotonic()
    source = PushedTree.open(platform.apps.repo_path(parent), new, environ)
    parent_app = platform.apps.get(parent)
    with _creating(platform, parent_app):  # two first pushes of one branch make one review app
        review = find(platform, parent_app, branch)
        created = review is None
        if created:
            review = create(platform, pipeline, parent_app, branch, source, actor, output)
    output.stage(f"Deploying review app {review.name}: {branch} at {new[:7]}")
    try:
        with release_lock(platform, review.name, output):
            ensure_ref_unmoved(platform.apps.app_dir(parent), platform.apps.repo_path(parent), ref, old)
            release = deploy_tree(platform, review.name, source, output, actor, started)
            app = platform.apps.get(review.name)
            app.review = {**(app.review or {}), "pushed_at": now_iso(), "commit": new}
            platform.apps.save(app)
            note_ref_update(platform.apps.app_dir(parent), ref, new)
    except BaseException as exc:
        if created:  # the branch is refused, so nothing could ever delete this review app: it goes now
            output.warn(f"The branch is refused: removing {review.name}, made for it")
            operations.destroy_app(platform, review.name, final_backups=False)
        if isinstance(exc, GitpaasError):
            exc.app_name = review.name  # what the hook names as what failed (gone, when it was made for this push)
        raise
    tell_deployed(platform, review.name, release, output)
    output.info(f"Review app for {branch}: {platform.settings.web_url(review.name)} (deleting the branch destroys it)")
    return release


def _creating(platform: Platform, parent: App) -> FileLock:
    folder = platform.settings.home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / f"review-apps-{parent.id}.lock"))


def _enabled_for(platform: Platform, parent: str) -> Pipeline | None:
    pipeline = PipelineStore(platform.settings).of_app(parent)
    if pipeline is None or not pipeline.review.enabled or pipeline.review.app != parent:
        return None
    return pipeline


def create(platform: Platform, pipeline: Pipeline, parent_app: App, branch: str, source: PushedTree, actor: Actor,
           output: Output) -> App:
    """The branch's review app: config vars resolved (refused before anything exists when app.json
    requires one nobody set), the parent's owner and collaborators, its stack, the review stage."""
    manifest = appjson.parse(source.read_text("app.json"))
    config = initial_config(manifest, pipeline.review)
    parent = parent_app.name
    name = review_app_name(parent, branch)
    if platform.apps.exists(name):  # another app has the name: the one with the branch's hash
        digest = hashlib.sha1(f"{parent}\0{branch}".encode()).hexdigest()[:HASH_LENGTH]
        name = f"{name[:MAX_NAME - HASH_LENGTH - 1].rstrip('-')}-{digest}"
        if platform.apps.exists(name):
            raise PushRefused(f"cannot name {branch}'s review app: {review_app_name(parent, branch)} and {name} "
                              "are both taken by other apps")
    output.stage(f"Creating review app {name} for {branch} (pipeline {pipeline.name}, review stage)")
    app = operations.create_app(platform, name, owner=parent_app.owner, stack=parent_app.build_stack)
    try:
        app.collaborators = [c for c in parent_app.collaborators]
        if actor.account and actor.account != app.owner and actor.account not in app.collaborators:
            app.collaborators.append(actor.account)
        app.review = {"pipeline": pipeline.id, "pipeline_name": pipeline.name, "parent": parent,
                      "parent_id": parent_app.id, "branch": branch, "created_at": now_iso(), "pushed_at": now_iso()}
        platform.apps.save(app)
        platform.apps.config(name).replace(config)
        if config:
            output.info(f"Config vars: {', '.join(sorted(config))}")
        store = PipelineStore(platform.settings)
        with store.lock():
            fresh = store.get(pipeline.id)
            fresh.couplings.append(Coupling(app=name, app_id=app.id, stage=REVIEW))
            store.save(fresh)
    except BaseException:
        operations.destroy_app(platform, name, final_backups=False)
        raise
    return app


def initial_config(manifest: appjson.AppJson, review: ReviewApps) -> dict[str, str]:
    """app.json's ``env`` (fixed values, generated secrets) under the pipeline's review config vars;
    refuses, naming them, the required ones neither sets."""
    config: dict[str, str] = {}
    for var in manifest.env:
        if var.value is not None:
            config[var.key] = var.value
        elif var.generator == "secret":
            config[var.key] = secrets.token_hex(32)
    config.update(review.config)
    try:
        config_vars.validate_total(config)
    except UsageError as exc:
        raise PushRefused(f"the review app's config vars: {exc.message}") from None
    missing = [var.key for var in manifest.env if var.required and var.key not in config]
    if missing:
        names = ", ".join(missing)
        raise PushRefused(f"app.json's env requires {names}, which nothing sets for review apps: set "
                          f"{'it' if len(missing) == 1 else 'them'} with `gitpaas reviewapps:config:set "
                          f"{' '.join(f'{k}=…' for k in missing)} -p PIPELINE` and push again")
    return config


def destroy_for_branch(platform: Platform, parent: str, branch: str, old: str, output: Output,
                       environ: Mapping[str, str] | None = None) -> bool:
    """The branch is deleted: run app.json's ``scripts.pr-predestroy`` in its review app, then
    destroy it. False when the branch had no review app (the deletion just goes through)."""
    # a note an earlier push of the branch left (``gitpaas.git.repo``) has no ref to wait for any more
    wait_for_noted_ref_update(platform.apps.app_dir(parent), platform.apps.repo_path(parent), f"refs/heads/{branch}")
    review = find(platform, platform.apps.get(parent), branch)
    if review is None:
        output.info(f"Deleted branch {branch} (it had no review app)")
        return False
    destroy_review_app(platform, review, output, old=old, environ=environ)
    return True


def destroy_review_app(platform: Platform, review: App, output: Output, old: str | None = None,
                       environ: Mapping[str, str] | None = None) -> None:
    output.stage(f"Destroying review app {review.name} ({review.review.get('branch')} is gone)")
    with release_lock(platform, review.name, output):
        current = appview.current_release(platform, review.name)
        try:
            command = _predestroy(platform, review, current, old, environ)
            if command:
                output.stage(f"Running app.json's pr-predestroy script: {command}")
                result = run_script(platform, review.name, current, "predestroy", command, output, "predestroy.log")
                if result.exit_status == 0 and not result.timed_out:
                    output.info("pr-predestroy succeeded (exit 0)")
                else:
                    output.warn(f"pr-predestroy failed (exit status {result.exit_status}); destroying the review app anyway")
        except Exception as exc:  # noqa: BLE001 — whatever stops the script, the review app still goes
            reason = exc.message if isinstance(exc, GitpaasError) else exc.__class__.__name__
            output.warn(f"pr-predestroy could not run ({reason}); destroying the review app anyway")
    operations.destroy_app(platform, review.name, output, final_backups=False)
    output.info(f"Destroyed {review.name}: its processes, add-ons, slugs, route and records")


def _predestroy(platform: Platform, review: App, current: Release | None, old: str | None,
                environ: Mapping[str, str] | None) -> str | None:
    """app.json's ``scripts.pr-predestroy`` at the branch's last commit (None: nothing to run)."""
    if current is None:
        return None
    parent = review.review.get("parent")
    if not parent or not platform.apps.exists(parent):
        return None  # its parent's repository is gone with the parent
    source = PushedTree.open(platform.apps.repo_path(parent), old or current.commit, environ)
    return appjson.parse(source.read_text("app.json")).predestroy


def destroy_stale(platform: Platform, output: Output | None = None, now: datetime | None = None) -> list[str]:
    """Destroy each review app whose branch was not pushed for its pipeline's ``stale_days`` (with
    autodestroy on), and each whose parent app or pipeline is gone; returns their names. One that
    cannot be destroyed is reported and the others still go."""
    output = output or NullOutput()
    now = now or datetime.now(timezone.utc)
    pipelines_by_id = {p.id: p for p in PipelineStore(platform.settings).list()}
    apps = platform.apps.list()
    parents = {app.id for app in apps}
    destroyed = []
    for app in apps:
        if not app.review:
            continue
        pipeline = pipelines_by_id.get(app.review.get("pipeline"))
        orphan = pipeline is None or app.review.get("parent_id") not in parents
        if not orphan:
            if not pipeline.review.autodestroy:
                continue
            pushed = datetime.strptime(app.review.get("pushed_at") or app.created_at,
                                       "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            if now - pushed < timedelta(days=pipeline.review.stale_days):
                continue
        try:
            destroy_review_app(platform, app, output)
        except GitpaasError as exc:
            output.warn(f"Could not destroy the review app {app.name}: {exc.message}")
            continue
        destroyed.append(app.name)
    return destroyed


def destroy_with_review_apps(platform: Platform, name: str, output: Output | None = None) -> list:
    """Destroy an app, and first the review apps of its branches (they are built from its
    repository, which goes with it). Returns the final backups kept (``operations.destroy_app``)."""
    app = platform.apps.get(name)
    for review in of_parent(platform, app):
        destroy_review_app(platform, review, output or NullOutput())
    return operations.destroy_app(platform, name, output)


def destroy_pipeline(platform: Platform, actor: Actor, name: str, output: Output | None = None) -> Pipeline:
    """Destroy a pipeline and its review apps (disposable, and nothing would make or destroy them
    any more); its other apps stay, out of any pipeline."""
    pipeline = pipelines.get(platform, actor, name)
    pipelines.check_manage(platform, actor, pipeline)
    for review in of_pipeline(platform, pipeline):
        destroy_review_app(platform, review, output or NullOutput())
    return pipelines.destroy(platform, actor, pipeline.id)
