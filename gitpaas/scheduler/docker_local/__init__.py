"""docker-local: every process is one container on this machine's Docker engine, behind nginx.

    containers.py   the containers: names, labels, starting, stopping (the engine's verbs)
    swap.py         converge(): how a deploy, scale, restart or recovery swaps containers
    health.py       is a new container fit to serve: $PORT, app.json checks, startup window
    retire.py       the detached process that stops retired containers (SIGTERM, then SIGKILL)

:class:`DockerLocalScheduler` is the :class:`gitpaas.scheduler.Scheduler` they make up. Every
public method translates Docker's exceptions (``gitpaas.dockerutil``), so what reaches the
callers is always a :class:`~gitpaas.errors.GitpaasError`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from gitpaas import labels, sizes
from gitpaas.dockerutil import engine_call, negotiated_client
from gitpaas.errors import BootFailed, EnvironmentProblem, ProcessNotFound
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
from gitpaas.scheduler.docker_local import oneoff, swap
from gitpaas.scheduler.docker_local.addons import AddonContainers
from gitpaas.scheduler.docker_local.containers import (
    DETACHED,
    HELD,
    SIZE,
    Containers,
    Dyno,
    engine_instance,
    kill,
    remove,
    remove_network,
    unix_time,
)
from gitpaas.scheduler.docker_local.retire import retirers_alive
from gitpaas.settings import Settings


#: how often a followed log (``logs --tail``, a drain) looks for processes that started since
FOLLOW_POLL = 2.0
#: lines a followed log holds for a slow reader before it drops new ones
FOLLOW_BACKLOG = 10_000


class DockerLocalScheduler:
    name = "docker-local"

    def __init__(self, client: docker.DockerClient, settings: Settings, router: Router) -> None:
        self.client = client
        self.settings = settings
        self.router = router
        self.containers = Containers(client, settings)
        self.addons = AddonContainers(client, settings, self.containers)

    # --- add-ons ---------------------------------------------------------------------------
    @engine_call("starting an add-on")
    def start_addon(self, addon: AddonSpec, progress: Callable[[str], None], refresh: bool = False) -> bool:
        return self.addons.start(addon, progress, refresh)

    @engine_call("waiting for an add-on")
    def wait_addon(self, addon: AddonSpec, timeout: float) -> None:
        self.addons.wait(addon, timeout)

    @engine_call("running a command in an add-on")
    def addon_exec(self, addon: AddonSpec, argv: Sequence[str], *, stdin_file: Path | None = None,
                   stdout_file: Path | None = None, env: Mapping[str, str] | None = None) -> tuple[int, str]:
        return self.addons.exec(addon, argv, stdin_file=stdin_file, stdout_file=stdout_file, env=env)

    @engine_call("opening a session in an add-on")
    def addon_attach(self, addon: AddonSpec, argv: Sequence[str], tty: bool) -> RunSession:
        return self.addons.attach(addon, argv, tty)

    def addon_session(self, addon: AddonSpec, argv: Sequence[str], interactive: bool,
                      env_names: Sequence[str] = ()) -> list[str]:
        return self.addons.session(addon, argv, interactive, env_names)

    @engine_call("removing an add-on")
    def remove_addon(self, addon: AddonSpec, keep_data: bool) -> None:
        self.addons.remove(addon, keep_data)

    def hold(self, deployment: Deployment) -> swap.Held | None:
        """Start ``deployment``'s new processes held, in the background, while its release command
        runs: their containers' start (0.2–0.3 s each here) then overlaps the command, and ``deploy``
        only lets their commands run. None when ``GITPAAS_HOLD_PROCESSES=0``."""
        return swap.Held(self.containers, deployment) if self.settings.hold_processes else None

    @engine_call("removing the processes held for a release")
    def discard(self, held: swap.Held | None) -> None:
        if held is not None:
            held.discard()

    def deploy(self, deployment: Deployment, output: Output, held: swap.Held | None = None) -> DeployReport:
        with _engine_watched("while the new processes started"):
            return self._deploy(deployment, output, held)

    @engine_call("deploying")
    def _deploy(self, deployment: Deployment, output: Output, held: swap.Held | None) -> DeployReport:
        return swap.converge(self.containers, self.router, self.settings, deployment, output, held)

    @engine_call("listing processes")
    def processes(self, app: str) -> list[Process]:
        """The app's processes; one the engine killed for memory says so in its ``crash_reason``."""
        dynos = self.containers.dynos(app)
        kills: dict[str, int] = {}
        for container_id, _when in self._memory_kills(app, dynos):
            kills[container_id] = kills.get(container_id, 0) + 1
        for dyno in dynos:
            if dyno.process.id in kills:
                times = kills[dyno.process.id]
                dyno.process.crash_reason = (f"R15 memory quota vastly exceeded: {sizes.memory_kill(dyno.process.size)}"
                                             + (f", {times} times" if times > 1 else ""))
        return [dyno.process for dyno in dynos]

    def _memory_kills(self, app: str, dynos: list[Dyno], *, follow: bool = False,
                      opened: list | None = None) -> Iterator[tuple[str, float]]:
        """(container id, unix time) of each time the engine killed one of the app's processes for
        memory (Docker's ``oom`` events, which it keeps for a while); with ``follow``, as they come."""
        if not dynos and not follow:
            return
        created = [unix_time(d.container.attrs.get("Created", "")) for d in dynos]
        since = int(min(created)) if created and not follow else int(time.time())
        filters = {"type": "container", "event": "oom", "label": [f"{labels.HOME}={self.settings.home_label}",
                                                                  f"{labels.APP}={app}"]}
        # (An `until` in the future would hold the answer back until then; the engine keeps only its
        # recent events, so a kill long ago may no longer be told.)
        options = {} if follow else {"until": int(time.time())}
        events = self.client.events(since=since, filters=filters, decode=True, **options)
        if opened is not None:  # (for its follower to close)
            opened.append(events)
        for event in events:
            yield event.get("id", ""), event.get("timeNano", 0) / 1e9 or float(event.get("time", 0))

    @engine_call("stopping a process")
    def stop(self, app: str, name: str) -> None:
        """Kill a running one-off (``release.4821``): a release command then ends as "stopped"."""
        for dyno in self.containers.dynos(app):
            if dyno.name == name and dyno.process.one_off:
                kill(dyno.container)
                return
        raise ProcessNotFound(app, name)

    @engine_call("removing a release's containers")
    def remove_release(self, app: str, version: int) -> None:
        """Remove every container of one release (a one-off or a half-started formation)."""
        for container in self.containers.find(app, **{labels.RELEASE: str(version)}):
            remove(container)

    def run_once(self, job: OneOff, on_line: Callable[[str], None], timeout: float) -> RunResult:
        """Run ``job`` to completion, streaming its output; the container is removed whatever happens."""
        with _engine_watched(f"while the {job.type} command ran"):
            result = self._run_once(job, on_line, timeout)
        return result

    @engine_call("running a one-off process")
    def _run_once(self, job: OneOff, on_line: Callable[[str], None], timeout: float) -> RunResult:
        args = self.containers.run_args(job.release, job.type, job.number, job.command, role=job.type, size=job.size)
        del args["detach"]
        # One stream, so the output keeps the order in which it was written.
        args["command"] = ["/bin/sh", "-c", "exec 2>&1\n" + job.command]
        # A release command shares the network of a running process of the app, so the engine sets
        # up no network for it (its start: 0.09 s against 0.27 s here); with none, or the process
        # gone by the time it starts, it gets its own on the app's network, as any other. Should
        # the process stop while the command runs, the command has lost its network for good: it
        # is killed, and says so, rather than left to hang on a dead connection.
        neighbour = self.containers.neighbour(job.release.app) if job.type == "release" else None
        watch = _NeighbourWatch(self.client, neighbour) if neighbour is not None else None
        try:
            container, shared = self._started(job, [self.containers.beside(args, neighbour.id), args]
                                              if neighbour is not None else [args])
        except BaseException:
            if watch:
                watch.close()
            raise
        if watch and not shared:
            watch.close()
            watch = None
        timed_out = threading.Event()
        timer = threading.Timer(timeout, lambda: (timed_out.set(), kill(container)))
        try:
            if watch:
                watch.guard(container)
            timer.start()
            for line in iter_lines(container.logs(stream=True, follow=True)):
                on_line(line)
            status = container.wait().get("StatusCode")
            container.reload()
            out_of_memory = bool(container.attrs.get("State", {}).get("OOMKilled"))
            killed = status in (137, 143) and not timed_out.is_set() and not out_of_memory
            lost = watch.lost if watch and not out_of_memory else ""
            return RunResult(exit_status=status, timed_out=timed_out.is_set(), stopped=killed and not lost,
                             out_of_memory=out_of_memory, lost_network=lost)
        finally:
            timer.cancel()
            if watch:
                watch.close()
            remove(container)

    def _started(self, job: OneOff, tries: list[dict]) -> tuple[Container, bool]:
        """A container of ``job`` made and started with the first of ``tries`` the engine takes,
        and whether that was the first (one sharing another process's network, when there are two)."""
        for args in tries:
            container = None
            try:
                container = self.client.containers.create(**args)
                container.start()
                return container, args is tries[0] and len(tries) > 1
            except APIError as exc:
                if container is not None:
                    with contextlib.suppress(APIError):
                        remove(container)
                if args is tries[-1]:
                    raise BootFailed(job.name, f"could not start: {exc.explanation or exc}",
                                     version=job.release.version) from exc
            except BaseException:
                if container is not None:  # (a timeout, Ctrl-C): nothing is left running unwatched
                    with contextlib.suppress(Exception):
                        remove(container)
                raise
        raise AssertionError("no arguments to start a container with")

    @engine_call("starting a one-off dyno")
    def run(self, job: OneOff, tty: bool, attach: bool, env: Mapping[str, str]) -> RunSession | None:
        return oneoff.create(self.containers, job, tty=tty, attach=attach, env=env)

    @engine_call("reading logs")
    def logs(self, app: str, lines: int | None, follow: bool) -> Iterator[str]:
        """The processes' output as Heroku-format lines, with the router's-eye R15 line each time the
        engine killed one of them for memory (``heroku[web.1]: Error R15 …``). Following, it yields
        ``""`` after each second of silence, so its reader can stop it (``close()``): everything it
        started to follow stops then too."""
        containers = _logged(self.containers.find(app))
        by_id = {c.id: c for c in containers}
        if not follow:
            collected: list[str] = []
            for container in containers:
                collected.extend(_format_log(container, raw) for raw in container.logs(
                    timestamps=True, tail=lines if lines else "all").decode("utf-8", "replace").splitlines())
            for container_id, when in self._memory_kills(app, self.containers.dynos(app)):
                if container_id in by_id:
                    collected.append(_memory_kill_line(by_id[container_id], when))
            collected.sort()
            yield from collected[-lines:] if lines else collected
            return
        merged = Merged(FOLLOW_BACKLOG)
        stopped, streams, put = merged.stopped, merged.opened, merged.put

        def watch_memory() -> None:
            try:
                for container_id, when in self._memory_kills(app, [], follow=True, opened=streams):
                    if stopped.is_set():
                        return
                    container = by_id.get(container_id)
                    if container is not None:
                        put(_memory_kill_line(container, when))
            except Exception:  # noqa: BLE001 — the engine went away: the process lines stop too
                return
        threading.Thread(target=watch_memory, daemon=True).start()
        following: dict[str, threading.Thread] = {}
        #: each followed container's last line's timestamp: one the engine restarts is followed again from there
        last_seen: dict[str, str] = {}

        def pump(container: Container, tail: int | str) -> None:
            after = last_seen.get(container.id)
            since = {"since": _unix_time_precise(after)} if after else {}
            try:
                stream = container.logs(timestamps=True, stream=True, follow=True, tail=tail, **since)
                streams.append(stream)
                for raw in iter_lines(stream):
                    if stopped.is_set():
                        return
                    stamp = _sortable(raw.partition(" ")[0])
                    if after and stamp <= after:
                        continue  # (printed before the restart)
                    last_seen[container.id] = stamp
                    put(_format_log(container, raw))
            except (NotFound, APIError, OSError, ValueError):
                pass  # the container went away (retired, removed), or the reader stopped: its stream ends

        def follow_new() -> None:
            """Processes that start after the tail began (a deploy, a restart, a one-off) join it;
            one the engine restarted (its stream ended) is followed again from where it stopped."""
            first = True
            while not stopped.is_set():
                try:
                    found = _logged(self.containers.find(app))
                except Exception:  # noqa: BLE001 — the engine is away (restarting?): look again later
                    stopped.wait(FOLLOW_POLL * 5)
                    continue
                for container in found:
                    by_id[container.id] = container
                    current = following.get(container.id)
                    if current is not None and current.is_alive():
                        continue
                    if current is not None and container.status != "running":
                        continue  # ended: nothing more to read until it runs again
                    tail: int | str = (10 if lines is None else lines) if first else "all"
                    thread = threading.Thread(target=pump, args=(container, tail), daemon=True)
                    following[container.id] = thread
                    thread.start()
                first = False
                stopped.wait(FOLLOW_POLL)
        threading.Thread(target=follow_new, daemon=True).start()
        yield from merged.lines()

    @engine_call("destroying an app")
    def destroy(self, app: str) -> None:
        """Remove the app's containers and its network. A network the engine still counts endpoints
        on once its containers are gone (it lost count: moby/moby#42119, which only the engine's
        restart clears) does not keep the app from being destroyed: it is left, labelled with the
        home and the app, and an app of that name made later uses it."""
        for container in self.containers.find(app):
            remove(container)
        try:
            self.containers.remove_network(app)
        except APIError as exc:
            if "active endpoints" not in str(exc) or self.containers.find(app):
                raise

    @engine_call("reconciling processes")
    def reconcile(self, app: str) -> list[str]:
        """After a reboot or an engine restart: processes being retired whose retirer is gone (the
        engine may even have restarted them) are handed to a new one, or removed when dead; one-off
        processes that ended while nobody watched (a release command the restart cut short) are
        removed. Returns what it did, one line each; nothing when nothing needed it."""
        done = []
        owned = retirers_alive(self.settings.home)  # (before the listing: a retirer that ends meanwhile is not missed)
        dynos, held = self.containers.dynos_and_held(app)
        retiring = [d for d in dynos if d.process.retiring and d.process.id not in owned]
        dead = [d for d in retiring if d.dead]
        if dead:
            self.containers.stop(dead, grace=0)
            done.append(f"removed {', '.join(d.name for d in dead)} (stopped while being retired)")
        live = [d for d in retiring if not d.dead]
        handed = swap.retire_in_background(self.containers, self.settings, live) if live else []
        if handed:
            done.append(f"retiring {', '.join(d.name for d in handed)} again (their retirement was interrupted)")
        if held:
            self.containers.stop(held, grace=0)
            done.append(f"removed {', '.join(d.name for d in held)} of "
                        f"{', '.join(sorted({f'v{d.process.release_version}' for d in held}))} "
                        "(held for a release phase that did not finish)")
        ended = [d for d in dynos if d.process.one_off and d.dead]
        if ended:
            self.containers.stop(ended, grace=0)
            done.append(f"removed {', '.join(d.name for d in ended)} (a one-off process that ended unwatched)")
        return done

    @engine_call("removing the home's containers")
    def purge(self) -> None:
        """Remove every container, network and volume (the add-ons' data) of this home."""
        for container in self.containers.find():
            remove(container)
        home = labels.filters(labels.for_home(self.settings))
        refused: list[APIError] = []  # (one network the engine will not remove does not keep the rest)
        for network in self.client.networks.list(filters=home):
            try:
                remove_network(network)
            except APIError as exc:
                refused.append(exc)
        for volume in self.client.volumes.list(filters=home):
            try:
                volume.remove()
            except NotFound:
                pass  # removed meanwhile
        if refused:
            raise refused[0]


