"""The one set of in-memory fakes the unit tests share: a scheduler, a router, a slug store and a
builder, each keeping what a user could observe (which processes run, where the router sends
traffic, which slugs exist, what a build printed), plus helpers that make a platform, a release
and a real pushed commit.

The fake scheduler implements the deploy-level seam the way any scheduler must: keep the current
processes within the wanted quantities, start the missing ones, check them, tell the router the new
endpoints, and retire the rest — which then show as ``stopping`` until ``finish_retiring()``.
"""

from __future__ import annotations

import base64
import itertools
import subprocess
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitpaas import pipeline
from gitpaas.addons.plans import scram_verifier
from gitpaas.build.base import BuildRequest, BuiltImage
from gitpaas.errors import BootFailed, BuildFailed, EnvironmentProblem, ProcessNotFound
from gitpaas.identity import OPERATOR, Actor
from gitpaas.output import Output, RecordingOutput
from gitpaas.platform import Platform
from gitpaas.release import Release, now_iso
from gitpaas.scheduler import AddonSpec, DeployReport, Deployment, OneOff, Process, RunResult
from gitpaas.settings import Settings

SLUG_ID = "01234567-89ab-4def-8123-456789abcdef"
PROCESS_TYPES = {"web": "python3 app.py", "worker": "python3 worker.py", "release": "./migrate.sh"}


