"""The story of a release: build → release phase → swap → record.

``deploy_push`` is what happens on ``git push``; read it top to bottom. ``release_and_swap`` is
the half every release-creating event shares (a deploy; config changes, rollbacks and retries in
``events``): run the release command in a throwaway process of the new slug and, only when it
exits zero, ask the scheduler to swap the formation over to the new release.

Who acts is an argument (an :class:`~gitpaas.identity.Actor`), recorded as the release's user.
"""

from __future__ import annotations

import secrets
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Mapping

from gitpaas import appjson, faults, herokuyml, labels, procfile, sizes, stacks
from gitpaas.addons import runtime as addon_runtime
from gitpaas.addons.plans import Service, parse_plan
from gitpaas.addons.store import AddonStore
from gitpaas.build.base import BuildRequest, BuiltImage, select_builder
from gitpaas.errors import BootFailed, GitpaasError, PushRefused, ReleaseFailed
from gitpaas.formation import deployment, next_formation, release_spec
from gitpaas.git.repo import (
    DEPLOY_BRANCHES,
    ZERO_SHA,
    ensure_ref_unmoved,
    note_ref_update,
)
from gitpaas.git.tree import PushedTree
from gitpaas.identity import Actor
from gitpaas.locks import AppLock, release_lock
from gitpaas.notify.announce import announce_release
from gitpaas.output import Output
from gitpaas.platform import Platform
from gitpaas.release import FAILED, SUCCEEDED, Release, describe_timings
from gitpaas.retention import apply_retention
from gitpaas.scheduler import Deployment, Held, OneOff, RunResult
from gitpaas.store.apps import App

#: lines of the release command's output that go with the release's webhook event
OUTPUT_TAIL_LINES = 20


def deploy_push(platform: Platform, app_name: str, old: str, new: str, ref: str, output: Output,
                actor: Actor, environ: Mapping[str, str] | None = None) -> Release:
    """Deploy main or master. Raises (and so rejects the push) unless the new release is live.
    (Other branches go to their review apps: ``gitpaas.receive``.)"""
    if ref not in DEPLOY_BRANCHES:
        raise PushRefused(f"gitpaas deploys only the main or master branch, not {ref.removeprefix('refs/heads/')!r}")
    if new == ZERO_SHA:
        raise PushRefused(f"deleting {ref.removeprefix('refs/heads/')} is not supported: it is what the app runs")
    apps = platform.apps
    app = apps.get(app_name)
    started = time.monotonic()
    output.stage(f"Deploying {app.name}: {ref.removeprefix('refs/heads/')} at {new[:7]}")
    with release_lock(platform, app.name, output):
        ensure_ref_unmoved(apps.app_dir(app.name), apps.repo_path(app.name), ref, old)
        source = PushedTree.open(apps.repo_path(app.name), new, environ)
        release = deploy_tree(platform, app.name, source, output, actor, started)
        note_ref_update(apps.app_dir(app.name), ref, new)
    tell_deployed(platform, app.name, release, output)
    return release


def tell_deployed(platform: Platform, app_name: str, release: Release, output: Output) -> None:
    summary = describe_timings(release.version, release.timings)
    output.stage(summary[0].upper() + summary[1:])
    output.info(platform.settings.web_url(app_name))


