"""What the dashboard's pages show, gathered from the same operations and stores the CLI and the
API read (``appview.app_info``, ``operations.processes``, the release store, ``releasediff``):
nothing here decides anything, it only arranges records for the templates."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gitpaas import appview, operations, releasediff
from gitpaas.addons.store import AddonStore
from gitpaas.errors import DamagedRecord, GitpaasError
from gitpaas.identity import Actor
from gitpaas.notify.event import hide_server_paths
from gitpaas.notify.store import Notifications
from gitpaas.platform import Platform
from gitpaas.release import PENDING, PHASES, Release
from gitpaas.release import total_seconds as release_total
from gitpaas.scheduler import Process

#: releases on an app's page; older ones are a link away
TIMELINE_LENGTH = 15
#: lines of a pending release's output shown in the timeline (its page streams all of it)
OUTPUT_TAIL = 12
#: the most of a log a page shows (the rest is on disk, where the page says)
LOG_LIMIT = 256 * 1024

#: what each phase does and why, in a sentence or two: beside the phase on every release's page
PHASE_TEXT = {
    "receive": "git push sent the new commits to the app's bare repository on this server, and its "
               "pre-receive hook began the deploy. Nothing that runs has changed yet.",
    "build": "The pushed tree became a Docker image, the slug: built from its Dockerfile, or by the "
             "buildpacks on the stack. Rollbacks, config changes and promotions reuse this slug; "
             "they never build again.",
    "release": "The Procfile's release command (database migrations, typically) ran once, in a throwaway "
               "container of the new slug with the new config. It runs apart from the app so that its "
               "failure changes nothing: the old release keeps serving, and this one is marked failed.",
    "health": "Only once the release command exited 0 were the new processes started, and checked until "
              "they answered. A release that fails its release phase never boots a process.",
    "swap": "The router was switched to the new processes, then the old ones were stopped: the requests "
            "in flight finish, no request is dropped.",
}
#: why releases that are not pushes exist at all
KIND_TEXT = {
    "config": "A config change is a release: the processes read their config vars only when they start, "
              "so new values mean the same slug started again with them, through the same release phase.",
    "rollback": "A rollback is a new release running an older release's slug and config: history only "
                "grows, and rolling back the rollback is one more release.",
    "retry": "A retry is a new release of the same slug and config that runs the release phase again: "
             "for a release command that failed on something outside the app (a database that was down).",
    "promote": "A promotion releases another app's slug as it is, with this app's own config: what was "
               "tested upstream is exactly what runs here.",
}


@dataclass
class Segment:
    phase: str
    seconds: float | None
    #: its start and width on the page's time scale, in percent
    left: float = 0.0
    width: float = 0.0
    state: str = "todo"  # done, running, todo, skipped


@dataclass
class Row:
    """A release as the timeline shows it."""

    release: Release
    segments: list[Segment]
    total: float | None
    kind: str
    output_tail: list[str] = field(default_factory=list)


def release_kind(release: Release) -> str:
    description = release.description
    if release.promoted_from:
        return "promote"
    if description.startswith("Rollback to"):
        return "rollback"
    if description.startswith("Retry of"):
        return "retry"
    if "config var" in description:
        return "config"
    if description.startswith("Deploy"):
        return "deploy"
    return "other"


def total_seconds(release: Release) -> float | None:
    """None for a release that has no timings yet."""
    return release_total(release.timings) if release.timings else None


def segments(release: Release, scale: float) -> list[Segment]:
    """The phases of ``release`` on a scale of ``scale`` seconds (the page's longest release): done
    ones with their time, the one under way while it is pending, and the rest to do."""
    timings, found, left, running_marked = release.timings, [], 0.0, False
    pushed = "build" in timings or release_kind(release) == "deploy"
    for phase in PHASES:
        if phase in timings:
            seconds = float(timings[phase])
            width = 100.0 * seconds / scale if scale > 0 else 0.0
            found.append(Segment(phase, seconds, left, width, "done"))
            left += width
        elif phase in ("receive", "build") and not pushed:
            found.append(Segment(phase, None, left, 0.0, "skipped"))  # same slug: nothing to build
        elif release.status == PENDING and not running_marked:
            found.append(Segment(phase, None, left, 0.0, "running"))
            running_marked = True
        else:
            found.append(Segment(phase, None, left, 0.0, "todo"))
    return found


def timeline(platform: Platform, app: str, below: int | None = None,
             limit: int = TIMELINE_LENGTH) -> tuple[list[Row], int | None]:
    """The newest ``limit`` releases (below version ``below``), and the version to page on from."""
    store = platform.apps.releases(app)
    page = store.newest(limit + 1, below=below)
    more = page[limit - 1].version if len(page) > limit else None
    page = page[:limit]
    scale = max([t for t in (total_seconds(r) for r in page) if t] or [1.0])
    rows = []
    for release in (shown(platform, release) for release in page):
        tail = tail_lines(store.output_path(release.version), OUTPUT_TAIL) if release.status == PENDING else []
        tail = [hide_server_paths(line, platform.settings.home) for line in tail]
        rows.append(Row(release, segments(release, scale), total_seconds(release), release_kind(release), tail))
    return rows, more


@dataclass
class Building:
    """A push being built, or the last build when it failed: no release exists for either (a build
    that fails makes none, as on Heroku)."""

    commit: str
    started_at: str
    tail: list[str]
    #: why it failed; None while it runs
    reason: str | None = None


def building(platform: Platform, app: str) -> Building | None:
    """The build under way, else the app's last build if it failed."""
    note = platform.apps.building(app) or platform.apps.failed_build(app)
    if note is None:
        return None
    home = platform.settings.home
    log = platform.apps.app_dir(app) / "builds" / Path(str(note.get("log", ""))).name
    tail = [hide_server_paths(line, home) for line in tail_lines(log, OUTPUT_TAIL)]
    reason = note.get("reason")
    return Building(str(note.get("commit", "")), str(note.get("started_at", "")), tail,
                    hide_server_paths(str(reason), home) if reason is not None else None)


def shown(platform: Platform, release: Release) -> Release:
    """``release`` as a page shows it: a failure's reason without the server's paths (the slug's
    tag, a crashed process's log may name them)."""
    if not release.failure:
        return release
    return replace(release, failure=hide_server_paths(release.failure, platform.settings.home))


def tail_lines(path: Path, count: int) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 16384))
            return handle.read().decode("utf-8", "replace").splitlines()[-count:]
    except OSError:
        return []


