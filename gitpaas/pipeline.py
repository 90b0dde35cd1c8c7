"""The story of a release: build → release phase → swap → record.

``deploy_push`` is what happens on ``git push``; read it top to bottom. ``release_and_swap`` is
the half every release-creating event shares (a deploy now; config changes, rollbacks and retries
later): run the release command in a throwaway container of the new slug and, only when it exits
zero, swap the formation over to the new release.
"""

from __future__ import annotations

import secrets
import time
import uuid
from contextlib import ExitStack
from typing import TYPE_CHECKING, Callable, Mapping

from gitpaas import appjson, health, labels, procfile
from gitpaas.build.base import BuildRequest, select_builder
from gitpaas.errors import BootFailed, BuildFailed, GitpaasError, PushRefused, ReleaseFailed
from gitpaas.git.repo import DEPLOY_BRANCHES, note_ref_update
from gitpaas.git.tree import PushedTree
from gitpaas.output import Output
from gitpaas.release import FAILED, SUCCEEDED, Release, describe_timings
from gitpaas.scheduler import Process, ProcessSpec
from gitpaas.store.apps import App

if TYPE_CHECKING:
    from gitpaas.platform import Platform

ZERO_SHA = "0" * 40


def deploy_push(platform: Platform, app_name: str, old: str, new: str, ref: str,
                output: Output, environ: Mapping[str, str] | None = None) -> Release:
    """Deploy one pushed ref. Raises (and so rejects the push) unless the new release is live."""
    if ref not in DEPLOY_BRANCHES:
        branch = ref.removeprefix("refs/heads/")
        raise PushRefused(f"gitpaas deploys only the main or master branch, not {branch!r}; "
                          f"push it with `git push <remote> {branch}:main`")
    if new == ZERO_SHA:
        raise PushRefused(f"deleting {ref.removeprefix('refs/heads/')} is not supported: it is what the app runs")
    apps = platform.apps
    app = apps.get(app_name)
    if environ and environ.get("GITPAAS_USER"):
        platform.actor = environ["GITPAAS_USER"]  # pushed over SSH or HTTPS by this account
    started = time.monotonic()
    output.stage(f"Deploying {app.name}: {ref.removeprefix('refs/heads/')} at {new[:7]}")
    with platform.release_lock(app.name, output):
        platform.check_ref_unmoved(app.name, ref, old)
        source = PushedTree.open(apps.repo_path(app.name), new, environ)
        procfile_text = source.read_text("Procfile")
        process_types: dict[str, str | None] = procfile.parse(procfile_text) if procfile_text is not None else {}
        output.info(f"Procfile: {describe_process_types(process_types)}")
        manifest = appjson.parse(source.read_text("app.json"))

        builder = select_builder(source, platform.builders)
        received = time.monotonic()
        build_id = uuid.uuid4().hex[:8]
        tag = f"{platform.settings.image_repository(app.name)}:build-{build_id}"
        log_path = apps.app_dir(app.name) / "builds" / f"{time.strftime('%Y%m%dT%H%M%S')}-{new[:7]}-{build_id}.log"
        output.stage(f"Building with {builder.name}")
        try:
            image = builder.build(BuildRequest(
                app=app.name, source=source, tag=tag, log_path=log_path, output=output,
                labels=labels.for_app(platform.settings, app.name, **{labels.ROLE: "slug"}),
                build_args={"GITPAAS_STACK_IMAGE": platform.settings.stack_image},
                config_vars=platform.config.get(app.name), cache_dir=apps.app_dir(app.name) / "cache",
            ))
        except BuildFailed as exc:
            exc.log_path = str(log_path)  # type: ignore[attr-defined]
            raise
        for name, command in image.default_process_types.items():
            process_types.setdefault(name, command)
        if procfile.WEB not in process_types and image.runs_image_command:
            process_types[procfile.WEB] = None  # the image's own command
        built = time.monotonic()
        output.info(f"Built {tag.split(':')[0]} ({image.size / 1e6:.1f} MB) in {built - received:.1f} s")

        try:
            release = create_release(platform, app, description=f"Deploy {new[:7]}", source_image=image.tag,
                                     slug_id=str(uuid.uuid5(uuid.NAMESPACE_URL, image.image_id)),
                                     commit=new, process_types=process_types, build_log=str(log_path),
                                     config_vars=platform.config.get(app.name), healthchecks=manifest.healthchecks)
        finally:
            platform.slugs.untag(image.tag)
        release.timings.update(receive=round(received - started, 2), build=round(built - received, 2))
        release = release_and_swap(platform, app, release, output, started=started)
        note_ref_update(apps.app_dir(app.name), ref, new)
        if manifest.postdeploy and apps.get(app.name).postdeploy is None:
            run_postdeploy(platform, app.name, release, manifest.postdeploy, output)
    summary = describe_timings(release.version, release.timings)
    output.stage(summary[0].upper() + summary[1:])
    output.info(platform.settings.web_url(app.name))
    return release