def deploy_tree(platform: Platform, app_name: str, source: PushedTree, output: Output, actor: Actor,
                started: float) -> Release:
    """Build ``source`` and release it to ``app_name`` (whose release lock the caller holds): its
    manifests read, its slug built, vN created, the release phase run, the formation swapped, and
    app.json's postdeploy run after the app's first successful release."""
    apps = platform.apps
    app = apps.get(app_name)
    new = source.commit_sha
    process_types: dict[str, str | None] = {}
    yml = read_heroku_yml(source)
    if yml is not None:
        output.info(f"heroku.yml: {', '.join([*yml.processes, *(['release'] if yml.release_command else [])])}"
                    + (" (the Procfile is not read)" if source.has("Procfile") else ""))
    else:
        procfile_text = source.read_text("Procfile")
        process_types = procfile.parse(procfile_text) if procfile_text is not None else {}
        output.info(f"Procfile: {describe_process_types(process_types)}")
    manifest = appjson.parse(source.read_text("app.json"))
    wanted_addons = [(parse_plan(plan), attachment, "app.json") for plan, attachment in manifest.addons]

    received = time.monotonic()
    image, log_path, stack = build_slug(platform, app.name, source, output, heroku_yml=yml)
    tag = image.tag
    if image.replaces_procfile:
        process_types = dict(image.default_process_types)
    else:
        for name, command in image.default_process_types.items():
            process_types.setdefault(name, command)
        if procfile.WEB not in process_types and image.runs_image_command:
            process_types[procfile.WEB] = None  # the image's own command
    if yml is not None:
        wanted_addons += [(parse_plan(plan), attachment, "heroku.yml") for plan, attachment in yml.addons]
    built = time.monotonic()
    output.info(f"Built {tag.split(':')[0]} ({image.size / 1e6:.1f} MB) in {built - received:.1f} s")
    try:
        first = apps.get(app.name).current_release is None
        if first and yml is not None and yml.config:
            apply_manifest_config(platform, app.name, yml.config, output)
        if wanted_addons and first:
            provision_manifest_addons(platform, app.name, wanted_addons, output)
        release = create_release(platform, app, actor, description=f"Deploy {new[:7]}", source_image=image.tag,
                                 slug_id=str(uuid.uuid5(uuid.NAMESPACE_URL, image.image_id)),
                                 commit=new, process_types=process_types, build_log=str(log_path),
                                 config_vars=apps.config(app.name).get(), healthchecks=manifest.healthchecks,
                                 stack=stack.name, process_images=image.process_images)
    finally:
        for built_tag in {image.tag, *image.process_images.values()}:
            platform.slugs.untag(built_tag)
    release.timings.update(receive=round(received - started, 2), build=round(built - received, 2))
    apps.releases(app.name).save(release)  # the phases done so far, for whoever watches (the dashboard)
    release = release_and_swap(platform, app.name, release, output, started=started)
    if manifest.postdeploy and apps.get(app.name).postdeploy is None:
        run_postdeploy(platform, app.name, release, manifest.postdeploy, output)
    return release


def apply_manifest_config(platform: Platform, app_name: str, config: Mapping[str, str], output: Output) -> None:
    """heroku.yml's ``setup.config``, on the app's first deploy: the vars the app has not set itself."""
    store = platform.apps.config(app_name)
    current = store.get()
    added = {key: value for key, value in config.items() if key not in current}
    if added:
        store.replace({**current, **added})
        output.stage(f"heroku.yml sets {', '.join(sorted(added))}")


def provision_manifest_addons(platform: Platform, app_name: str, wanted: list[tuple[Service, str | None, str]],
                              output: Output) -> None:
    """app.json's ``addons`` and heroku.yml's ``setup.addons`` — (service, attachment, which file) —
    on the app's first deploy: each one the app does not have yet is provisioned (and accepts
    connections) before the release phase."""
    have = AddonStore(platform.settings).of_app(app_name)
    for service, attachment, asked_by in wanted:
        if any(a.service == service.name and attachment in (None, a.attachment) for a in have):
            continue
        output.stage(f"{asked_by} asks for {service.heroku_name}" + (f" as {attachment}" if attachment else ""))
        have.append(addon_runtime.provision(platform, app_name, service, output, attachment=attachment))


def read_heroku_yml(source: PushedTree) -> herokuyml.Manifest | None:
    """The tree's heroku.yml, parsed; None when it has none. Raises PushRefused for a mistake in it."""
    return herokuyml.parse(source.read_text(herokuyml.FILE) or "") if source.has(herokuyml.FILE) else None


