"""Health checks: is a new release's set of processes fit to take over from the running one?

Before the router is pointed at a new web process it must accept connections on ``$PORT`` and
pass the app's startup checks, if ``app.json`` declares any (Dokku's format)::

    "healthchecks": {"web": [{"type": "startup", "name": "ready", "path": "/health",
                              "content": "ok", "attempts": 3, "wait": 1, "timeout": 5}]}

and every new process of another type (a worker, a clock) must still be running, never restarted,
at the end of its startup window: a worker that crashes at boot fails the release as surely as a
deaf web. (A web process is judged by what it does: accepting connections and passing checks.)
"""

from __future__ import annotations

import http.client
import time
from dataclasses import asdict, dataclass
from typing import Any

from gitpaas.errors import BootFailed
from gitpaas.scheduler import Process, Scheduler


@dataclass(frozen=True)
class Check:
    path: str
    name: str = ""
    content: str | None = None
    attempts: int = 3
    wait: float = 1.0
    timeout: float = 5.0
    initial_delay: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        return f"'{self.name}' " if self.name else ""


def parse_checks(value: Any) -> dict[str, list[Check]]:
    """Validate app.json's ``healthchecks``; raise ValueError with the reason. Only ``startup``
    checks with a ``path`` are HTTP checks; other types (liveness, readiness) are not run."""
    if not isinstance(value, dict):
        raise ValueError("must be an object of process type → list of checks")
    parsed: dict[str, list[Check]] = {}
    for process_type, checks in value.items():
        if not isinstance(checks, list):
            raise ValueError(f"{process_type}: must be a list of checks")
        for number, raw in enumerate(checks, start=1):
            if not isinstance(raw, dict):
                raise ValueError(f"{process_type} check {number}: must be an object")
            if raw.get("type", "startup") != "startup" or "path" not in raw:
                continue
            path = raw["path"]
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"{process_type} check {number}: path must start with '/'")
            try:
                check = Check(
                    path=path, name=str(raw.get("name", "")),
                    content=None if raw.get("content") is None else str(raw["content"]),
                    attempts=int(raw.get("attempts", 3)), wait=float(raw.get("wait", 1)),
                    timeout=float(raw.get("timeout", 5)), initial_delay=float(raw.get("initialDelay", 0)),
                )
            except (TypeError, ValueError):
                raise ValueError(f"{process_type} check {number}: attempts, wait, timeout and initialDelay "
                                 "must be numbers") from None
            if check.attempts < 1 or check.wait < 0 or check.timeout <= 0 or check.initial_delay < 0:
                raise ValueError(f"{process_type} check {number}: attempts must be ≥ 1, times ≥ 0")
            parsed.setdefault(process_type, []).append(check)
    return parsed


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


def wait_until_healthy(scheduler: Scheduler, app: str, processes: list[Process], checks: dict[str, list[dict]],
                       *, host: str, boot_timeout: float, startup_window: float) -> list[str]:
    """Raise BootFailed unless every new process comes up healthy; return what was checked."""
    started = time.monotonic()
    scheduler.wait_until_serving(processes, boot_timeout)
    passed = [f"{p.name} accepts connections on $PORT" for p in processes if p.address]
    for process in processes:
        for raw in checks.get(process.type, []):
            check = Check(**raw)
            if process.address is None:
                continue
            time.sleep(check.initial_delay)
            problem = None
            for attempt in range(check.attempts):
                problem = http_check(process.address, host, check)
                if problem is None:
                    break
                if attempt + 1 < check.attempts:
                    time.sleep(check.wait)
            if problem:
                raise BootFailed(process.name, f"failed health check {check.label}after {check.attempts} "
                                 f"attempt{'s' if check.attempts != 1 else ''}: {problem}")
            passed.append(f"{process.name} passed health check {check.label}(GET {check.path})")
    windowed = [process for process in processes if process.address is None]
    ids = {process.id for process in processes}
    while True:
        current = {p.id: p for p in scheduler.processes(app) if p.id in ids}
        for process in processes:
            now = current.get(process.id)
            if now is None or now.state != "up" or now.restarts:
                state = "disappeared" if now is None else (
                    f"restarted {now.restarts} time{'s' if now.restarts != 1 else ''}" if now.restarts else now.state)
                raise BootFailed(process.name, f"{state} within its {startup_window:g} s startup window",
                                 scheduler.tail(process) if now is not None else "")
        if not windowed or time.monotonic() - started >= startup_window:
            break
        time.sleep(0.2)
    if windowed:
        passed.append(f"{', '.join(p.name for p in windowed)} stayed up for the {startup_window:g} s startup window")
    return passed
