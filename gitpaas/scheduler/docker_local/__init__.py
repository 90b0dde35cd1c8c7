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

import queue
import threading
from collections.abc import Callable, Iterator

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from gitpaas import labels
from gitpaas.dockerutil import engine_call
from gitpaas.errors import BootFailed, ProcessNotFound
from gitpaas.lines import iter_lines
from gitpaas.output import Output
from gitpaas.scheduler import DeployReport, Deployment, OneOff, Process, Router, RunResult
from gitpaas.scheduler.docker_local import swap
from gitpaas.scheduler.docker_local.containers import Containers, kill, remove
from gitpaas.settings import Settings


class DockerLocalScheduler:
    name = "docker-local"

    def __init__(self, client: docker.DockerClient, settings: Settings, router: Router) -> None:
        self.client = client
        self.settings = settings
        self.router = router
        self.containers = Containers(client, settings)

    @engine_call("deploying")
    def deploy(self, deployment: Deployment, output: Output) -> DeployReport:
        return swap.converge(self.containers, self.router, self.settings, deployment, output)

    @engine_call("listing processes")
    def processes(self, app: str) -> list[Process]:
        return [dyno.process for dyno in self.containers.dynos(app)]

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

    @engine_call("running a one-off process")
    def run_once(self, job: OneOff, on_line: Callable[[str], None], timeout: float) -> RunResult:
        """Run ``job`` to completion, streaming its output; the container is removed whatever happens."""
        args = self.containers.run_args(job.release, job.type, job.number, job.command, role=job.type)
        del args["detach"]
        # One stream, so the output keeps the order in which it was written.
        args["command"] = ["/bin/sh", "-c", "exec 2>&1\n" + job.command]
        try:
            container = self.client.containers.create(**args)
        except APIError as exc:
            raise BootFailed(job.name, f"could not start: {exc.explanation or exc}", version=job.release.version) from exc
        timed_out = threading.Event()
        timer = threading.Timer(timeout, lambda: (timed_out.set(), kill(container)))
        try:
            try:
                container.start()
            except APIError as exc:
                raise BootFailed(job.name, f"could not start: {exc.explanation or exc}",
                                 version=job.release.version) from exc
            timer.start()
            for line in iter_lines(container.logs(stream=True, follow=True)):
                on_line(line)
            status = container.wait().get("StatusCode")
            killed = status in (137, 143) and not timed_out.is_set()
            return RunResult(exit_status=status, timed_out=timed_out.is_set(), stopped=killed)
        finally:
            timer.cancel()
            remove(container)

    @engine_call("reading logs")
    def logs(self, app: str, lines: int | None, follow: bool) -> Iterator[str]:
        containers = self.containers.find(app, **{labels.ROLE: "process"})
        if not follow:
            collected: list[str] = []
            for container in containers:
                collected.extend(_format_log(container, raw) for raw in container.logs(
                    timestamps=True, tail=lines if lines else "all").decode("utf-8", "replace").splitlines())
            collected.sort()
            yield from collected[-lines:] if lines else collected
            return
        lines_queue: queue.Queue[str] = queue.Queue()

        def pump(container: Container) -> None:
            try:
                for raw in iter_lines(container.logs(timestamps=True, stream=True, follow=True, tail=lines or 10)):
                    lines_queue.put(_format_log(container, raw))
            except (NotFound, APIError):
                pass  # the container went away (retired, restarted): its stream simply ends
        for container in containers:
            threading.Thread(target=pump, args=(container,), daemon=True).start()
        while True:
            yield lines_queue.get()

    @engine_call("destroying an app")
    def destroy(self, app: str) -> None:
        """Remove the app's containers; the home's network too once no app uses it."""
        for container in self.containers.find(app):
            remove(container)
        if not self.containers.find():
            for network in self.client.networks.list(filters=labels.filters(labels.for_home(self.settings))):
                try:
                    network.remove()
                except (NotFound, APIError):
                    pass  # removed meanwhile, or a container of another app joined it: it stays

    @engine_call("removing the home's containers")
    def purge(self) -> None:
        """Remove every container and network of this home."""
        for container in self.containers.find():
            remove(container)
        for network in self.client.networks.list(filters=labels.filters(labels.for_home(self.settings))):
            try:
                network.remove()
            except NotFound:
                pass  # removed meanwhile


def _format_log(container: Container, raw: str) -> str:
    """Heroku's log line: ``2024-05-01T12:00:00.000000+00:00 app[web.1]: message``."""
    stamp, _, text = raw.partition(" ")
    return f"{stamp[:26].ljust(26, '0')}+00:00 app[{container.labels.get(labels.DYNO, '?')}]: {text}"
