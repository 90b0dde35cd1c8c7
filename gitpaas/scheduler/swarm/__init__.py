"""swarm: every process type is a Docker Swarm service, and Swarm does the rolling.

    services.py   a release's process type as a service spec: image, command, $PORT, health check,
                  stop grace, start-first updates with Swarm's own rollback; tasks as processes
    (here)        the Scheduler: deploys as service updates, the release phase as a one-shot
                  service, the router kept on the web tasks wherever Swarm puts them

What the request (:class:`gitpaas.scheduler.Deployment`) becomes:

1. each process type's service is created, or updated with the release's spec (Swarm rolls it
   ``start-first``, one task at a time, each new task proving itself with the health check before
   an old one stops; a failed one makes Swarm roll the service back), or only scaled;
2. while Swarm works, the router follows the web tasks that run and are healthy — a new one is
   routed as soon as it is, an old one is taken out as soon as Swarm stops wanting it, and the
   old process drains (``GITPAAS_DRAIN``) before it gets its SIGTERM;
3. the deploy ends when every service has converged; a rollback, a task that fails to start or
   the boot timeout fails it with the reason (the other services of the deploy are rolled back
   too), leaving the old release serving.

Web tasks publish ``$PORT`` in host mode on a port each node picks, and nginx on this machine
reaches them at the node's address (the ingress routing mesh is not used: it needs IPVS).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

from gitpaas.dockerutil import engine_call
from gitpaas.errors import BootFailed, ProcessNotFound, UsageError
from gitpaas.lines import Merged, iter_lines
from gitpaas.output import Output
from gitpaas.scheduler import (
    AddonSpec,
    Deployment,
    DeployReport,
    OneOff,
    Process,
    Router,
    RunResult,
    RunSession,
)
from gitpaas.scheduler.swarm import services
from gitpaas.scheduler.swarm.services import Services
from gitpaas.settings import Settings

#: how often a deploy looks at Swarm's progress (and the router follows the web tasks)
POLL = 0.25
#: how long a deploy waits for nodes to pull a release's image, at most
PULL_TIMEOUT = 600.0
#: how often ``logs --tail`` looks for services that appeared since
FOLLOW_POLL = 2.0

ADDONS_UNSUPPORTED = ("add-ons need the docker-local scheduler for now: the swarm scheduler does not run "
                      "add-on containers")


class SwarmScheduler:
    name = "swarm"

    def __init__(self, manager: docker.DockerClient, local: docker.DockerClient | None, settings: Settings,
                 router: Router) -> None:
        self.client = manager
        self.settings = settings
        self.router = router
        self.services = Services(manager, local, settings)
        #: app → the backends this scheduler last routed it to
        self._routed: dict[str, list[tuple[str, int]]] = {}

    # --- deploys ----------------------------------------------------------------------------
    def hold(self, deployment: Deployment) -> None:
        """Nothing is started ahead on a swarm: a service's tasks start when the service is updated."""
        return None

    def discard(self, held: None) -> None:
        pass

    @engine_call("deploying to the swarm")
    def deploy(self, deployment: Deployment, output: Output, held: None = None) -> DeployReport:
        app, release = deployment.app, deployment.release
        network = self.services.network(app)
        existing = self.services.formation(app)
        before = self.services.serving(app)
        plans: list[services.Plan] = []
        phase = time.monotonic()
        try:
            for process_type in sorted(set(deployment.formation) | set(existing)):
                quantity = deployment.formation.get(process_type, 0)
                current = existing.get(process_type)
                if current is None and quantity == 0:
                    continue
                restart = any(name.partition(".")[0] == process_type for name in deployment.replace)
                plan = self.services.apply(release, process_type, quantity, deployment.sizes.get(process_type),
                                           network, current, restart, host=deployment.hosts[0])
                if not plan.noop:  # (one that changes nothing is not waited for: its old crashes are not this deploy's)
                    plans.append(plan)
            if plans:
                starting = [f"{p.process_type}={p.quantity}" for p in plans if p.quantity]
                output.stage(f"Swarm: {', '.join(starting) or 'stopping'} of v{release.version}"
                             + (" (a rolling update: each new process starts and passes its check before an old "
                                "one stops)" if any(p.rolled for p in plans) else ""))
            self._wait(plans, deployment, output)
        except BaseException:
            self._undo(plans)
            self._route(app, list(deployment.hosts))
            raise
        after = self.services.serving(app)
        rolled = {p.process_type for p in plans if p.rolled}
        report = DeployReport(
            started=sorted(n for n in after if n not in before or n.partition(".")[0] in rolled),
            retired=sorted(n for n in before if n not in after or n.partition(".")[0] in rolled))
        report.health_seconds = round(time.monotonic() - phase, 2)
        phase = time.monotonic()
        web = self._route(app, list(deployment.hosts))
        report.swap_seconds = round(time.monotonic() - phase, 2)
        placed = self.services.placement(app)
        if placed:
            output.info("Running on " + "; ".join(f"{node}: {', '.join(names)}" for node, names in placed.items()))
        output.info(f"Routing {self.settings.web_url(app)} to v{release.version} ({web} web)")
        return report

    def _wait(self, plans: list[services.Plan], deployment: Deployment, output: Output) -> None:
        """Until every plan converged; the router follows the web tasks meanwhile."""
        hosts = list(deployment.hosts)
        # (a backstop: Swarm's own health check fails a process that does not listen within the
        # boot timeout, and rolls back; this catches what it cannot see. A rolling update starts
        # its processes one after another, each with its own boot time and startup window.)
        each = self.settings.boot_timeout + self.settings.startup_window + 5
        deadline = time.monotonic() + self.settings.boot_timeout + 15 + sum(
            (p.quantity if p.rolled else max(0, p.quantity - p.before)) for p in plans) * each
        pending = list(plans)
        told: set[str] = set()
        latest = time.monotonic() + PULL_TIMEOUT
        last = time.monotonic()
        while pending:
            self._route(deployment.app, hosts)
            pulling = False
            for plan in list(pending):
                state = self.services.progress(plan)
                pulling = pulling or state.pulling
                if state.failed:
                    raise BootFailed(state.process or f"{plan.process_type}.1", state.failed, state.log_tail,
                                     version=deployment.release.version)
                for line in state.news:
                    if line not in told:
                        told.add(line)
                        output.info(line)
                if state.done:
                    pending.remove(plan)
            now = time.monotonic()
            if pulling:  # (the boot timeout counts from when the image is there)
                deadline = min(deadline + (now - last), latest)
            last = now
            if pending and time.monotonic() > deadline:
                late = pending[0]
                raise BootFailed(f"{late.process_type}.1", "was not up and healthy on the swarm in time (is a node "
                                 "short of memory, or the image not pullable?)",
                                 self.services.log_tail(late.service_id), version=deployment.release.version)
            if pending:
                time.sleep(POLL)

    def _undo(self, plans: list[services.Plan]) -> None:
        """A failed deploy: every service goes back to what it ran before it (Swarm's own rollback
        for an updated one; a new one is removed; a scaled one gets its old quantity back)."""
        for plan in plans:
            try:
                self.services.undo(plan)
            except (APIError, NotFound):
                pass  # removed meanwhile: nothing to undo
        deadline = time.monotonic() + self.settings.boot_timeout
        while time.monotonic() < deadline and not all(self.services.settled(p) for p in plans):
            time.sleep(POLL)

    def _route(self, app: str, hosts: list[str]) -> int:
        backends = self.services.web_backends(app)
        self.router.set_app(app, hosts, backends)
        self._routed[app] = backends
        return len(backends)

    @engine_call("reading where the web processes run")
    def sync_router(self, app: str, hosts: list[str]) -> bool:
        """Route ``hosts`` to the web tasks that serve now (after Swarm moved some: a node died);
        whether that changed what this scheduler routed last."""
        before = self._routed.get(app)
        self._route(app, hosts)
        return before is not None and before != self._routed[app]

    # --- one-off processes ------------------------------------------------------------------
    @engine_call("running a one-off process on the swarm")
    def run_once(self, job: OneOff, on_line: Callable[[str], None], timeout: float) -> RunResult:
        """The release phase (or postdeploy): a one-shot service, never restarted, on any node;
        its output streams to ``on_line``; the service is removed whatever happens. The timeout
        counts from when its container starts (a node may first have to pull the image)."""
        service_id = self._start_one_off(job, attach=False)
        timed_out = threading.Event()

        def stop_it() -> None:
            timed_out.set()
            try:
                self.services.remove(service_id)
            except Exception:  # noqa: BLE001 — the manager is away: the wait below ends at its own deadline
                pass
        timer = threading.Timer(timeout, stop_it)
        seen = 0
        streams: list = []
        finished = threading.Event()

        def follow() -> None:
            nonlocal seen
            try:
                stream = self.client.api.service_logs(service_id, stdout=True, stderr=True, follow=True)
                streams.append(stream)
                for line in iter_lines(stream):
                    if finished.is_set():
                        return
                    seen += 1
                    on_line(line)
            except (APIError, NotFound, OSError, ValueError):
                return
        reader = threading.Thread(target=follow, daemon=True)
        try:
            self.services.wait_one_off(service_id, PULL_TIMEOUT, until_started=True)  # (the logs exist from then)
            timer.start()
            reader.start()
            task = self.services.wait_one_off(service_id, timeout + 30)
            if task is not None and task.error:
                raise BootFailed(job.name, f"could not start on the swarm: {task.error}", version=job.release.version)
            # every line the task wrote, even the ones the follower had not got yet
            if reader.is_alive():
                reader.join(timeout=1.0)
            finished.set()
            try:
                lines = list(iter_lines(self.client.api.service_logs(service_id, stdout=True, stderr=True)))
            except (APIError, NotFound):
                lines = []
            for line in lines[seen:]:
                on_line(line)
        finally:
            finished.set()
            timer.cancel()
            for stream in streams:
                try:
                    stream.close()
                except Exception:  # noqa: BLE001 — closing what may be closed already
                    pass
            self.services.remove(service_id)
        if timed_out.is_set():
            return RunResult(exit_status=None, timed_out=True)
        if task is None or task.stopped:
            return RunResult(exit_status=task.exit_code if task else None, stopped=True)
        return RunResult(exit_status=task.exit_code)

    @engine_call("starting a one-off process on the swarm")
    def _start_one_off(self, job: OneOff, attach: bool, env: Mapping[str, str] | None = None) -> str:
        try:
            return self.services.create_one_off(job, self.services.network(job.release.app), detached=not attach,
                                                env=env)
        except APIError as exc:
            raise BootFailed(job.name, f"could not start: {exc.explanation or exc}", version=job.release.version) from exc

    def run(self, job: OneOff, tty: bool, attach: bool, env: Mapping[str, str]) -> RunSession | None:
        if attach:
            raise UsageError("an attached one-off dyno needs the docker-local scheduler; on the swarm, run it "
                             "detached (gitpaas run:detached -a APP -- COMMAND) and read its output with gitpaas logs")
        for ended in [s for s in self.services.one_offs(job.release.app) if s.ended and s.process_type == "run"]:
            self.services.remove(ended.id)  # (finished detached runs go when the next one starts)
        self._start_one_off(job, attach=False, env=env)
        return None

    @engine_call("stopping a process")
    def stop(self, app: str, name: str) -> None:
        for service in self.services.one_offs(app):
            if service.dyno == name:
                self.services.remove(service.id)
                return
        raise ProcessNotFound(app, name)

    @engine_call("listing processes")
    def processes(self, app: str) -> list[Process]:
        return [task.process for task in self.services.tasks(app)]

    @engine_call("removing a release's services")
    def remove_release(self, app: str, version: int) -> None:
        for service in self.services.one_offs(app):
            if service.release_version == version:
                self.services.remove(service.id)

    @engine_call("reconciling services")
    def reconcile(self, app: str) -> list[str]:
        """Swarm keeps the formation running by itself; what is left is one-off services that
        ended while nobody watched (a release command a reboot cut short)."""
        ended = [s for s in self.services.one_offs(app) if s.ended]
        for service in ended:
            self.services.remove(service.id)
        return [f"removed {', '.join(s.dyno for s in ended)} (a one-off process that ended unwatched)"] if ended else []

    # --- logs -------------------------------------------------------------------------------
    @engine_call("reading logs")
    def logs(self, app: str, lines: int | None, follow: bool) -> Iterator[str]:
        """Every service's output as Heroku-format lines (``app[web.2]: …``), wherever its tasks ran."""
        if not follow:
            collected: list[str] = []
            for service in self.services.logged(app):
                collected += self.services.log_lines(service, lines, follow=False)
            collected.sort()
            yield from collected[-lines:] if lines else collected
            return
        yield from self._follow_logs(app, lines)

    def _follow_logs(self, app: str, lines: int | None) -> Iterator[str]:
        merged = Merged()
        followed: dict[str, threading.Thread] = {}

        def pump(service: services.Service, tail: int | str) -> None:
            try:
                for line in self.services.log_lines(service, tail, follow=True, opened=merged.opened):
                    if merged.stopped.is_set():
                        return
                    merged.put(line)
            except (APIError, NotFound, OSError, ValueError):
                return  # the service went away, or the reader stopped: its stream ends

        def watch() -> None:
            """Services that appear after the tail began (a one-off, a new process type) join it."""
            first = True
            while not merged.stopped.is_set():
                try:
                    current = self.services.logged(app)
                except Exception:  # noqa: BLE001 — the manager is away: look again later
                    current = []
                for service in current:
                    if service.id in followed and followed[service.id].is_alive():
                        continue
                    tail: int | str = (10 if lines is None else lines) if first else "all"
                    followed[service.id] = threading.Thread(target=pump, args=(service, tail), daemon=True)
                    followed[service.id].start()
                first = False
                merged.stopped.wait(FOLLOW_POLL)
        threading.Thread(target=watch, daemon=True).start()
        yield from merged.lines()

    # --- the app's and the home's resources -------------------------------------------------
    @engine_call("destroying an app's services")
    def destroy(self, app: str) -> None:
        for service in self.services.all(app):
            self.services.remove(service.id)
        self.services.remove_network(app)

    @engine_call("removing the home's services")
    def purge(self) -> None:
        for service in self.services.all():
            self.services.remove(service.id)
        self.services.remove_networks()

    # --- add-ons: not on the swarm (yet) ----------------------------------------------------
    def start_addon(self, addon: AddonSpec, progress: Callable[[str], None], refresh: bool = False) -> bool:
        raise UsageError(ADDONS_UNSUPPORTED)

    def wait_addon(self, addon: AddonSpec, timeout: float) -> None:
        raise UsageError(ADDONS_UNSUPPORTED)

    def addon_exec(self, addon: AddonSpec, argv: Sequence[str], *, stdin_file: Path | None = None,
                   stdout_file: Path | None = None, env: Mapping[str, str] | None = None) -> tuple[int, str]:
        raise UsageError(ADDONS_UNSUPPORTED)

    def addon_attach(self, addon: AddonSpec, argv: Sequence[str], tty: bool) -> RunSession:
        raise UsageError(ADDONS_UNSUPPORTED)

    def addon_session(self, addon: AddonSpec, argv: Sequence[str], interactive: bool,
                      env_names: Sequence[str] = ()) -> list[str]:
        raise UsageError(ADDONS_UNSUPPORTED)

    def remove_addon(self, addon: AddonSpec, keep_data: bool) -> None:
        raise UsageError(ADDONS_UNSUPPORTED)

    # --- the nodes --------------------------------------------------------------------------
    @engine_call("listing the swarm's nodes")
    def nodes(self) -> list[dict]:
        """The swarm's nodes, each with what of this home runs there."""
        return self.services.nodes_with_tasks()

    @engine_call("reading the swarm's join token")
    def join_command(self, as_manager: bool) -> str:
        tokens = self.client.api.inspect_swarm().get("JoinTokens") or {}
        leader = next((n for n in self.client.api.nodes() if (n.get("ManagerStatus") or {}).get("Leader")), None)
        address = (leader or {}).get("ManagerStatus", {}).get("Addr", "MANAGER:2377")
        return f"docker swarm join --token {tokens['Manager' if as_manager else 'Worker']} {address}"

    def _node(self, name: str) -> dict:
        for node in self.client.api.nodes():
            if name in (node["Description"]["Hostname"], node["ID"]) or (len(name) >= 6 and node["ID"].startswith(name)):
                return node
        raise UsageError(f"no node {name!r} in the swarm (see gitpaas nodes)")

    @engine_call("draining a node")
    def drain_node(self, name: str) -> list[str]:
        node = self._node(name)
        if node["Spec"].get("Role") == "manager":
            raise UsageError(f"{name} is a manager: demote it first (docker node demote {name}), so the swarm "
                             "keeps its quorum")
        moving = self.running_on(name)
        spec = dict(node["Spec"], Availability="drain")
        self.client.api.update_node(node["ID"], node["Version"]["Index"], spec)
        return moving

    @engine_call("reading a node's processes")
    def running_on(self, name: str) -> list[str]:
        """This home's processes still on the node (stopping ones too)."""
        return self.services.on_node(self._node(name)["ID"])

    @engine_call("removing a node")
    def remove_node(self, name: str) -> None:
        self.client.api.remove_node(self._node(name)["ID"], force=True)

