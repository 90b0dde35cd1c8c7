"""docker-local's health checks: are a deploy's new containers fit to take over?

In order, for the new containers of one deploy (see ``gitpaas.healthchecks`` for what an app
declares):

1. every web process accepts connections on ``$PORT`` within the boot timeout — read from the
   container's own network namespace (``/proc/PID/net/tcp``: exact, no traffic; asked only when
   its socket counters moved, see :class:`Listening`), or, when that cannot be seen, by
   connecting to it; one seen listening at an address of its own is then connected to once from
   this host, where the router is (``unreachable``);
2. every app.json startup check of its type answers 2xx (with ``content``) on that port;
3. every new process is still up, never restarted, at the end of the startup window (which only
   non-web processes wait out: a web one has proven itself by serving).

Any failure raises :class:`BootFailed` naming the process, the reason and its output's tail.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import time
from collections.abc import Mapping

from gitpaas.errors import BootFailed
from gitpaas.healthchecks import Check
from gitpaas.scheduler.docker_local.containers import WEB_PORT, Containers, Dyno

#: how often a new web process's socket counters are read (a file read in /proc: cheap) …
POLL = 0.005
#: … its socket tables at the latest (a file read in /proc that walks the host's connection hash: dear) …
TABLES_POLL = 0.05
#: … or, where they cannot be read, its published port is tried (a connection through the engine's proxy) …
PORT_POLL = 0.02
#: … and how often the engine is asked whether it still runs (a request: dearer)
STATE_POLL = 0.1


#: a namespace's TCP socket tables, and the line of its counters (``sockstat``) that counts each one's sockets
TABLES = {"tcp": ("sockstat", "TCP:"), "tcp6": ("sockstat6", "TCP6:")}


def listening_in_container(pid: int, port: int, tables: tuple[str, ...] = tuple(TABLES)) -> bool | None:
    """Does the container whose init is ``pid`` have a socket listening on ``port``? Read from its
    own network namespace (/proc/PID/net/tcp and tcp6, or only those of ``tables``): exact, and no
    traffic at all. None when that cannot be read (not root, or the engine is on another machine)."""
    if not pid:
        return None
    wanted = f":{port:04X}"
    try:
        for table in tables:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    if fields[1].endswith(wanted) and fields[3] == "0A":  # local address, state LISTEN
                        return True
    except (OSError, StopIteration):
        return None
    return False


def tcp_sockets_in_use(pid: int) -> dict[str, int] | None:
    """How many sockets each of the network namespace of ``pid``'s TCP tables holds (listening or
    connected; not those in TIME_WAIT), from its counters (/proc/PID/net/sockstat and sockstat6:
    a few lines, the same cost however busy the host). None when they cannot be read."""
    if not pid:
        return None
    counts: dict[str, int] = {}
    try:
        for table, (counters, prefix) in TABLES.items():
            with open(f"/proc/{pid}/net/{counters}", encoding="ascii") as handle:
                fields = next(line for line in handle if line.startswith(prefix)).split()
            counts[table] = int(fields[fields.index("inuse") + 1])
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return counts


class Listening:
    """Whether the container whose init is ``pid`` listens on ``port``, asked every few
    milliseconds without costing a core. :func:`listening_in_container` reads the namespace's
    socket tables, and the kernel makes each read of one walk the whole host's TCP connection
    hash, whatever the namespace holds: 4–5 ms of CPU per table here (262,144 buckets on a
    machine with 23 GiB), so a poll every 5 ms spent more time reading than sleeping. The
    namespace's counters (:func:`tcp_sockets_in_use`) cost 0.03 ms: a table is read only when
    it holds a socket (on an app's own network it always does: Docker's DNS listens on
    127.0.0.11 in every container), and only when the counters moved since the last reading (a
    listening socket adds one) or ``TABLES_POLL`` has passed (a socket that closed as the listener opened
    leaves them as they were). None, as from ``listening_in_container``, when it cannot be seen."""

    def __init__(self, pid: int, port: int) -> None:
        self.pid = pid
        self.port = port
        self._counted: dict[str, int] | None = None
        self._read_at = float("-inf")

    def __call__(self) -> bool | None:
        counts = tcp_sockets_in_use(self.pid)
        if counts is None:  # (gone, or not readable: the tables say which)
            return listening_in_container(self.pid, self.port)
        tables = tuple(table for table, count in counts.items() if count)
        if not tables:
            return False  # (no socket at all: nothing listens)
        now = time.monotonic()
        if counts == self._counted and now - self._read_at < TABLES_POLL:
            return False
        self._counted, self._read_at = counts, now
        return listening_in_container(self.pid, self.port, tables)


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


def unreachable(address: tuple[str, int], timeout: float = 2.0) -> str | None:
    """None when this host connects to a process seen listening on ``$PORT`` at its own address
    (``address``, where the router proxies to); else why not, in a line: a process that listens
    only inside its container (``127.0.0.1``), or an engine whose container addresses the host
    cannot reach (a rootless one, a firewall), which a published port gets round."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return None
    except ConnectionRefusedError:
        return (f"listens on PORT {WEB_PORT} inside its container, but refused this server's connection at "
                f"{address[0]}: it listens only on 127.0.0.1 or localhost there (bind 0.0.0.0), or a firewall "
                "refuses it")
    except OSError as exc:
        return (f"listens on PORT {WEB_PORT}, but this server cannot reach it at {address[0]} "
                f"({exc.strerror or exc}); where the engine's container addresses are out of the host's "
                "reach (a rootless engine), set GITPAAS_PUBLISH_PORTS=1")