class _NeighbourWatch:
    """Follows the engine's ``die`` events of the process whose network a release command shares
    (from before the command starts): when it dies (stopped, crashed, about to be restarted), its
    network goes with it, and the command, which cannot get it back, is killed."""

    def __init__(self, client: docker.DockerClient, neighbour: Container) -> None:
        self.name = neighbour.labels.get(labels.DYNO) or neighbour.name
        #: a die before this (the engine replays its events from the start of the second) was not of
        #: the process that runs now: one started again by hand keeps a RestartCount of 0
        self.started_ns = _nanoseconds((neighbour.attrs.get("State") or {}).get("StartedAt", ""))
        self.lost = ""
        self._died = False
        self._container: Container | None = None
        self._lock = threading.Lock()
        self._events = client.events(since=int(time.time()), decode=True,
                                     filters={"container": neighbour.id, "event": "die"})
        threading.Thread(target=self._follow, name="release-neighbour", daemon=True).start()

    def _follow(self) -> None:
        try:
            for event in self._events:
                if event.get("status", event.get("Action")) != "die" or event.get("timeNano", 0) < self.started_ns:
                    continue
                with self._lock:
                    self._died = True
                    if self._container is not None:
                        self._cut(self._container)
                return
        except Exception:  # noqa: BLE001 — closed when the command ended: nothing more to watch
            return

    def guard(self, container: Container) -> None:
        """Kill ``container`` when the neighbour dies (now, if it died already)."""
        with self._lock:
            self._container = container
            if self._died:
                self._cut(container)

    def _cut(self, container: Container) -> None:
        """Kill the command; it lost its network only if it was still running (one that had
        ended, with whatever status, ended for its own reasons)."""
        try:
            container.kill()
        except APIError:
            return  # exited already (409), or gone
        self.lost = self.name

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._events.close()


