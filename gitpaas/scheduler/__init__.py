"""Where processes run: the seam between the story of a release and the engine that runs it.

The seam is cut at the level of a whole deploy, the way Dokku's ``scheduler-deploy APP IMAGE_TAG``
trigger is: the pipeline says *which release, how many of each process type, on which host names*
(:class:`Deployment`) and the scheduler makes it so — starting, checking, telling the router and
retiring in its own way. docker-local (``docker_local/``) converges containers one by one behind
nginx; a Docker Swarm scheduler would hand the same request to Swarm's rolling update. Nothing
above this module imports ``docker``.

    deploy(deployment, output)        make the formation run ``deployment`` (zero downtime); raises BootFailed
    run_once(job, on_line, timeout)   a run-to-completion process: the release phase, postdeploy
    run(job, tty, attach, env)        a one-off dyno (``run.1234``): attached (a RunSession to start
                                      when its user is there) or detached (output to the logs)
    processes(app)                    what runs now, as dynos (``web.1``, ``release.4821``)
    stop(app, name)                   kill a one-off process (a release command being cancelled)
    remove_release(app, version)      remove whatever of one release is left (after a crash)
    reconcile(app)                    after a reboot or an engine restart: finish what nobody finishes now
    start_addon(addon) / wait_addon   an add-on's container (True: it had to be started), on its app's
                                      network, its data on a volume; ``refresh`` moves it to a rebuilt image
    addon_exec(addon, argv, …)        run a command in it (rotate credentials, dump, restore)
    addon_attach(addon, argv, tty)    a session in it as a RunSession (pg:psql from another machine)
    addon_session(addon, argv, …)     the command line of a session in it (pg:psql), passing env_names
                                      from the caller's environment (a password never in an argv)
    remove_addon(addon, keep_data)    its container (and, when asked, its data)
    logs(app, lines, follow)          the app's output as Heroku-format lines (following: "" each idle second)
    destroy(app) / purge()            remove one app's resources / every resource of the home
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gitpaas.output import Output

#: Process types that run once and exit: the release phase, app.json's postdeploy script, and
#: one-off dynos (``gitpaas run``).
ONE_OFF_TYPES = ("release", "postdeploy", "run")


@dataclass(frozen=True)
class ReleaseSpec:
    """What a scheduler needs of a release to run its processes."""

    app: str
    version: int
    id: str
    #: the slug, as the slug store published it for this scheduler
    image: str
    #: process type → command (None: the image's own command)
    process_types: Mapping[str, str | None]
    #: the config vars every process gets
    env: Mapping[str, str]
    #: app.json's startup checks by process type (gitpaas.healthchecks.Check fields)
    healthchecks: Mapping[str, list[dict]] = field(default_factory=dict)
    #: process type → its own image, for the types that do not run in ``image`` (heroku.yml's
    #: build.docker entries; ``release`` for the release phase's ``release.image``)
    images: Mapping[str, str] = field(default_factory=dict)

    def image_of(self, process_type: str) -> str:
        return self.images.get(process_type, self.image)


@dataclass(frozen=True)
class Deployment:
    """Run ``formation`` of ``release``, routing ``hosts`` to its web processes."""

    release: ReleaseSpec
    #: process type → quantity
    formation: Mapping[str, int]
    #: the host names the router sends to the web processes (the first one is the app's own)
    hosts: Sequence[str]
    #: names of running processes (``web.1``) to replace with fresh ones even if they are current
    replace: frozenset[str] = frozenset()
    #: process type → dyno size name (``gitpaas.sizes``); a type not named runs at the default size
    sizes: Mapping[str, str] = field(default_factory=dict)

    @property
    def app(self) -> str:
        return self.release.app


@dataclass(frozen=True)
class AddonSpec:
    """An add-on's container, as the scheduler needs it."""

    app: str
    #: the add-on's name: its host name on the app's network too
    name: str
    #: its id: its data's volume is its own, never an earlier add-on's of the same name
    id: str
    #: "postgresql" or "redis"
    service: str
    #: the first start's environment (the credentials it initialises itself with)
    env: Mapping[str, str]
    #: a command run inside that succeeds once it accepts connections
    readiness: Sequence[str]
    #: the environment of every command run inside it (readiness, addon_exec): how a password
    #: reaches a client there without ever being in a command line
    secrets: Mapping[str, str] = field(default_factory=dict)


