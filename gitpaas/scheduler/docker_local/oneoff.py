"""One-off dynos (``gitpaas run``): a ``run.NNNN`` container of the app's current release, made
like every process (its network, an unprivileged user, its size's limits) but run once.

An attached one is created first and started only once someone is there to see it (its streams
are attached before it starts, so nothing it prints is lost), with a TTY when asked; it is
removed when it ends, or when its session is dropped. A detached one (``run:detached``) runs at
once with its output in the app's logs; it is kept, exited, for a day so ``logs`` can still show
what it printed, then pruned."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator, Mapping

from docker.errors import APIError, NotFound
from docker.models.containers import Container
from docker.utils.socket import frames_iter

from gitpaas.errors import BootFailed
from gitpaas.scheduler import OneOff
from gitpaas.scheduler.docker_local.containers import (
    DETACHED,
    Containers,
    kill,
    remove,
    shell_command,
    unix_time,
)

#: how long an exited detached one-off's output stays readable in ``logs``
KEEP_DETACHED = 24 * 3600


class _Attached:
    """The engine's attached streams of a process (a container's, or an exec's): its output as
    (stream, bytes) frames, its input, the end of its input."""

    name: str
    tty: bool
    _socket = None
    _frames: Iterator | None = None

    def _attached(self, sock) -> None:
        self._socket = sock
        self._frames = frames_iter(sock, self.tty)

    @property
    def _raw(self) -> socket.socket:
        return getattr(self._socket, "_sock", self._socket)

    def read(self) -> tuple[int, bytes] | None:
        """The next output: (1 stdout | 2 stderr, bytes); None once the process closed its output."""
        try:
            return next(self._frames)
        except (StopIteration, OSError, ValueError):
            return None

    def write(self, data: bytes) -> None:
        try:
            self._raw.sendall(data)
        except OSError:
            pass  # the process ended meanwhile: what it was sent no longer matters

    def close_stdin(self) -> None:
        try:
            self._raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _let_go(self) -> None:
        try:
            if self._socket is not None:
                self._socket.close()
        except OSError:
            pass


class DockerRun(_Attached):
    """An attached one-off: start it, exchange bytes with it, learn its exit status."""

    def __init__(self, container: Container, name: str, tty: bool) -> None:
        self.container = container
        self.name = name
        self.tty = tty

    def start(self) -> None:
        try:
            sock = self.container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            self._socket = sock
            self.container.start()
        except APIError as exc:
            self.close()
            raise BootFailed(self.name, f"could not start: {exc.explanation or exc}") from exc
        self._attached(sock)

    def resize(self, rows: int, columns: int) -> None:
        if self.tty:
            try:
                self.container.resize(height=rows, width=columns)
            except APIError:
                pass  # not running (yet, or any more)

    def wait(self) -> int:
        """Its exit status, once it exited (137 when it was killed)."""
        try:
            return int(self.container.wait().get("StatusCode", 1))
        except (APIError, NotFound):
            return 137

    def stop(self) -> None:
        kill(self.container)

    def close(self) -> None:
        """Remove the container (killing it if it still runs) and let the streams go."""
        self._let_go()
        remove(self.container)


def create(containers: Containers, job: OneOff, *, tty: bool, attach: bool, env: Mapping[str, str]) -> DockerRun | None:
    """Create ``job``'s container: attached (returned, not started) or detached (started, None)."""
    prune_detached(containers, job.release.app)
    args = containers.run_args(job.release, job.type, job.number, job.command, role=job.type, size=job.size)
    args["environment"].update(env)
    args["command"] = shell_command(job.command)
    if not attach:
        args["labels"][DETACHED] = "1"
        try:
            containers.client.containers.run(**args)
        except APIError as exc:
            raise BootFailed(job.name, f"could not start: {exc.explanation or exc}",
                             version=job.release.version) from exc
        return None
    del args["detach"]
    args.update(stdin_open=True, tty=tty)
    try:
        container = containers.client.containers.create(**args)
    except APIError as exc:
        raise BootFailed(job.name, f"could not start: {exc.explanation or exc}", version=job.release.version) from exc
    return DockerRun(container, job.name, tty)


def prune_detached(containers: Containers, app: str, now: float | None = None) -> None:
    """Remove the app's detached one-offs that exited more than KEEP_DETACHED ago."""
    moment = time.time() if now is None else now
    for container in containers.find(app, **{DETACHED: "1"}):
        state = container.attrs.get("State", {})
        if state.get("Running"):
            continue
        finished = unix_time(state.get("FinishedAt", ""))
        if finished and moment - finished > KEEP_DETACHED:
            remove(container)



class DockerExec(_Attached):
    """A session in an add-on's container (``pg:psql`` from another machine): ``docker exec`` with
    its streams attached, as a RunSession. It ends when its input ends (or its program exits);
    stopping it closes the connection, which ends its input."""

    def __init__(self, client, container: Container, argv: list[str], env: Mapping[str, str], tty: bool,
                 name: str) -> None:
        self.client = client
        self.container = container
        self.tty = tty
        self.name = name
        self.exec_id = client.api.exec_create(container.id, argv, stdin=True, tty=tty, environment=dict(env))["Id"]

    def start(self) -> None:
        try:
            sock = self.client.api.exec_start(self.exec_id, detach=False, tty=self.tty, socket=True)
        except APIError as exc:
            raise BootFailed(self.name, f"could not start: {exc.explanation or exc}") from exc
        self._attached(sock)

    def resize(self, rows: int, columns: int) -> None:
        if self.tty:
            try:
                self.client.api.exec_resize(self.exec_id, height=rows, width=columns)
            except APIError:
                pass

    def wait(self) -> int:
        for _ in range(100):  # its streams ended: its exit code follows at once
            info = self.client.api.exec_inspect(self.exec_id)
            if not info.get("Running"):
                return int(info.get("ExitCode") or 0)
            time.sleep(0.05)
        return 1

    def stop(self) -> None:
        """End its input; and its process, where gitpaas may signal it (the engine has no verb for
        that: a `psql -c` query left running would otherwise go on)."""
        try:
            info = self.client.api.exec_inspect(self.exec_id)
            if info.get("Running") and info.get("Pid"):
                os.kill(int(info["Pid"]), signal.SIGTERM)
        except (APIError, OSError, ValueError):
            pass  # another user's process, or gone: closing its input is what is left
        self.close()

    def close(self) -> None:
        self._let_go()
