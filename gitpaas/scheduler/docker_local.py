"""docker-local: every process is one container on this machine's Docker engine.

Web containers publish ``$PORT`` on a free loopback port, which the router proxies to; every
container runs with ``--init`` (so signals reach the app), restart policy ``unless-stopped``, on
the home's own bridge network, labelled with the home, app, release and process type.
"""

from __future__ import annotations

import queue
import re
import shlex
import subprocess
import sys
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container
from filelock import FileLock

from gitpaas import labels
from gitpaas.errors import BootFailed, EnvironmentProblem
from gitpaas.scheduler import ONE_OFF_TYPES, WEB_PORT, Process, ProcessSpec, RunResult
from gitpaas.settings import Settings

_STATES = {"created": "starting", "running": "up", "restarting": "crashed", "exited": "crashed", "dead": "crashed",
           "paused": "down", "removing": "down"}
LOG_TAIL = 20
#: suffix of the name of a container being retired (SIGTERM, then SIGKILL) in the background
RETIRING = "-retiring"


_COMPOUND = re.compile(r"[;&|()`\n]|\$\(")
_KEYWORDS = {"if", "for", "while", "until", "case", "{", "!", "[[", "function", "exec", "time"}


def shell_command(command: str) -> list[str]:
    """``/bin/sh -c COMMAND``, with a simple command exec'd (as bash does) so that the app itself,
    not a shell, is the init's child: it gets SIGTERM first hand and its exit status is the process's."""
    words = command.split(maxsplit=1)
    simple = words and not _COMPOUND.search(command) and "=" not in words[0] and words[0] not in _KEYWORDS
    return ["/bin/sh", "-c", f"exec {command}" if simple else command]


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_in_container(pid: int, port: int) -> bool | None:
    """Does the container whose init is ``pid`` have a socket listening on ``port``? Read from its
    own network namespace (/proc/PID/net/tcp and tcp6): exact, and no traffic at all. None when
    that cannot be read (not root, or the engine is on another machine)."""
    if not pid:
        return None
    wanted = f":{port:04X}"
    try:
        for table in ("tcp", "tcp6"):
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    if fields[1].endswith(wanted) and fields[3] == "0A":  # local address, state LISTEN
                        return True
    except (OSError, StopIteration):
        return None
    return False


def accepts_connections(address: tuple[str, int], wait: float = 0.3) -> bool:
    """True when something listens behind ``address``.

    Docker's userland proxy accepts every connection on a published port and closes it at once
    when nothing listens in the container, so a bare connect proves nothing: a live server keeps
    the connection open (waiting for a request) or speaks first; a dead one gets it closed.
    """
    try:
        with socket.create_connection(address, timeout=1.0) as sock:
            sock.settimeout(wait)
            try:
                return sock.recv(1) != b""
            except socket.timeout:
                return True
    except OSError:
        return False