class RunSession(Protocol):
    """An attached one-off dyno: ``start`` it once its user is there, then exchange bytes."""

    name: str
    tty: bool

    def start(self) -> None: ...
    def read(self) -> tuple[int, bytes] | None: ...  # (1 stdout | 2 stderr, data); None at its end
    def write(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def resize(self, rows: int, columns: int) -> None: ...
    def wait(self) -> int: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class DeployReport:
    """What a deploy did, for the person watching and the release's timings."""

    started: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    #: seconds spent starting and checking the new processes, and switching the router
    health_seconds: float = 0.0
    swap_seconds: float = 0.0


@dataclass(frozen=True)
class OneOff:
    """A process that runs once, to completion: ``release.4821``, ``postdeploy.1234``."""

    release: ReleaseSpec
    type: str
    number: int
    command: str
    #: its dyno size name (``gitpaas.sizes``); None: the default
    size: str | None = None

    @property
    def name(self) -> str:
        return f"{self.type}.{self.number}"


@dataclass
class Process:
    """One running process of an app: a dyno in Heroku's words (``web.1``)."""

    #: the scheduler's own id for it (opaque to everything above the scheduler)
    id: str
    app: str
    type: str
    index: int
    release_version: int
    release_id: str
    command: str
    state: str  # Heroku's dyno states: starting, up, crashed, down; and stopping (being retired)
    created_at: str
    restarts: int = 0
    #: its dyno size name
    size: str = "standard-1x"
    #: why it last crashed, when the scheduler knows (``R15 memory quota vastly exceeded``)
    crash_reason: str | None = None
    #: the node it runs on, when the scheduler has several (swarm); None on docker-local
    node: str | None = None

    @property
    def name(self) -> str:
        return f"{self.type}.{self.index}"

    @property
    def one_off(self) -> bool:
        """A run-to-completion process (``release.1234``), not part of the formation."""
        return self.type in ONE_OFF_TYPES

    @property
    def retiring(self) -> bool:
        """Taken out of service: it will never serve again, whatever it is doing meanwhile."""
        return self.state == "stopping"


@dataclass
class RunResult:
    exit_status: int | None
    timed_out: bool = False
    stopped: bool = False  # killed by someone else (ps:stop, docker kill)
    out_of_memory: bool = False  # killed by the engine at its size's memory limit
    #: the process whose network it shared (``web.1``), when that one stopped while it ran
    lost_network: str = ""


class Held(Protocol):
    """What ``Scheduler.hold`` gives back: a release's new processes started ahead, their commands
    held until ``deploy`` (after a successful release phase) or ``discard`` (after a failed one)."""


class Scheduler(Protocol):
    name: str

    #: start ``deployment``'s new processes while its release command runs, their commands held (None: not done)
    def hold(self, deployment: Deployment) -> Held | None: ...
    def discard(self, held: Held | None) -> None: ...
    def deploy(self, deployment: Deployment, output: Output, held: Held | None = None) -> DeployReport: ...
    def run_once(self, job: OneOff, on_line: Callable[[str], None], timeout: float) -> RunResult: ...
    def run(self, job: OneOff, tty: bool, attach: bool, env: Mapping[str, str]) -> RunSession | None: ...
    def processes(self, app: str) -> list[Process]: ...
    def stop(self, app: str, name: str) -> None: ...
    def remove_release(self, app: str, version: int) -> None: ...
    def reconcile(self, app: str) -> list[str]: ...
    def start_addon(self, addon: AddonSpec, progress: Callable[[str], None], refresh: bool = False) -> bool: ...
    def wait_addon(self, addon: AddonSpec, timeout: float) -> None: ...
    def addon_exec(self, addon: AddonSpec, argv: Sequence[str], *, stdin_file: Path | None = None,
                   stdout_file: Path | None = None, env: Mapping[str, str] | None = None) -> tuple[int, str]: ...
    def addon_attach(self, addon: AddonSpec, argv: Sequence[str], tty: bool) -> RunSession: ...
    def addon_session(self, addon: AddonSpec, argv: Sequence[str], interactive: bool,
                      env_names: Sequence[str] = ()) -> list[str]: ...
    def remove_addon(self, addon: AddonSpec, keep_data: bool) -> None: ...
    def logs(self, app: str, lines: int | None, follow: bool) -> Iterator[str]: ...
    def destroy(self, app: str) -> None: ...
    def purge(self) -> None: ...


class Router(Protocol):
    """What a scheduler tells the router: where an app's host names go now."""

    def set_app(self, app: str, hosts: list[str], backends: list[tuple[str, int]]) -> None: ...
    def set_maintenance(self, app: str, on: bool) -> None: ...