def build_slug(platform: Platform, app_name: str, source: PushedTree, output: Output,
               stack: stacks.Stack | None = None,
               heroku_yml: herokuyml.Manifest | None = None) -> tuple[BuiltImage, Path, stacks.Stack]:
    """Build ``source`` on ``stack`` (the app's build stack unless told) with the builder that
    applies, into a ``:build-ID`` tag; returns the image, where its log is kept (``builds/``) and the
    stack. ``heroku_yml``: the tree's, when the caller has read it already. Raises BuildFailed,
    UnsupportedApp."""
    builder = select_builder(source, platform.builders)
    build_id = uuid.uuid4().hex[:8]
    tag = f"{platform.settings.image_repository(app_name)}:build-{build_id}"
    log_path = (platform.apps.app_dir(app_name) / "builds"
                / f"{time.strftime('%Y%m%dT%H%M%S')}-{source.commit_sha[:7]}-{build_id}.log")
    stack = stack or stacks.of_record(platform.apps.get(app_name).build_stack)
    output.stage(f"Building on the {stack.name} stack with {builder.name}")
    faults.reached(platform.settings, "build")
    with platform.apps.noting_build(app_name, source.commit_sha, log_path):
        image = builder.build(BuildRequest(
            app=app_name, source=source, tag=tag, log_path=log_path, output=output,
            labels=labels.for_app(platform.settings, app_name, **{labels.ROLE: "slug"}),
            build_args={"GITPAAS_STACK_IMAGE": platform.settings.stack_image(stack)},
            config_vars=platform.apps.config(app_name).get(), cache_dir=platform.apps.app_dir(app_name) / "cache",
            stack=stack, heroku_yml=heroku_yml or read_heroku_yml(source),
        ))
    return image, log_path, stack


def describe_process_types(process_types: Mapping[str, str | None]) -> str:
    if not process_types:
        return "none (the Dockerfile's command or the buildpack's defaults)"
    return ", ".join(process_types)


def create_release(platform: Platform, app: App, actor: Actor, *, description: str, source_image: str,
                   slug_id: str, commit: str | None, process_types: Mapping[str, str | None],
                   config_vars: Mapping[str, str], build_log: str | None = None,
                   healthchecks: Mapping | None = None, stack: str | None = None,
                   process_images: Mapping[str, str] | None = None,
                   promoted_from: Mapping | None = None) -> Release:
    """Allocate vN (under the store's version lock), give its slug the tag ``:vN`` and publish it
    for the scheduler, record it ``pending``. ``config_vars`` are the app's own: the release runs
    with them and its add-ons' (``DATABASE_URL``…), whose current values always win.

    Every release has its own tag, so pruning an old release's tag never touches a newer release
    that shares the same slug (a rollback, a config change).
    """
    releases = platform.apps.releases(app.name)
    repository = platform.settings.image_repository(app.name)
    store = AddonStore(platform.settings)
    addons = store.of_app(app.name)

    def build(version: int) -> Release:
        return Release(
            version=version, description=description, app={"id": app.id, "name": app.name},
            user=actor.user(), slug={"id": slug_id}, artifacts=[{"type": "slug", "id": slug_id}],
            output_stream_url=releases.output_path(version).as_uri(),
            addon_plan_names=sorted({addon.kind.plan_name for addon in addons}),
            commit=commit, image=f"{repository}:v{version}",
            process_types=dict(process_types), config_vars=store.with_own(app.name, dict(config_vars)),
            build_log=build_log, healthchecks=dict(healthchecks or {}),
            addon_config_vars=sorted(addon.config_var for addon in addons), stack=stack,
            # named before they are tagged: a record saved half-way still names every tag to prune
            process_images={process_type: f"{repository}:v{version}-{process_type}"
                            for process_type in (process_images or {})},
            promoted_from=dict(promoted_from) if promoted_from else None,
        )
    release = releases.create(build)
    try:
        platform.slugs.tag(source_image, release.image)
        published = platform.slugs.publish(release.image)
        # heroku.yml's other images: each its own tag of this release, published the same way
        extra = {}
        for process_type, image in (process_images or {}).items():
            platform.slugs.tag(image, release.process_images[process_type])
            extra[process_type] = platform.slugs.publish(release.process_images[process_type])
        if published != release.image or extra != release.process_images:  # a registry's references
            release.image, release.process_images = published, extra
            releases.save(release)
    except BaseException as exc:
        release.mark(FAILED, reason=f"could not tag the slug image: {exc}", exit_status=None)
        releases.save(release)
        raise
    return release