def _nanoseconds(stamp: str) -> int:
    """Docker's ``2026-12-01T20:00:00.123456789Z`` as unix nanoseconds (0 when it cannot be read)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = unix_time(whole)
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9]) if seconds and fraction.isdigit() else 0


class _engine_watched:
    """Name an engine restart as the cause of a failure: if the block fails and dockerd is another
    instance than at its start (it stopped or restarted meanwhile), the failure becomes
    EnvironmentProblem("the Docker engine stopped or restarted WHILE …"). When the same dockerd
    still runs but no longer answers, it is given time to finish exiting (a shutting-down engine
    closes its socket first, then gives its containers up to 15 s to stop); one that answers was
    not restarting, and the failure is left as it is."""

    SETTLE = 30.0

    def __init__(self, during: str) -> None:
        self.during = during
        self.before = engine_instance()

    def __enter__(self) -> "_engine_watched":
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        if kind is None or not issubclass(kind, Exception) or not self.before or self.before == (0, 0):
            return  # it worked; Ctrl-C and the like; or nobody can tell: nothing to name
        deadline = time.monotonic() + self.SETTLE
        while engine_instance() == self.before:
            if _answers() or time.monotonic() > deadline:
                return
            time.sleep(0.2)
        raise EnvironmentProblem(f"the Docker engine stopped or restarted {self.during}") from exc


def _answers() -> bool:
    """Does the engine answer a new connection? (A pooled one may still reach an exiting engine.)"""
    try:
        negotiated_client(timeout=2).close()  # (it pings the engine)
        return True
    except Exception:  # noqa: BLE001 — any failure to answer is the answer
        return False


def _sortable(stamp: str) -> str:
    """Docker's ``2026-12-01T20:00:00.1234Z`` with its fraction at nine digits, so stamps compare as text."""
    head, _, fraction = stamp.rstrip("Z").partition(".")
    return f"{head}.{fraction.ljust(9, '0')[:9]}Z"