def describe_process_types(process_types: Mapping[str, str | None]) -> str:
    if not process_types:
        return "none (the Dockerfile's command or the buildpack's defaults)"
    return ", ".join(process_types)


def create_release(platform: Platform, app: App, *, description: str, source_image: str, slug_id: str,
                   commit: str | None, process_types: dict[str, str | None], config_vars: dict[str, str],
                   build_log: str | None = None, healthchecks: dict | None = None) -> Release:
    """Allocate vN (under the store's version lock), tag its slug image ``:vN``, record it ``pending``.

    Every release has its own image tag, so pruning an old release's tag never touches a newer
    release that shares the same slug (a rollback, a config change).
    """
    releases = platform.apps.releases(app.name)

    def build(version: int) -> Release:
        return Release(
            version=version, description=description, app={"id": app.id, "name": app.name},
            user=platform.actor_user(), slug={"id": slug_id}, artifacts=[{"type": "slug", "id": slug_id}],
            output_stream_url=releases.output_path(version).as_uri(),
            commit=commit, image=f"{platform.settings.image_repository(app.name)}:v{version}",
            process_types=dict(process_types), config_vars=dict(config_vars), build_log=build_log,
            healthchecks=dict(healthchecks or {}),
        )
    release = releases.create(build)
    try:
        platform.slugs.tag(source_image, release.image)
    except BaseException as exc:
        release.mark(FAILED, reason=f"could not tag the slug image: {exc}", exit_status=None)
        releases.save(release)
        raise
    if platform.on_release_created is not None:
        platform.on_release_created(release)
    return release


def release_and_swap(platform: Platform, app: App, release: Release, output: Output,
                     started: float | None = None) -> Release:
    """Run the release phase; on success swap the formation to ``release`` and make it current.

    Whatever goes wrong, the release is recorded as failed with the reason, and the formation the
    app was running keeps running.
    """
    app = platform.apps.get(app.name)  # the caller's copy may predate a release that ran while it waited
    releases = platform.apps.releases(app.name)
    started = time.monotonic() if started is None else started
    output.stage(f"Release v{release.version} created ({release.description})")
    try:
        phase = time.monotonic()
        run_release_phase(platform, app, release, output)
        release.timings["release"] = round(time.monotonic() - phase, 2)
        swap_formation(platform, app, release, output)
        release.timings["total"] = round(time.monotonic() - started, 2)
    except ReleaseFailed as exc:
        _record_failure(platform, app, release, exc.reason, exc.exit_status)
        raise
    except BootFailed as exc:
        _record_failure(platform, app, release, str(exc), None)
        raise ReleaseFailed(release.version, str(exc)) from exc
    except BaseException as exc:
        reason = exc.message if isinstance(exc, GitpaasError) else f"interrupted ({exc.__class__.__name__})"
        _record_failure(platform, app, release, reason, None)
        raise
    previous = app.current_release
    release.mark(SUCCEEDED)
    release.current = True
    releases.save(release)
    app = platform.apps.get(app.name)
    app.current_release = release.version
    app.formation = next_formation(app.formation, release.process_types)
    platform.apps.save(app)
    if previous and previous != release.version:
        old = releases.get(previous)
        old.current = False
        releases.save(old)
    platform.announce(app.name, release)
    try:
        pruned = platform.apply_retention(app.name)
    except GitpaasError as exc:
        output.warn(f"Could not apply the retention policy: {exc}")
    else:
        if pruned:
            output.info("Retention: pruned the slug images of " + ", ".join(f"v{v}" for v in pruned))
    return release