def release_and_swap(platform: Platform, app_name: str, release: Release, output: Output,
                     started: float | None = None, release_phase: bool = True) -> Release:
    """Run the release phase; on success swap the formation to ``release`` and make it current.
    Before either, the app's add-ons must accept connections. ``release_phase=False`` skips the
    release phase (a change of an add-on's own config vars, as on Heroku).

    Whatever goes wrong, the release is recorded as failed with the reason, and the formation the
    app was running keeps running.
    """
    app = platform.apps.get(app_name)  # as it is now: another release may have run while the caller waited
    started = time.monotonic() if started is None else started
    output.stage(f"Release v{release.version} created ({release.description})")
    if platform.settings.swarm_registry and release.image.startswith(platform.settings.swarm_registry + "/"):
        output.info(f"Slug published to the swarm's registry as {release.image}")
    try:
        for line in addon_runtime.ensure_ready(platform, app_name, output):
            output.info(line[0].upper() + line[1:])
        phase = time.monotonic()
        plan = deployment(platform.settings, app, release, next_formation(app.formation, release.process_types))
        held = None
        try:
            if release_phase:
                held = run_release_phase(platform, release, output, plan)
            else:
                output.stage("An add-on's config vars changed: no release phase, as on Heroku")
            release.timings["release"] = round(time.monotonic() - phase, 2)
            platform.apps.releases(app_name).save(release)  # (watched live: the release phase is done)
            report = platform.scheduler.deploy(plan, output, held)
        except BaseException:
            platform.scheduler.discard(held)  # (a no-op for what the swap took: it removes that itself)
            raise
        release.timings.update(health=report.health_seconds, swap=report.swap_seconds)
        release.timings["total"] = round(time.monotonic() - started, 2)
    except ReleaseFailed as exc:
        _record_failure(platform, app_name, release, exc.reason, exc.exit_status)
        raise
    except BootFailed as exc:
        _record_failure(platform, app_name, release, str(exc), None)
        raise
    except BaseException as exc:
        reason = exc.message if isinstance(exc, GitpaasError) else f"interrupted ({exc.__class__.__name__})"
        _record_failure(platform, app_name, release, reason, None)
        raise
    _make_current(platform, app_name, release)
    _announce(platform, app_name, release)
    try:
        pruned = apply_retention(platform, app_name)
    except GitpaasError as exc:
        output.warn(f"Could not apply the retention policy: {exc}")
    else:
        if pruned:
            output.info("Retention: pruned the slug images of " + ", ".join(f"v{v}" for v in pruned))
    return release


def _make_current(platform: Platform, app_name: str, release: Release) -> None:
    releases = platform.apps.releases(app_name)
    release.mark(SUCCEEDED)
    release.current = True
    releases.save(release)
    app = platform.apps.get(app_name)
    previous = app.current_release
    app.current_release = release.version
    app.formation = next_formation(app.formation, release.process_types)
    platform.apps.save(app)
    if previous and previous != release.version:
        old = releases.get(previous)
        old.current = False
        releases.save(old)


def _record_failure(platform: Platform, app_name: str, release: Release, reason: str,
                    exit_status: int | None) -> None:
    release.mark(FAILED, reason=reason, exit_status=exit_status)
    platform.apps.releases(app_name).save(release)
    _announce(platform, app_name, release)


def _announce(platform: Platform, app_name: str, release: Release) -> None:
    """Tell the app's webhooks (and e-mail) that ``release`` succeeded or failed. Never blocks."""
    path = platform.apps.releases(app_name).output_path(release.version)
    try:
        tail = "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-OUTPUT_TAIL_LINES:])
    except OSError:
        tail = ""  # no output file: the event says so by its empty tail
    announce_release(platform.settings, app_name, release, tail)


def run_release_phase(platform: Platform, release: Release, output: Output,
                      plan: Deployment | None = None) -> Held | None:
    """Run the release command, if the Procfile has one. With ``plan`` (what the swap starts after
    it), the new processes are started meanwhile, held (``Scheduler.hold``: their containers set up,
    their commands waiting), and returned for ``Scheduler.deploy`` to release; if the command fails
    they are removed. Either way no command of the new release runs before its release phase succeeded."""
    command = release.process_types.get(procfile.RELEASE)
    if not command:
        output.stage("No release command in the Procfile: skipping the release phase")
        return None
    held = platform.scheduler.hold(plan) if plan is not None else None
    try:
        _run_release_command(platform, release, output, command, held is not None)
    except BaseException:
        platform.scheduler.discard(held)
        raise
    return held


