"""How docker-local swaps: the one place it decides which containers start, serve and retire.

Every change of what runs goes through :func:`converge` — a new release's swap, ``ps:scale``,
``ps:restart``, a new domain and recovery after a crash — so each gets the same guarantee: no
request is lost.

1. **keep** the live containers of the wanted release, at the wanted size, within the wanted
   quantities (unless asked to replace them); dead ones (exited, not restarting: after a reboot,
   say) are removed;
2. **start** the missing ones beside the old ones — or, after a release phase, release the ones
   started held while it ran (``hold``; see ``containers.py``);
3. **check** them (``health.py``): web ones accept connections and pass app.json's checks, every
   new one stays up through its startup window. A failure stops the new ones and raises: the
   router and the old containers are untouched;
4. **route**: tell the router the new set of web endpoints, switched in one graceful reload;
5. **retire** the rest in the background: renamed ``-retiring`` at once (``ps`` shows ``stopping``),
   then, in a detached process, drain, SIGTERM and SIGKILL after the grace period.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from gitpaas import faults, procfile
from gitpaas.output import Output
from gitpaas.scheduler import Deployment, DeployReport, Router
from gitpaas.scheduler.docker_local.containers import SPEC, Containers, Dyno
from gitpaas.scheduler.docker_local.health import HealthCheck
from gitpaas.scheduler.docker_local.retire import claim, release_claims, retirers_alive, spawn
from gitpaas.settings import Settings


@dataclass
class Plan:
    """What a converge finds and decides, before it starts anything."""

    keep: list[Dyno]
    retire: list[Dyno]
    dead: list[Dyno]
    #: (process type, index) of each process to start
    wanted: list[tuple[str, int]]
    #: held containers found that are not the caller's: a release phase that never finished
    stale: list[Dyno] = field(default_factory=list)
    #: processes being retired (``-retiring``): each should have a live retirer
    retiring: list[Dyno] = field(default_factory=list)


def plan(containers: Containers, deployment: Deployment) -> Plan:
    release, formation = deployment.release, deployment.formation
    formation_dynos, held = containers.dynos_and_held(deployment.app)
    current = [d for d in formation_dynos if not d.process.one_off and not d.process.retiring]
    dead = [d for d in current if d.dead]
    running = [d for d in current if not d.dead]
    keep = [d for d in running if d.process.release_version == release.version
            and d.container.labels.get(SPEC) == containers.spec(release, deployment.sizes.get(d.process.type), d.process.type)
            and d.process.index <= formation.get(d.process.type, 0) and d.name not in deployment.replace]
    kept = {(d.process.type, d.process.index) for d in keep}
    wanted = [(process_type, index) for process_type, quantity in formation.items()
              for index in range(1, quantity + 1) if (process_type, index) not in kept]
    return Plan(keep=keep, retire=[d for d in running if d not in keep], dead=dead, wanted=wanted, stale=held,
                retiring=[d for d in formation_dynos if not d.process.one_off and d.process.retiring])


class Held:
    """A release's new processes, started held in the background while its release command runs
    (``Containers.start(held=True)``), for ``converge`` to release once that command succeeded —
    or removed (``discard``) when it failed. Starting them is only a head start: whatever goes
    wrong here, ``converge`` starts them as it always does."""

    def __init__(self, containers: Containers, deployment: Deployment) -> None:
        self.containers = containers
        self.deployment = deployment
        self.dynos: list[Dyno] = []
        self._stop = threading.Event()
        self._taken = False
        self._thread = threading.Thread(target=self._start, name="gitpaas-hold", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        release = self.deployment.release
        # A new release has no process yet, so its swap starts the whole formation (web first):
        # no need to list the app's containers first, on the way of the start that matters.
        wanted = sorted(((process_type, index) for process_type, quantity in self.deployment.formation.items()
                         for index in range(1, quantity + 1)), key=lambda wanted: wanted[0] != "web")
        for process_type, index in wanted:
            if self._stop.is_set():
                return
            try:
                self.dynos.append(self.containers.start(release, process_type, index,
                                                        self.deployment.sizes.get(process_type), held=True))
            except Exception:  # noqa: BLE001 — this one cannot be held (or the engine refused):
                continue  # converge starts it as it starts any other

    def take(self) -> list[Dyno]:
        """The held containers, once every start has returned; from then on they are the
        caller's (``converge``), and ``discard`` leaves them alone."""
        self._thread.join()
        self._taken = True  # (only once joined: interrupted while waiting, discard still removes them)
        return self.dynos

    def discard(self) -> None:
        """Remove them unreleased (the release phase failed or was interrupted; the swap never
        took them). Never raises: the failure being reported matters more, and the next converge
        (or reconcile) removes held containers left behind."""
        self._stop.set()
        self._thread.join()
        if self._taken:
            return
        with contextlib.suppress(Exception):
            self.containers.stop(self.dynos, grace=0)


