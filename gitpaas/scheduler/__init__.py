"""Where processes run. The pipeline only sees :class:`Scheduler`; docker-local implements it
now, Docker Swarm can later without touching the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

#: Port every web process listens on inside its container (given to it as ``$PORT``).
WEB_PORT = 5000
#: Process types that run once and exit: the release phase and app.json's postdeploy script.
ONE_OFF_TYPES = ("release", "postdeploy")


@dataclass
class Process:
    """One running process of an app: a dyno in Heroku's words (``web.1``)."""

    id: str
    app: str
    type: str
    index: int
    release_version: int
    release_id: str
    command: str
    state: str  # Heroku's dyno states: starting, up, crashed, down
    created_at: str
    #: (host, port) the router reaches a web process at; None for other types
    address: tuple[str, int] | None = None
    restarts: int = 0

    @property
    def name(self) -> str:
        return f"{self.type}.{self.index}"

    @property
    def one_off(self) -> bool:
        """A run-to-completion process (``release.1234``), not part of the formation."""
        return self.type in ONE_OFF_TYPES


@dataclass
class ProcessSpec:
    """What to start: one process of a release."""

    app: str
    type: str
    index: int
    release_version: int
    release_id: str
    image: str
    command: str | None  # None: the image's own command
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class RunResult:
    exit_status: int | None
    timed_out: bool = False
    stopped: bool = False  # killed by someone else (ps:stop, OOM, docker kill)


class Scheduler(Protocol):
    def start(self, specs: list[ProcessSpec]) -> list[Process]: ...
    def wait_until_serving(self, processes: list[Process], timeout: float) -> None: ...  # accepts on $PORT
    def processes(self, app: str) -> list[Process]: ...
    def stop(self, processes: list[Process], grace: float) -> None: ...
    def retire(self, processes: list[Process], grace: float, drain: float) -> None: ...
    def tail(self, process: Process) -> str: ...
    def kill(self, process: Process) -> None: ...
    def restart(self, process: Process, grace: float) -> None: ...
    def remove_release(self, app: str, version: int) -> None: ...
    def run_once(self, spec: ProcessSpec, on_line: Callable[[str], None], timeout: float) -> RunResult: ...
    def logs(self, app: str, lines: int | None, follow: bool) -> Iterator[str]: ...
    def destroy_app(self, app: str) -> None: ...