def _run_release_command(platform: Platform, release: Release, output: Output, command: str, holding: bool) -> None:
    timeout = platform.settings.release_timeout
    size = platform.apps.get(release.app["name"]).sizes.get(procfile.RELEASE)
    job = OneOff(release=release_spec(release), type=procfile.RELEASE, number=1000 + secrets.randbelow(9000),
                 command=command, size=size)
    output.stage(f"Running release command ({job.name}): {command}")
    if holding:
        output.info("Meanwhile the new processes' containers start, their commands held until it succeeds")
    output_path = platform.apps.releases(release.app["name"]).output_path(release.version)
    with ExitStack() as stack:
        log = stack.enter_context(open(output_path, "a", encoding="utf-8"))

        def on_line(line: str) -> None:
            log.write(line + "\n")
            log.flush()
            output.info(line)
            faults.reached(platform.settings, "release")

        result = platform.scheduler.run_once(job, on_line, timeout)
    if result.timed_out:
        raise ReleaseFailed(release.version, f"release command timed out after {timeout:g} s and was killed",
                            result.exit_status)
    if result.lost_network:
        raise ReleaseFailed(release.version, f"release command lost its network: {result.lost_network}, whose "
                            "network it shared, stopped while it ran (`gitpaas releases:retry` runs it again)",
                            result.exit_status)
    if result.out_of_memory:
        raise ReleaseFailed(release.version, f"release command ran out of memory (R15): {sizes.memory_kill(size)}; "
                            "give it more with `gitpaas ps:type release=standard-2x`", result.exit_status)
    if result.stopped:
        raise ReleaseFailed(release.version, "release command stopped", result.exit_status)
    if result.exit_status != 0:
        raise ReleaseFailed(release.version, f"release command exited with status {result.exit_status}",
                            result.exit_status)
    output.info("Release command succeeded (exit 0)")


def run_script(platform: Platform, app_name: str, release: Release, kind: str, command: str, output: Output,
               log_name: str) -> RunResult:
    """One of app.json's scripts (``postdeploy``, ``pr-predestroy``) as a one-off of ``release``,
    sized like the release phase, its output shown and kept in ``releases/vN/LOG_NAME``."""
    log_path = platform.apps.releases(app_name).folder(release.version) / log_name
    job = OneOff(release=release_spec(release), type=kind, number=1000 + secrets.randbelow(9000),
                 command=command, size=platform.apps.get(app_name).sizes.get(procfile.RELEASE))
    with open(log_path, "a", encoding="utf-8") as log:
        def on_line(line: str) -> None:
            log.write(line + "\n")
            log.flush()
            output.info(line)
        return platform.scheduler.run_once(job, on_line, platform.settings.release_timeout)


def run_postdeploy(platform: Platform, app_name: str, release: Release, command: str, output: Output) -> None:
    """app.json's ``scripts.postdeploy``: once, after the app's first successful release. Its
    outcome is recorded in app.json (``postdeploy``) and its output in ``releases/vN/postdeploy.log``;
    the release stays live whatever it does."""
    output.stage(f"Running app.json's postdeploy script: {command}")
    result = run_script(platform, app_name, release, "postdeploy", command, output, "postdeploy.log")
    log_path = platform.apps.releases(app_name).folder(release.version) / "postdeploy.log"
    succeeded = result.exit_status == 0 and not result.timed_out
    app = platform.apps.get(app_name)
    app.postdeploy = {"release": release.version, "command": command, "status": "succeeded" if succeeded else "failed",
                      "exit_status": result.exit_status, "timed_out": result.timed_out, "log": str(log_path)}
    platform.apps.save(app)
    if succeeded:
        output.info("postdeploy succeeded (exit 0)")
    else:
        output.warn(f"postdeploy failed (exit status {result.exit_status}); v{release.version} stays live. "
                    f"Its output: releases/v{release.version}/postdeploy.log in {app_name}'s folder on the server")


class PendingRelease:
    """A release recorded ``pending`` while its app's release lock is held, its release phase and
    swap still to run: :meth:`finish` runs them and lets the lock go (in the thread that began it).

    The events (``gitpaas.events``) create these; the CLI finishes one at once, while the API
    answers with the pending release as soon as it exists and lets it finish, as Heroku does.
    """

    def __init__(self, platform: Platform, lock: AppLock, release: Release, release_phase: bool = True) -> None:
        self.platform = platform
        self.lock = lock
        self.release = release
        self.release_phase = release_phase
        self._finished = False

    def finish(self, output: Output) -> Release:
        if self._finished:
            raise RuntimeError(f"release v{self.release.version} was finished already (its lock is gone)")
        self._finished = True
        try:
            return release_and_swap(self.platform, self.lock.app, self.release, output,
                                    release_phase=self.release_phase)
        finally:
            self.lock.release()