class FakeRouter:
    """Remembers where each app's hosts go; ``failure`` makes the next change fail like a bad nginx -t."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.routes: dict[str, tuple[list[str], list[tuple[str, int]]]] = {}
        self.failure: Exception | None = None
        self.stopped = False

    def app_config_path(self, app: str) -> Path:
        return self.root / f"{app}.conf"

    def set_app(self, app: str, hosts: list[str], backends: list[tuple[str, int]], max_body: str = "100m") -> None:
        if self.failure is not None:
            raise self.failure
        self.routes[app] = (list(hosts), list(backends))
        self.root.mkdir(parents=True, exist_ok=True)
        self.app_config_path(app).write_text(repr(self.routes[app]))

    def set_maintenance(self, app: str, on: bool) -> None:
        self.maintenance = {*getattr(self, "maintenance", set())} - {app} | ({app} if on else set())

    def remove_app(self, app: str) -> None:
        self.routes.pop(app, None)
        self.app_config_path(app).unlink(missing_ok=True)

    def stop(self) -> None:
        self.stopped = True

    def is_running(self) -> bool:
        return not self.stopped

    def ensure_running(self) -> None:
        self.stopped = False


class FakeRunSession:
    """An attached one-off dyno: prints ``session_output``, then echoes what it is sent back on
    stdout until its input ends, then exits ``session_status`` (137 when stopped)."""

    def __init__(self, name: str, tty: bool, scheduler: "FakeScheduler", process: Process) -> None:
        self.name, self.tty, self.scheduler, self.process = name, tty, scheduler, process
        self.queue: list[tuple[int, bytes] | None] = []
        self.ready = threading.Condition()
        self.started = self.closed = self.stopped = False
        self.sizes: list[tuple[int, int]] = []

    def start(self) -> None:
        self.started = True
        with self.ready:
            self.queue.extend(self.scheduler.session_output)
            self.ready.notify_all()

    def read(self) -> tuple[int, bytes] | None:
        with self.ready:
            self.ready.wait_for(lambda: self.queue, timeout=10)
            return self.queue.pop(0) if self.queue else None

    def write(self, data: bytes) -> None:
        with self.ready:
            self.queue.append((1, data))
            self.ready.notify_all()

    def close_stdin(self) -> None:
        with self.ready:
            self.queue.append(None)
            self.ready.notify_all()

    def resize(self, rows: int, columns: int) -> None:
        self.sizes.append((rows, columns))

    def wait(self) -> int:
        return 137 if self.stopped else self.scheduler.session_status

    def stop(self) -> None:
        if not self.stopped and self.queue[-1:] != [None]:
            self.stopped = True
            self.close_stdin()

    def close(self) -> None:
        self.closed = True
        self.scheduler.running = [p for p in self.scheduler.running if p is not self.process]


@dataclass
class FakeHeld:
    """What FakeScheduler.hold gave: released by a deploy, or discarded."""

    deployment: Deployment
    taken: bool = False
    released: bool = False
    discarded: bool = False


class FakeScheduler:
    """The Scheduler seam in memory. The release phase prints ``run_output`` and returns
    ``run_result`` (or raises ``run_raises``); ``boot_failure`` fails the next deploy that starts
    processes, the way a process that never listens does."""

    name = "fake"

    def __init__(self, router: FakeRouter) -> None:
        self.router = router
        self.running: list[Process] = []
        self.addresses: dict[str, tuple[str, int]] = {}
        self.run_output = ["Migrating…", "done"]
        self.run_result = RunResult(exit_status=0)
        self.run_raises: BaseException | None = None
        self.run_gate: threading.Event | None = None
        self.boot_failure: str | None = None
        self.runs: list[tuple[OneOff, float]] = []
        self.deployments: list[Deployment] = []
        self.started: list[Process] = []
        self.destroyed: list[str] = []
        self.killed: list[str] = []
        #: add-ons by name: their spec, whether they run, the commands run in them
        self.addons: dict[str, dict] = {}
        #: the next add-on to wait for never accepts connections, with this message
        self.addon_not_ready: str | None = None
        self.addon_exec_status = 0
        #: a command run in an add-on that fails (a part of its command line)
        self.addon_exec_fails_on: str | None = None
        self._ids = itertools.count(1)
        #: one-off dynos asked for: (job, tty, attach, env)
        self.one_offs: list[tuple[OneOff, bool, bool, dict]] = []
        #: what an attached one-off prints, and the status it exits with (it echoes its input after)
        self.session_output: list[tuple[int, bytes]] = [(1, b"hello\n")]
        self.session_status = 0
        #: whether ``hold`` gives a token, and each token it gave
        self.hold_processes = True
        self.holds: list[FakeHeld] = []

    # --- the seam --------------------------------------------------------------------------
    def hold(self, deployment: Deployment) -> "FakeHeld | None":
        """A token for the processes docker-local would start held (None: ``hold_processes`` off)."""
        if not self.hold_processes:
            return None
        held = FakeHeld(deployment)
        self.holds.append(held)
        return held

    def discard(self, held: "FakeHeld | None") -> None:
        """As docker-local: what a deploy took is its own to clean up; the rest is removed."""
        if held is not None and not held.taken:
            held.discarded = True

    def deploy(self, deployment: Deployment, output: Output, held: "FakeHeld | None" = None) -> DeployReport:
        self.deployments.append(deployment)
        if held is not None:
            assert not held.discarded, "a discarded hold was deployed"
            held.taken = True
        release, formation = deployment.release, deployment.formation
        current = [p for p in self.processes(deployment.app) if not p.one_off and not p.retiring]
        keep = [p for p in current if p.release_version == release.version
                and p.index <= formation.get(p.type, 0) and p.name not in deployment.replace]
        kept = {(p.type, p.index) for p in keep}
        wanted = [(process_type, index) for process_type, quantity in formation.items()
                  for index in range(1, quantity + 1) if (process_type, index) not in kept]
        if wanted:  # what docker-local says, so the shells' output reads the same
            output.stage("Starting " + ", ".join(f"{t}.{i}" for t, i in wanted) + f" of v{release.version}")
        new = [self._start(deployment, process_type, index) for process_type, index in wanted]
        try:
            if new and self.boot_failure is not None:
                raise BootFailed(new[0].name, self.boot_failure, "Traceback…", version=release.version)
            serving = keep + new
            self.router.set_app(deployment.app, list(deployment.hosts),
                                [self.addresses[p.id] for p in serving if p.type == "web"])
        except BaseException:
            self.running = [p for p in self.running if p not in new]
            raise
        retire = [p for p in current if p not in keep]
        for process in retire:
            process.state = "stopping"
        output.info(f"Routing to v{release.version}")
        if held is not None:
            held.released = True
        return DeployReport(started=[p.name for p in new], retired=[p.name for p in retire],
                            health_seconds=0.01, swap_seconds=0.01)

    def run_once(self, job: OneOff, on_line: Callable[[str], None], timeout: float) -> RunResult:
        self.runs.append((job, timeout))
        if self.run_gate is not None:  # a release command that runs until the test says so
            self.run_gate.wait(10)
        for line in self.run_output:
            on_line(line)
        if self.run_raises is not None:
            raise self.run_raises
        return self.run_result

    def run(self, job: OneOff, tty: bool, attach: bool, env: Mapping[str, str]) -> "FakeRunSession | None":
        """A one-off dyno: listed as running until it ends; attached, a scripted session."""
        process = Process(id=f"c{next(self._ids)}", app=job.release.app, type=job.type, index=job.number,
                          release_version=job.release.version, release_id=job.release.id, command=job.command,
                          state="starting" if attach else "up", created_at=now_iso(), size=job.size or "standard-1x")
        self.running.append(process)
        self.one_offs.append((job, tty, attach, dict(env)))
        if not attach:
            return None
        return FakeRunSession(job.name, tty, self, process)

    def addon_attach(self, addon: AddonSpec, argv: Sequence[str], tty: bool) -> "FakeRunSession":
        self.addons.setdefault(addon.name, {}).setdefault("sessions", []).append((list(argv), tty))
        return FakeRunSession(f"{addon.name} session", tty, self, None)

    def processes(self, app: str) -> list[Process]:
        return [p for p in self.running if p.app == app]

    def stop(self, app: str, name: str) -> None:
        """Kill a running one-off; like docker-local, anything else is not a process it stops."""
        if not any(p.app == app and p.name == name and p.one_off for p in self.running):
            raise ProcessNotFound(app, name)
        self.killed.append(name)
        self.running = [p for p in self.running if not (p.app == app and p.name == name)]

    def remove_release(self, app: str, version: int) -> None:
        self.running = [p for p in self.running if not (p.app == app and p.release_version == version)]

    def reconcile(self, app: str) -> list[str]:
        """After a restart, the retirements nobody finishes: done at once here."""
        finished = [p.name for p in self.running if p.app == app and p.retiring]
        self.running = [p for p in self.running if not (p.app == app and p.retiring)]
        return [f"removed {', '.join(finished)}"] if finished else []

    def logs(self, app: str, lines: int | None, follow: bool) -> Iterator[str]:
        yield from []

    def start_addon(self, addon: AddonSpec, progress: Callable[[str], None], refresh: bool = False) -> bool:
        password = addon.env.get("POSTGRES_PASSWORD") or addon.env.get("REDIS_PASSWORD")
        state = self.addons.setdefault(addon.name, {"spec": addon, "running": False, "commands": [], "ready": False,
                                                    "password": password, "verifier": None})
        if state["running"]:
            return False
        state["running"] = True
        return True

    def wait_addon(self, addon: AddonSpec, timeout: float) -> None:
        if self.addon_not_ready is not None:
            message, self.addon_not_ready = self.addon_not_ready, None
            raise EnvironmentProblem(f"the add-on {addon.name} does not accept connections: {message}")
        self.addons[addon.name]["ready"] = True

    def addon_exec(self, addon: AddonSpec, argv: Sequence[str], *, stdin_file: Path | None = None,
                   stdout_file: Path | None = None, env: Mapping[str, str] | None = None) -> tuple[int, str]:
        """Like the services: a password changes with CONFIG SET (Redis) or a SCRAM verifier
        (PostgreSQL), and a login (``redis-cli ping``, ``psql -h``) works with the current one only."""
        state = self.addons[addon.name]
        if not state["running"]:
            raise EnvironmentProblem(f"the add-on {addon.name} has no container")
        env = {**addon.secrets, **(env or {})}
        command = " ".join(argv)
        state["commands"].append(list(argv))
        if self.addon_exec_status != 0 or (self.addon_exec_fails_on and self.addon_exec_fails_on in command):
            return self.addon_exec_status or 1, "ERROR: refused\n"
        if "NEW_PASSWORD" in env or "OLD_PASSWORD" in env:
            state["password"] = env.get("OLD_PASSWORD") or env["NEW_PASSWORD"]
        if "VERIFIER" in env:
            state["verifier"] = env["VERIFIER"]
        login = env.get("PGPASSWORD") or (env.get("REDISCLI_AUTH") if "ping" in argv else None)
        if login is not None:
            return (0, "PONG\n") if self._accepts(state, login) else (2, "password authentication failed\n")
        if stdout_file is not None:
            stdout_file.write_bytes(f"PGDMP {addon.name}".encode())
        if stdin_file is not None:
            state["restored"] = stdin_file.read_bytes()
        return 0, "OK\n"

    @staticmethod
    def _accepts(state: dict, password: str) -> bool:
        if state["verifier"] is None:
            return password == state["password"]
        salt = base64.b64decode(state["verifier"].split(":")[1].split("$")[0])
        return scram_verifier(password, salt) == state["verifier"]

    def addon_session(self, addon: AddonSpec, argv: Sequence[str], interactive: bool,
                      env_names: Sequence[str] = ()) -> list[str]:
        return ["true", addon.name, *argv]

    def remove_addon(self, addon: AddonSpec, keep_data: bool) -> None:
        if keep_data:
            self.addons.get(addon.name, {})["running"] = False
        else:
            self.addons.pop(addon.name, None)

    def destroy(self, app: str) -> None:
        self.destroyed.append(app)
        self.running = [p for p in self.running if p.app != app]

    def purge(self) -> None:
        self.running = []
        self.addons = {}

    # --- what tests look at and do ---------------------------------------------------------
    def finish_retiring(self) -> None:
        """The background retirer is done: the processes it was stopping are gone."""
        self.running = [p for p in self.running if not p.retiring]

    def add_one_off(self, app: str, process_type: str, number: int, version: int) -> Process:
        process = Process(id=f"{next(self._ids):064x}", app=app, type=process_type, index=number,
                          release_version=version, release_id="", command="./migrate.sh", state="up",
                          created_at=now_iso())
        self.running.append(process)
        return process

    def _start(self, deployment: Deployment, process_type: str, index: int) -> Process:
        number = next(self._ids)
        release = deployment.release
        process = Process(
            id=f"{number:064x}", app=release.app, type=process_type, index=index, release_version=release.version,
            release_id=release.id, command=release.process_types.get(process_type) or "", state="up",
            created_at=now_iso())
        if process_type == "web":
            self.addresses[process.id] = ("127.0.0.1", 40000 + number)
        self.running.append(process)
        self.started.append(process)
        return process


class FakeSlugs:
    """Slug image tags in memory: tag → image id."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}

    def tag(self, source: str, target: str) -> None:
        self.tags[target] = self.tags.get(source, source)

    def publish(self, tag: str) -> str:
        return tag

    def untag(self, tag: str, kept: Collection[str] = ()) -> None:
        self.tags.pop(tag, None)

    def exists(self, tag: str | None) -> bool:
        return tag in self.tags

    def image_id(self, tag: str) -> str | None:
        return self.tags.get(tag)

    def destroy(self, app: str) -> None:
        self.tags = {tag: image for tag, image in self.tags.items() if f"/{app}:" not in tag}

    def purge(self) -> None:
        self.tags.clear()