def _record_failure(platform: Platform, app: App, release: Release, reason: str, exit_status: int | None) -> None:
    release.mark(FAILED, reason=reason, exit_status=exit_status)
    platform.apps.releases(app.name).save(release)
    platform.announce(app.name, release)


def run_postdeploy(platform: Platform, app_name: str, release: Release, command: str, output: Output) -> None:
    """app.json's ``scripts.postdeploy``: once, after the app's first successful release. Its
    outcome is recorded in app.json (``postdeploy``) and its output in ``releases/vN/postdeploy.log``;
    the release stays live whatever it does."""
    log_path = platform.apps.releases(app_name).folder(release.version) / "postdeploy.log"
    output.stage(f"Running app.json's postdeploy script: {command}")
    with open(log_path, "a", encoding="utf-8") as log:
        def on_line(line: str) -> None:
            log.write(line + "\n")
            log.flush()
            output.info(line)
        result = platform.scheduler.run_once(ProcessSpec(
            app=app_name, type="postdeploy", index=1000 + secrets.randbelow(9000), release_version=release.version,
            release_id=release.id, image=release.image, command=command, env=dict(release.config_vars),
        ), on_line, platform.settings.release_timeout)
    succeeded = result.exit_status == 0 and not result.timed_out
    app = platform.apps.get(app_name)
    app.postdeploy = {"release": release.version, "command": command, "status": "succeeded" if succeeded else "failed",
                      "exit_status": result.exit_status, "timed_out": result.timed_out, "log": str(log_path)}
    platform.apps.save(app)
    if succeeded:
        output.info("postdeploy succeeded (exit 0)")
    else:
        output.warn(f"postdeploy failed (exit status {result.exit_status}); v{release.version} stays live. "
                    f"Output: {log_path}")


def run_release_phase(platform: Platform, app: App, release: Release, output: Output) -> None:
    command = release.process_types.get(procfile.RELEASE)
    if not command:
        output.stage("No release command in the Procfile: skipping the release phase")
        return
    timeout = platform.settings.release_timeout
    dyno = f"release.{1000 + secrets.randbelow(9000)}"
    output.stage(f"Running release command ({dyno}): {command}")
    with ExitStack() as stack:
        log = stack.enter_context(open(platform.apps.releases(app.name).output_path(release.version),
                                       "a", encoding="utf-8"))

        def on_line(line: str) -> None:
            log.write(line + "\n")
            log.flush()
            output.info(line)

        result = platform.scheduler.run_once(ProcessSpec(
            app=app.name, type=procfile.RELEASE, index=int(dyno.split(".")[1]),
            release_version=release.version, release_id=release.id, image=release.image, command=command,
            env=dict(release.config_vars),
        ), on_line, timeout)
    if result.timed_out:
        raise ReleaseFailed(release.version, f"release command timed out after {timeout:g} s and was killed",
                            result.exit_status)
    if result.stopped:
        raise ReleaseFailed(release.version, "release command stopped", result.exit_status)
    if result.exit_status != 0:
        raise ReleaseFailed(release.version, f"release command exited with status {result.exit_status}",
                            result.exit_status)
    output.info("Release command succeeded (exit 0)")


