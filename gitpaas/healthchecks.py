"""Health checks as an app declares them: app.json's ``healthchecks`` (Dokku's format). Pure.

Before the router is pointed at a new web process it must accept connections on ``$PORT`` and
pass the app's startup checks, if ``app.json`` declares any::

    "healthchecks": {"web": [{"type": "startup", "name": "ready", "path": "/health",
                              "content": "ok", "attempts": 3, "wait": 1, "timeout": 5}]}

and every new process of another type (a worker, a clock) must still be running, never restarted,
at the end of its startup window: a worker that crashes at boot fails the release as surely as a
deaf web. (A web process is judged by what it does: accepting connections and passing checks.)
How a check is run is the scheduler's business (docker-local: ``gitpaas.scheduler.docker_local.health``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