class FakeBuilder:
    """Builds any tree into a made-up image, printing ``lines``; ``failure`` makes the build fail."""

    name = "a fake builder"

    def __init__(self, slugs: FakeSlugs) -> None:
        self.slugs = slugs
        self.lines = ["Step 1/1 : COPY . /app"]
        self.failure: str | None = None
        self.default_process_types: dict[str, str] = {}
        self.requests: list[BuildRequest] = []

    def detect(self, source) -> bool:
        return True

    def build(self, request: BuildRequest) -> BuiltImage:
        self.requests.append(request)
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        request.log_path.write_text("\n".join(self.lines) + "\n")
        for line in self.lines:
            request.output.info(line)
        if self.failure is not None:
            raise BuildFailed(self.failure, self.lines[-1], log_path=str(request.log_path))
        image_id = f"sha256:{request.source.commit_sha}"
        self.slugs.tags[request.tag] = image_id
        return BuiltImage(image_id=image_id, tag=request.tag, size=12_000_000,
                          default_process_types=dict(self.default_process_types))


# --- helpers -------------------------------------------------------------------------------------

def make_platform(tmp_path: Path, **settings: object) -> Platform:
    """A platform on the fakes, its home in ``tmp_path/home`` (the conftest's ``platform`` fixture adds an app "shop")."""
    values = {"http_port": 8080, "release_timeout": 9, "boot_timeout": 5, "stop_timeout": 3, "startup_window": 0}
    values.update(settings)
    router = FakeRouter(tmp_path / "routes")
    slugs = FakeSlugs()
    platform = Platform(Settings(home=tmp_path / "home", **values), scheduler=FakeScheduler(router), router=router,
                        slugs=slugs, builders=[FakeBuilder(slugs)])
    return platform