def read_log(path: Path | str | None) -> tuple[str, bool, int]:
    """A log's text (its last LOG_LIMIT bytes), whether it was cut, and the byte offset it was read
    up to (where a live page goes on from); ("", False, 0) when there is none."""
    if not path:
        return "", False, 0
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_LIMIT))
            return handle.read(LOG_LIMIT).decode("utf-8", "replace"), size > LOG_LIMIT, size
    except OSError:
        return "", False, 0



@dataclass
class AppSummary:
    name: str
    url: str
    current: int | None
    latest: Release | None
    up: int
    wanted: int
    maintenance: bool


def counts(processes: list[Process], formation: dict[str, int]) -> tuple[int, int]:
    """Processes up, and processes wanted (the formation's quantities)."""
    up = sum(1 for p in processes if not p.one_off and not p.retiring and p.state == "up")
    return up, sum(formation.values())


def app_summaries(platform: Platform, actor: Actor) -> list[AppSummary]:
    summaries = []
    for app in operations.visible_apps(platform, actor):
        try:
            latest = platform.apps.releases(app.name).latest()
        except DamagedRecord:
            latest = None
        up, wanted = counts(_processes(platform, app.name), app.formation)
        summaries.append(AppSummary(app.name, platform.settings.web_url(app.name), app.current_release, latest,
                                    up, wanted, app.maintenance))
    return summaries


def _processes(platform: Platform, name: str) -> list[Process]:
    try:
        return operations.processes(platform, name)
    except GitpaasError:  # the engine is down, or the app just went: shown as none running
        return []


def formation(platform: Platform, app: str) -> dict[str, Any]:
    """The app's processes (one-offs too: ``release.1234``, ``run.5678``) and its formation."""
    found = platform.apps.get(app)
    processes = sorted(_processes(platform, app), key=lambda p: (p.one_off, p.type, p.index))
    up, wanted = counts(processes, found.formation)
    return {"processes": processes, "formation": found.formation, "up": up, "wanted": wanted}


def app_page(platform: Platform, app: str) -> dict[str, Any]:
    """Everything an app's page shows besides the timeline and the processes."""
    info = appview.app_info(platform, app)
    store = AddonStore(platform.settings)
    addons = store.of_app(app)
    return {
        "info": info,
        "hosts": operations.app_hosts(platform, app),
        "addons": addons,
        "webhooks": [hook.public() for hook in Notifications.for_app(platform.settings, app).webhooks()],
        "config": store.with_own(app, platform.apps.config(app).get()),
        "addon_config": {addon.config_var for addon in addons},
    }


def release_files(platform: Platform, release: Release) -> list[tuple[str, str]]:
    """The files on disk a release wrote, as paths under the gitpaas home (never the home's own path)."""
    store = platform.apps.releases(release.app["name"])
    home = platform.settings.home
    folder = store.folder(release.version)
    files = [(_under_home(folder / "release.json", home), "the release's record: this page, as JSON")]
    if store.output_path(release.version).exists():
        files.append((_under_home(store.output_path(release.version), home), "the release command's output"))
    if store.story_path(release.version).exists():
        files.append((_under_home(store.story_path(release.version), home), "what the pipeline said making it"))
    if release.build_log and Path(release.build_log).exists():
        files.append((_under_home(Path(release.build_log), home), "the build's log"))
    return files


def _under_home(path: Path, home: Path) -> str:
    try:
        return "$GITPAAS_HOME/" + str(path.relative_to(home))
    except ValueError:
        return path.name


def diff(platform: Platform, app: str, older: int, newer: int) -> releasediff.ReleaseDiff:
    store = platform.apps.releases(app)
    return releasediff.diff(store.get(older), store.get(newer))
