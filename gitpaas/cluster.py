"""A home's scheduler and, on a swarm, its nodes: choosing the scheduler, listing, joining and
removing nodes, and keeping the router on the web processes wherever Swarm moves them.

Swarm reschedules a dead node's processes by itself; nothing in gitpaas's records changes. Only
the router has to follow: :func:`follow_swarm` (run by ``gitpaas server``) looks every few
seconds and re-routes an app whose web processes moved. An app being deployed is left to its
deploy, which routes as it goes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from filelock import Timeout

from gitpaas.errors import EnvironmentProblem, UsageError
from gitpaas.formation import hosts
from gitpaas.platform import Platform
from gitpaas.settings import read_home_record
from gitpaas.store.files import write_json

#: how often the router is checked against where Swarm runs the web processes
FOLLOW_EVERY = 2.0
#: how long removing a node waits for Swarm to move its processes away
DRAIN_TIMEOUT = 120.0


def set_scheduler(platform: Platform, scheduler: str, manager: str = "", registry: str = "") -> str:
    """Record the home's scheduler (home.json) after checking a swarm's manager and registry answer.
    Refused while an app has a release running: its processes would be left behind."""
    settings = platform.settings
    if scheduler == settings.scheduler and manager == settings.swarm_manager and registry == settings.swarm_registry:
        return _described(scheduler, manager)
    running = [app.name for app in platform.apps.list() if app.current_release]
    if running:
        raise UsageError(f"{', '.join(sorted(running))} {'has' if len(running) == 1 else 'have'} releases running on "
                         f"{settings.scheduler}: a new scheduler would leave their processes behind (destroy them, "
                         "or use another GITPAAS_HOME)")
    if scheduler == "swarm":
        # Imported on use: docker-py (see gitpaas.platform).
        candidate = Platform(dataclasses.replace(settings, scheduler="swarm", swarm_manager=manager,
                                                 swarm_registry=registry))
        candidate.scheduler.nodes()  # the manager answers, and is one
        candidate.slugs.check()  # the registry answers
    record = read_home_record(settings.home)
    record.update(scheduler=scheduler, swarm_manager=manager, swarm_registry=registry)
    if scheduler != "swarm":
        record.pop("swarm_manager")
        record.pop("swarm_registry")
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_json(settings.home / "home.json", record)
    return _described(scheduler, manager)


def _described(scheduler: str, manager: str) -> str:
    return f"the swarm managed at {manager}" if scheduler == "swarm" else "this machine's Docker engine (docker-local)"


def _swarm(platform: Platform):
    if platform.settings.scheduler != "swarm":
        raise UsageError("this home runs its processes on docker-local; `gitpaas scheduler:set swarm "
                         "--manager URL --registry HOST:PORT` moves it to a swarm")
    return platform.scheduler


def swarm_nodes(platform: Platform) -> list[dict[str, Any]]:
    return _swarm(platform).nodes()


def swarm_join_command(platform: Platform, as_manager: bool) -> str:
    return _swarm(platform).join_command(as_manager)


def swarm_remove_node(platform: Platform, node: str) -> list[str]:
    """Drain ``node`` (Swarm moves its processes to the others, the router following), wait until
    nothing of this home runs there, and remove it; returns the processes that moved."""
    scheduler = _swarm(platform)
    moved = scheduler.drain_node(node)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while scheduler.running_on(node):
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"{node}'s processes did not move within {DRAIN_TIMEOUT:g} s; it stays drained "
                                     "(see `gitpaas nodes`)")
        sync_routes(platform)
        time.sleep(1.0)
    sync_routes(platform)
    scheduler.remove_node(node)
    return moved


def sync_routes(platform: Platform) -> list[str]:
    """Route each deployed app to the web processes that serve now; the apps whose routes changed.
    An app whose release lock is held (a deploy, a scale) is skipped: that routes by itself."""
    changed = []
    for app in platform.apps.list():
        if not app.current_release:
            continue
        lock = platform.apps.release_lock(app.name)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            if platform.scheduler.sync_router(app.name, hosts(platform.settings, app)):
                changed.append(app.name)
        finally:
            lock.release()
    return changed


def follow_swarm(platform: Platform, stopped: threading.Event, log=print) -> None:
    """Until ``stopped``: keep the router on the web processes wherever Swarm runs them."""
    while not stopped.wait(FOLLOW_EVERY):
        try:
            for app in sync_routes(platform):
                log(f"swarm: {app}'s web processes moved; the router follows")
        except Exception as exc:  # noqa: BLE001 — the manager is away (a failover?): try again later
            log(f"swarm: could not read where processes run ({exc}); trying again")