def deploy(platform: Platform, process_types: Mapping[str, str | None] = PROCESS_TYPES, *,
           config_vars: Mapping[str, str] | None = None, image: str = "gitpaas-test/shop:build-1",
           output: Output | None = None, actor: Actor = OPERATOR, app: str = "shop",
           stack: str | None = None) -> Release:
    """A release of a made-up slug (built on ``stack``, the app's build stack unless told) through
    the real release phase and swap (no build)."""
    platform.slugs.tags.setdefault(image, f"sha256:{image}")
    release = pipeline.create_release(
        platform, platform.apps.get(app), actor, description="Deploy abc1234", source_image=image, slug_id=SLUG_ID,
        commit="abc1234" + "0" * 33, process_types=dict(process_types),
        config_vars=dict(platform.apps.config(app).get() if config_vars is None else config_vars),
        stack=stack or platform.apps.get(app).build_stack)
    return pipeline.release_and_swap(platform, app, release, output or RecordingOutput())


def running(platform: Platform) -> list[str]:
    """What runs, as ``web.1@v2`` (and ``web.1@v1 stopping`` while being retired)."""
    return sorted(f"{p.name}@v{p.release_version}" + (" stopping" if p.retiring else "")
                  for p in platform.scheduler.running)


def routed(platform: Platform, app: str = "shop") -> list[int]:
    """The versions of the web processes the router sends ``app``'s traffic to."""
    scheduler = platform.scheduler
    backends = platform.router.routes.get(app, ([], []))[1]
    by_address = {address: pid for pid, address in scheduler.addresses.items()}
    versions = {p.id: p.release_version for p in scheduler.running}
    return sorted(versions[by_address[address]] for address in backends if by_address.get(address) in versions)