def http_check(address: tuple[str, int], host: str, check: Check) -> str | None:
    """One attempt: None when it passes, else what went wrong."""
    connection = http.client.HTTPConnection(*address, timeout=check.timeout)
    try:
        connection.request("GET", check.path, headers={"Host": host, "User-Agent": "gitpaas-healthcheck"})
        response = connection.getresponse()
        body = response.read(1 << 20).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {check.path} failed: {exc.__class__.__name__}: {exc}"
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        return f"GET {check.path} answered {response.status}"
    if check.content is not None and check.content not in body:
        return f"GET {check.path} answered {response.status} without {check.content!r}"
    return None


class HealthCheck:
    """Checks one deploy's new containers; ``version`` names the release in what it raises."""

    def __init__(self, containers: Containers, version: int, *, host: str, boot_timeout: float,
                 startup_window: float) -> None:
        self.containers = containers
        self.version = version
        self.host = host
        self.boot_timeout = boot_timeout
        self.startup_window = startup_window

    def run(self, dynos: list[Dyno], checks: Mapping[str, list[dict]]) -> list[str]:
        """Raise BootFailed unless every new process comes up healthy; return what was checked."""
        started = time.monotonic()
        self.wait_until_serving(dynos)
        passed = [f"{d.name} accepts connections on $PORT" for d in dynos if d.address]
        for dyno in dynos:
            if dyno.address is None:
                continue
            for raw in checks.get(dyno.process.type, []):
                passed.append(self.pass_check(dyno, Check(**raw)))
        self.wait_out_startup_window(dynos, started)
        windowed = [d.name for d in dynos if d.address is None]
        if windowed:
            passed.append(f"{', '.join(windowed)} stayed up for the {self.startup_window:g} s startup window")
        return passed

    def _failed(self, dyno: Dyno, reason: str, tail: str = "") -> BootFailed:
        return BootFailed(dyno.name, reason, tail, version=self.version)

    def wait_until_serving(self, dynos: list[Dyno]) -> None:
        deadline = time.monotonic() + self.boot_timeout
        for dyno in dynos:
            if dyno.address is None:
                continue
            listening_now = Listening(dyno.container.attrs.get("State", {}).get("Pid", 0), WEB_PORT)
            asked = time.monotonic()
            readable = None
            while True:
                listening = listening_now()
                if listening or (listening is None and accepts_connections(dyno.address)):
                    break
                now = time.monotonic()
                # (ask the engine every STATE_POLL, at once when the process's /proc went away, and last)
                if now - asked >= STATE_POLL or (readable and listening is None) or now > deadline:
                    asked = now
                    dyno.container.reload()
                    if dyno.container.status != "running" or dyno.container.attrs["State"].get("Restarting"):
                        raise self._failed(dyno, f"exited before accepting connections on PORT {WEB_PORT}",
                                           self.containers.tail(dyno.container))
                    if now > deadline:
                        raise self._failed(dyno, f"did not accept connections on PORT {WEB_PORT} "
                                           f"within {self.boot_timeout:g} s", self.containers.tail(dyno.container))
                readable = listening is not None
                time.sleep(POLL if readable else PORT_POLL)
            if listening and not ipaddress.ip_address(dyno.address[0]).is_loopback:
                problem = unreachable(dyno.address)  # (seen listening from inside: is it reached from here?)
                if problem:
                    raise self._failed(dyno, problem, self.containers.tail(dyno.container))

    def pass_check(self, dyno: Dyno, check: Check) -> str:
        time.sleep(check.initial_delay)
        problem = None
        for attempt in range(check.attempts):
            problem = http_check(dyno.address, self.host, check)
            if problem is None:
                return f"{dyno.name} passed health check {check.label}(GET {check.path})"
            if attempt + 1 < check.attempts:
                time.sleep(check.wait)
        raise self._failed(dyno, f"failed health check {check.label}after {check.attempts} "
                           f"attempt{'s' if check.attempts != 1 else ''}: {problem}")

    def wait_out_startup_window(self, dynos: list[Dyno], started: float) -> None:
        """Every new process must be up and never restarted; the non-web ones for the whole window."""
        windowed = any(d.address is None for d in dynos)
        while True:
            for dyno in dynos:
                now = self.containers.refresh(dyno)
                state = None if now is None else now.process.state
                restarts = 0 if now is None else now.process.restarts
                if now is None or state != "up" or restarts:
                    what = "disappeared" if now is None else (
                        f"restarted {restarts} time{'s' if restarts != 1 else ''}" if restarts else state)
                    raise self._failed(dyno, f"{what} within its {self.startup_window:g} s startup window",
                                       self.containers.tail(now.container) if now is not None else "")
            if not windowed or time.monotonic() - started >= self.startup_window:
                return
            time.sleep(0.2)