class DockerLocalScheduler:
    name = "docker-local"

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._network_ready = False

    # --- containers ----------------------------------------------------------------------
    def _network(self) -> str:
        """The home's bridge network, created once (under a lock: Docker allows duplicate names)."""
        name = self.settings.network_name
        if self._network_ready:
            return name
        locks = self.settings.home / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(str(locks / "network.lock")):
            if not self.client.networks.list(names=[name]):
                try:
                    self.client.networks.create(name, driver="bridge", check_duplicate=True,
                                                labels=labels.for_home(self.settings))
                except APIError as exc:
                    if exc.status_code != 409:
                        raise EnvironmentProblem(f"cannot create network {name}: {exc.explanation}") from exc
        self._network_ready = True
        return name

    def _containers(self, app: str | None = None, **extra: str) -> list[Container]:
        """Containers with these labels; one removed while being listed is simply not listed."""
        wanted = labels.for_home(self.settings) if app is None else labels.for_app(self.settings, app)
        wanted.update(extra)
        found = []
        for summary in self.client.api.containers(all=True, filters=labels.filters(wanted)):
            try:
                found.append(self.client.containers.get(summary["Id"]))
            except NotFound:
                pass
        return found

    def _process(self, container: Container) -> Process:
        tags = container.labels
        state = container.attrs.get("State", {})
        address = None
        ports = (container.attrs.get("HostConfig", {}).get("PortBindings") or {}).get(f"{WEB_PORT}/tcp")
        if ports:
            address = (ports[0].get("HostIp") or "127.0.0.1", int(ports[0]["HostPort"]))
        status = "crashed" if state.get("Restarting") else _STATES.get(container.status, container.status)
        if container.name.endswith(RETIRING):
            status = "stopping"
        return Process(
            id=container.id, app=tags[labels.APP], type=tags[labels.PROCESS_TYPE],
            index=int(tags[labels.DYNO].rsplit(".", 1)[1]), release_version=int(tags[labels.RELEASE]),
            release_id=tags.get("gitpaas.release-id", ""),
            command=tags.get("gitpaas.command") or shlex.join(container.attrs.get("Config", {}).get("Cmd") or []),
            state=status, created_at=container.attrs.get("Created", "")[:19] + "Z", address=address,
            restarts=int(container.attrs.get("RestartCount", 0)),
        )

    def _run_args(self, spec: ProcessSpec, role: str) -> dict:
        dyno = f"{spec.type}.{spec.index}"
        env = dict(spec.env)
        env["DYNO"] = dyno
        # docker stop signals PID 1, the init (tini); this makes it signal the whole process group,
        # so `sh -c "a && b"` commands get SIGTERM too, as every process of a Heroku dyno does.
        env.setdefault("TINI_KILL_PROCESS_GROUP", "1")
        return dict(
            image=spec.image,
            command=shell_command(spec.command) if spec.command else None,
            name=f"gp-{self.settings.home_id}-{spec.app}.{dyno}.v{spec.release_version}-{secrets.token_hex(2)}",
            hostname=f"{spec.app}-{spec.type}-{spec.index}"[:63],
            environment=env,
            labels=labels.for_app(
                self.settings, spec.app, **{
                    labels.RELEASE: spec.release_version, "gitpaas.release-id": spec.release_id,
                    labels.PROCESS_TYPE: spec.type, labels.DYNO: dyno, labels.ROLE: role,
                    "gitpaas.command": spec.command or "",
                }),
            network=self._network(),
            init=True,
            detach=True,
        )

    def start(self, specs: list[ProcessSpec]) -> list[Process]:
        started: list[Process] = []
        try:
            for spec in specs:
                started.append(self._start_one(spec))
        except BaseException:
            self.stop(started, grace=0)
            raise
        return started

    def _start_one(self, spec: ProcessSpec) -> Process:
        args = self._run_args(spec, role="process")
        args["restart_policy"] = {"Name": "unless-stopped"}
        last_error: APIError | None = None
        for _attempt in range(5):
            if spec.type == "web":
                args["environment"]["PORT"] = str(WEB_PORT)
                args["ports"] = {f"{WEB_PORT}/tcp": ("127.0.0.1", free_loopback_port())}
            try:
                container = self.client.containers.run(**args)
            except APIError as exc:
                last_error = exc
                leftover = self.client.containers.list(all=True, filters={"name": args["name"]})
                for item in leftover:
                    item.remove(force=True)
                if "port is already allocated" in str(exc) or "address already in use" in str(exc):
                    continue
                raise BootFailed(f"{spec.type}.{spec.index}", f"could not start: {exc.explanation or exc}") from exc
            container.reload()
            return self._process(container)
        raise BootFailed(f"{spec.type}.{spec.index}", f"could not get a free port: {last_error}")

    def wait_until_serving(self, processes: list[Process], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in processes:
            if process.address is None:
                continue
            pid = self.client.containers.get(process.id).attrs.get("State", {}).get("Pid", 0)
            while not self._serving(process, pid):
                container = self.client.containers.get(process.id)
                if container.status != "running" or container.attrs["State"].get("Restarting"):
                    raise BootFailed(process.name, f"exited before accepting connections on PORT {WEB_PORT}",
                                     self._tail(container))
                if time.monotonic() > deadline:
                    raise BootFailed(process.name, f"did not accept connections on PORT {WEB_PORT} "
                                     f"within {timeout:g} s", self._tail(container))
                time.sleep(0.05)

    @staticmethod
    def _serving(process: Process, pid: int) -> bool:
        listening = listening_in_container(pid, WEB_PORT)
        if listening is None:  # cannot see into the container: ask the published port instead
            return accepts_connections(process.address)
        return listening

    def _tail(self, container: Container) -> str:
        try:
            return container.logs(tail=LOG_TAIL).decode("utf-8", "replace")
        except APIError:
            return ""

    def processes(self, app: str) -> list[Process]:
        """The formation's processes and any running one-off (``release.1234``)."""
        roles = ("process", *ONE_OFF_TYPES)
        found = [self._process(c) for c in self._containers(app) if c.labels.get(labels.ROLE) in roles]
        return sorted(found, key=lambda p: (p.one_off, p.type != "web", p.type, p.index, p.release_version))

    def kill(self, process: Process) -> None:
        try:
            self.client.containers.get(process.id).kill()
        except (NotFound, APIError):
            pass

    def restart(self, process: Process, grace: float) -> None:
        self.client.containers.get(process.id).restart(timeout=int(grace))

    def remove_release(self, app: str, version: int) -> None:
        """Remove every container of one release (a one-off or a half-started formation)."""
        for container in self._containers(app, **{labels.RELEASE: str(version)}):
            _remove(container)

    def stop(self, processes: list[Process], grace: float) -> None:
        """SIGTERM each (through the init), SIGKILL after ``grace`` seconds; remove. In parallel."""
        def stop_one(process: Process) -> None:
            try:
                container = self.client.containers.get(process.id)
                container.stop(timeout=int(grace))
                container.remove(force=True)
            except NotFound:
                pass
        if processes:
            with ThreadPoolExecutor(max_workers=min(8, len(processes))) as pool:
                list(pool.map(stop_one, processes))

    def retire(self, processes: list[Process], grace: float, drain: float) -> None:
        """Stop ``processes`` in a detached process (see gitpaas.scheduler.retire) and return at once."""
        if not processes:
            return
        for process in processes:  # `ps` shows them as stopping from now on
            try:
                container = self.client.containers.get(process.id)
                if not container.name.endswith(RETIRING):
                    container.rename(container.name + RETIRING)
            except (NotFound, APIError):
                pass
        log = self.settings.home / "logs" / "retire.log"
        subprocess.Popen(
            [sys.executable, "-m", "gitpaas.scheduler.retire", "--log", str(log), "--grace", str(grace),
             "--drain", str(drain), *[p.id for p in processes]],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def tail(self, process: Process) -> str:
        try:
            return self._tail(self.client.containers.get(process.id))
        except NotFound:
            return ""

    def run_once(self, spec: ProcessSpec, on_line: Callable[[str], None], timeout: float) -> RunResult:
        """Run ``spec`` to completion, streaming its output; the container is removed whatever happens."""
        args = self._run_args(spec, role=spec.type)
        del args["detach"]
        if spec.command:
            # One stream, so the output keeps the order in which it was written.
            args["command"] = ["/bin/sh", "-c", "exec 2>&1\n" + spec.command]
        try:
            container = self.client.containers.create(**args)
        except APIError as exc:
            raise BootFailed(f"{spec.type}.{spec.index}", f"could not start: {exc.explanation or exc}") from exc
        timed_out = threading.Event()
        timer = threading.Timer(timeout, lambda: (timed_out.set(), _kill(container)))
        try:
            try:
                container.start()
            except APIError as exc:
                raise BootFailed(f"{spec.type}.{spec.index}", f"could not start: {exc.explanation or exc}") from exc
            timer.start()
            pending = b""
            for chunk in container.logs(stream=True, follow=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    on_line(line.decode("utf-8", "replace"))
            if pending:
                on_line(pending.decode("utf-8", "replace"))
            status = container.wait().get("StatusCode")
            container.reload()
            killed = status in (137, 143) and not timed_out.is_set()
            return RunResult(exit_status=status, timed_out=timed_out.is_set(), stopped=killed)
        finally:
            timer.cancel()
            try:
                container.remove(force=True)
            except NotFound:
                pass

    def logs(self, app: str, lines: int | None, follow: bool) -> Iterator[str]:
        containers = self._containers(app, **{labels.ROLE: "process"})
        if not follow:
            collected: list[str] = []
            for container in containers:
                collected.extend(self._format_log(container, raw) for raw in container.logs(
                    timestamps=True, tail=lines if lines else "all").decode("utf-8", "replace").splitlines())
            collected.sort()
            yield from collected[-lines:] if lines else collected
            return
        lines_queue: queue.Queue[str] = queue.Queue()

        def pump(container: Container) -> None:
            pending = b""
            for chunk in container.logs(timestamps=True, stream=True, follow=True, tail=lines or 10):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    lines_queue.put(self._format_log(container, raw.decode("utf-8", "replace")))
        for container in containers:
            threading.Thread(target=pump, args=(container,), daemon=True).start()
        while True:
            yield lines_queue.get()

    @staticmethod
    def _format_log(container: Container, raw: str) -> str:
        """Heroku's log line: ``2024-05-01T12:00:00.000000+00:00 app[web.1]: message``."""
        stamp, _, text = raw.partition(" ")
        return f"{stamp[:26].ljust(26, '0')}+00:00 app[{container.labels.get(labels.DYNO, '?')}]: {text}"

    def destroy_app(self, app: str) -> None:
        """Remove the app's containers and images; the home's network too once no app uses it."""
        for container in self._containers(app):
            _remove(container)
        for image in self.client.images.list(filters=labels.filters(labels.for_app(self.settings, app))):
            try:
                self.client.images.remove(image.id, force=True)
            except NotFound:
                pass
        if not self._containers():
            for network in self.client.networks.list(filters=labels.filters(labels.for_home(self.settings))):
                try:
                    network.remove()
                except (NotFound, APIError):
                    pass


def _remove(container: Container) -> None:
    """Remove a container, which the background retirer may have removed already."""
    try:
        container.remove(force=True)
    except NotFound:
        pass


def _kill(container: Container) -> None:
    try:
        container.kill()
    except APIError:
        pass