def _unix_time_precise(stamp: str) -> float:
    """A sortable stamp (``_sortable``) as a unix time with its fraction (what ``since`` takes)."""
    whole = unix_time(stamp)
    fraction = stamp.rstrip("Z").partition(".")[2]
    return whole + (int(fraction) / 10 ** len(fraction) if fraction.isdigit() else 0.0)


def _memory_kill_line(container: Container, when: float) -> str:
    """Heroku's R15 line for a process the engine killed at its memory limit."""
    stamp = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (f"{stamp}+00:00 heroku[{container.labels.get(labels.DYNO, '?')}]: Error R15 (Memory quota vastly "
            f"exceeded): {sizes.memory_kill(container.labels.get(SIZE))}; the engine restarts it")


def _logged(containers: list[Container]) -> list[Container]:
    """The containers whose output is the app's logs: its processes and its detached one-offs (an
    attached one's output is its user's terminal's alone, as on Heroku)."""
    return [c for c in containers if (c.labels.get(labels.ROLE) == "process" and not c.name.endswith(HELD))
            or (c.labels.get(labels.ROLE) == "run" and c.labels.get(DETACHED))]


def _format_log(container: Container, raw: str) -> str:
    """Heroku's log line: ``2024-05-01T12:00:00.000000+00:00 app[web.1]: message``."""
    stamp, _, text = raw.partition(" ")
    return f"{stamp[:26].ljust(26, '0')}+00:00 app[{container.labels.get(labels.DYNO, '?')}]: {text}"