def next_formation(current: Mapping[str, int], process_types: Mapping[str, str | None]) -> dict[str, int]:
    """Quantities for a release's process types: keep what was scaled, default the new ones."""
    return {name: current.get(name, procfile.default_quantity(name))
            for name in procfile.formation_types(dict(process_types))}


def process_specs(app: App, release: Release, formation: Mapping[str, int],
                  skip: set[tuple[str, int]] = frozenset()) -> list[ProcessSpec]:
    specs = []
    for process_type, quantity in formation.items():
        for index in range(1, quantity + 1):
            if (process_type, index) in skip:
                continue
            specs.append(ProcessSpec(
                app=app.name, type=process_type, index=index, release_version=release.version,
                release_id=release.id, image=release.image, command=release.process_types.get(process_type),
                env=dict(release.config_vars)))
    return specs


def swap_formation(platform: Platform, app: App, release: Release, output: Output) -> None:
    """Start the new release's processes, check them, route to them, retire the old ones."""
    formation = next_formation(app.formation, release.process_types)
    converge(platform, app, release, formation, output, timings=release.timings)


def converge(platform: Platform, app: App, release: Release, formation: Mapping[str, int], output: Output,
             *, replace: Callable[[Process], bool] | None = None, timings: dict[str, float] | None = None) -> None:
    """Make the running processes ``formation`` of ``release``, with no request lost.

    Processes of ``release`` within the wanted quantities are kept (unless ``replace`` says so);
    the missing ones are started and must come up healthy before the router sends them anything;
    then the router switches, in one reload, to exactly the wanted set; only then are the others
    retired — in the background: SIGTERM, and SIGKILL after the grace period.
    """
    scheduler, settings = platform.scheduler, platform.settings
    running = [p for p in scheduler.processes(app.name) if not p.one_off and p.state != "stopping"]
    keep = [p for p in running if p.release_version == release.version and p.index <= formation.get(p.type, 0)
            and not (replace and replace(p))]
    retire = [p for p in running if p not in keep]
    specs = process_specs(app, release, formation, skip={(p.type, p.index) for p in keep})
    if specs:
        output.stage("Starting " + ", ".join(f"{s.type}.{s.index}" for s in specs) + f" of v{release.version}")
    timings = {} if timings is None else timings
    phase = time.monotonic()
    new = scheduler.start(specs)
    try:
        checked = health.wait_until_healthy(
            scheduler, app.name, new, release.healthchecks, host=settings.app_host(app.name),
            boot_timeout=settings.boot_timeout, startup_window=settings.startup_window)
        timings["health"] = round(time.monotonic() - phase, 2)
        phase = time.monotonic()
        route(platform, app.name, keep + new)
    except BaseException:
        scheduler.stop(new, grace=0)
        raise
    for line in checked:
        output.info(line)
    output.info(f"Routing {settings.web_url(app.name)} to v{release.version} "
                f"({sum(1 for p in keep + new if p.type == procfile.WEB)} web)")
    if retire:
        output.info(f"Retiring {len(retire)} old process{'es' if len(retire) != 1 else ''} in the background "
                    f"(SIGTERM, SIGKILL after {settings.stop_timeout:g} s)")
        try:  # the new processes serve already: a failure here must not fail the release
            scheduler.retire(retire, grace=settings.stop_timeout, drain=settings.drain_seconds)
        except Exception as exc:  # noqa: BLE001 — reported; the next converge retires strays
            output.warn(f"Could not retire the old processes yet ({exc}); the next deploy or scale will")
    timings["swap"] = round(time.monotonic() - phase, 2)


def route(platform: Platform, app_name: str, processes: list[Process]) -> None:
    backends = [p.address for p in processes if p.type == procfile.WEB and p.address]
    platform.router.set_app(app_name, platform.hosts(app_name), backends)