def commit(repo: Path, files: Mapping[str, str], message: str = "push") -> tuple[str, str]:
    """Commit ``files`` on top of ``main`` in the bare repository ``repo`` (with git's plumbing, as
    a push would leave it): returns (old, new) shas, old being zeros for the first commit."""
    def git(*args: str, stdin: str | None = None, env: dict | None = None) -> str:
        return subprocess.run(["git", "--git-dir", str(repo), *args], input=stdin, capture_output=True, text=True,
                              check=True, env=env).stdout.strip()
    old = subprocess.run(["git", "--git-dir", str(repo), "rev-parse", "--verify", "-q", "refs/heads/main"],
                         capture_output=True, text=True).stdout.strip() or "0" * 40
    entries = []
    for name, text in files.items():
        blob = git("hash-object", "-w", "--stdin", stdin=text)
        entries.append(f"100644 blob {blob}\t{name}")
    tree = git("mktree", stdin="\n".join(entries) + "\n")
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin"}
    parents = ["-p", old] if old != "0" * 40 else []
    new = git("commit-tree", tree, *parents, "-m", message, env=identity)
    return old, new


def move_branch(repo: Path, new: str) -> None:
    """What git does after pre-receive accepted a push: move main to ``new``."""
    subprocess.run(["git", "--git-dir", str(repo), "update-ref", "refs/heads/main", new], check=True)