def converge(containers: Containers, router: Router, settings: Settings, deployment: Deployment,
             output: Output, held: Held | None = None) -> DeployReport:
    release = deployment.release
    phase = time.monotonic()  # (the health phase counts the wait for held ones still starting)
    taken: list[Dyno] = []
    new: list[Dyno] = []
    settling: Future | None = None
    settler: ThreadPoolExecutor | None = None
    ready: dict[tuple[str, int], Dyno] = {}
    try:
        owned = retirers_alive(settings.home)  # (before the listing: a retirer that ends meanwhile is not missed)
        # The listing while held ones may still be starting (the engine's start of a container is
        # the longest step of a release): they are told apart from stale ones once taken, below.
        found = plan(containers, deployment)
        taken = held.take() if held else []
        keep, retire, dead, wanted = found.keep, found.retire, found.dead, found.wanted
        # a retirement cut short (its retirer killed: the API server's restart, say) is handed on
        orphaned = [d for d in found.retiring if d.process.id not in owned]
        # held ones to release: wanted, and set up as this swap would start them (size, user, network)
        ready = {(d.process.type, d.process.index): d for d in taken
                 if d.process.release_version == release.version and (d.process.type, d.process.index) in wanted
                 and d.container.labels.get(SPEC) == containers.spec(release, deployment.sizes.get(d.process.type),
                                                                     d.process.type)}
        mine = {d.process.id for d in taken}
        stale = [d for d in found.stale if d.process.id not in mine] + [d for d in taken if d not in ready.values()]
        report = DeployReport(started=[f"{t}.{i}" for t, i in wanted], retired=[d.name for d in retire])
        if wanted:
            output.stage("Starting " + ", ".join(report.started) + f" of v{release.version}")
        # (these serve nothing: one the engine will not remove now is left for the next converge)
        if stale:
            _quietly(containers.stop, stale, output, "held containers not wanted")
        if dead:
            _quietly(containers.stop, dead, output, "stopped processes")
        released: list[Dyno] = []
        for process_type, index in wanted:
            waiting = ready.get((process_type, index))
            if waiting is not None and containers.release_held(waiting):
                released.append(waiting)
                new.append(waiting)
            else:
                new.append(containers.start(release, process_type, index, deployment.sizes.get(process_type)))
            ready.pop((process_type, index), None)  # (released, or removed by release_held)
        if released:
            settler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitpaas-settle")
            settling = settler.submit(containers.settle, released)
            settler.shutdown(wait=False)  # (its one task runs on; ``settling`` says how it went)
        if new:
            faults.reached(settings, "health")
        checked = HealthCheck(containers, release.version, host=deployment.hosts[0], boot_timeout=settings.boot_timeout,
                              startup_window=settings.startup_window).run(new, release.healthchecks)
        if settling:
            settling.result()
            settler.shutdown(wait=True)  # (its thread ends: the retirer is then a fork of one thread)
        report.health_seconds = round(time.monotonic() - phase, 2)
        phase = time.monotonic()
        serving = keep + new
        router.set_app(deployment.app, list(deployment.hosts),
                       [d.address for d in serving if d.process.type == procfile.WEB and d.address])
        if new:
            faults.reached(settings, "swap")
    except BaseException:
        if settling:
            wait([settling])
        # (what failed matters more than a failure to clean up: held ones left are removed later)
        # (held ones not taken yet, the listing having failed, are the caller's to discard: it
        # stops the starts not begun, where taking them would wait for every one)
        with contextlib.suppress(Exception):
            containers.stop(new + [d for d in taken if d not in new], grace=0)
        raise
    for line in checked:
        output.info(line)
    output.info(f"Routing {settings.web_url(deployment.app)} to v{release.version} "
                f"({sum(1 for d in serving if d.process.type == procfile.WEB)} web)")
    if retire or orphaned:
        if retire:
            output.info(f"Retiring {len(retire)} old process{'es' if len(retire) != 1 else ''} in the background "
                        f"(SIGTERM, SIGKILL after {settings.stop_timeout:g} s)")
        try:
            handed = retire_in_background(containers, settings, retire + orphaned)
            again = [d for d in handed if d in orphaned]
            if again:
                output.info(f"Retiring {', '.join(d.name for d in again)} of "
                            f"{', '.join(sorted({f'v{d.process.release_version}' for d in again}))} again "
                            "(a retirement cut short)")
            faults.reached(settings, "retire")
        except Exception as exc:  # noqa: BLE001 — the new processes serve already: this must not fail the
            # deploy; the next converge finds the old ones still running and retires them
            output.warn(f"Could not retire the old processes yet ({exc}); the next deploy or scale will")
    report.swap_seconds = round(time.monotonic() - phase, 2)
    return report


def _quietly(stop: Callable[..., None], dynos: list[Dyno], output: Output, what: str) -> None:
    try:
        stop(dynos, grace=0)
    except Exception as exc:  # noqa: BLE001 — see the caller
        output.warn(f"Could not remove {what} yet ({exc}); the next deploy or scale will")


def retire_in_background(containers: Containers, settings: Settings, dynos: list[Dyno]) -> list[Dyno]:
    """Hand ``dynos`` to a detached retirer, then mark them stopping; return the ones handed (one a
    live retirer has already is left to it) once the retirer runs.

    In that order: if the retirer cannot be started, they are not marked, so the next converge
    still sees them running and retires them; once marked, a retirer owns them (it drains first,
    so the mark always comes before the SIGTERM).
    """
    claimed = claim(settings.home, [d.process.id for d in dynos])
    try:
        if claimed:
            spawn(settings.home, settings.stop_timeout, settings.drain_seconds, claimed)
    finally:
        release_claims(claimed)
    handed = [d for d in dynos if d.process.id in claimed]
    for dyno in handed:
        containers.mark_retiring(dyno)
    return handed