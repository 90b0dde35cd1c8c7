"""Deploy speed: a redeploy, a rollback and a config change, each against its raw-Docker floor, and
five apps deployed at once against the same five one after another — alternately, in one run.

    .venv/bin/python bench/deploy_speed.py [--runs 5] [--parallel-runs 3] [--no-window-row]

- Redeploy: the test app (tests/apps/web, a Dockerfile on the stack) with a changed BODY file, so
  only its COPY layer is rebuilt, and a trivial release command (``release: true``): from `git push`
  until the new body answers through the router. Floor: `docker build` of the same source (with
  BuildKit, as gitpaas builds it: a `docker` with buildx, else Debian's 20.10 CLI with its own
  BuildKit client and ``DOCKER_BUILDKIT=1``), `docker run -p 127.0.0.1:PORT:5000` and the first 200
  with the new body from the container.
- Rollback: `gitpaas rollback vN` until vN's body answers through the router. config:set: `gitpaas
  config:set` until the app's /env shows the new value. Floor for both: `docker run` of an image
  already built, until the first 200 (with the variable, for config:set).
- The same redeploy, rollback and config:set in other homes, alternated: ``GITPAAS_STARTUP_WINDOW``
  at its minimum (what the 2 s startup window costs), no fork server, a router that reloads for
  every switch, the classic builder, and new processes started only after the release command
  (``GITPAAS_HOLD_PROCESSES=0``, what holding them during it buys), and web processes reached on a
  published loopback port, through a ``docker-proxy``, instead of at their own address
  (``GITPAAS_PUBLISH_PORTS=1``).
- Five apps: five redeploys pushed at once, against the same five pushed one after another (wall
  time of each batch).
- Commands: `gitpaas --help`, `releases -n 15`, `ps` and `config` of the app, each a new process
  timed from start to exit (interpreter included), beside a bare `python -c pass`.

Every release record's ``timings`` say where a deploy's time goes (receive, build, release, health,
swap); the medians are kept for the chart (bench/report.py). Between two measurements the benchmark
waits for the old processes to be retired (``GITPAAS_DRAIN_SECONDS`` then SIGTERM), so background
work of one does not land in the next. Everything the floor creates carries the label
``gitpaas.bench=<run id>`` and is removed by that label at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import requests

from common import ROOT, scratch_home, summary, write_result
from harness import GITPAAS, Home, free_port

from gitpaas.errors import UsageError
from gitpaas.release import PHASES
from gitpaas.settings import Settings

SOURCE = ROOT / "tests" / "apps" / "web"
PROCFILE = "web: python3 /app/server.py\nrelease: true\n"
_SETTINGS = Settings.from_env({"GITPAAS_HOME": "/nonexistent"})
STACK = _SETTINGS.stack_image(_SETTINGS.default_stack)
APP = "bench"
PARALLEL_APPS = 5
#: wait between measurements: the drain (1 s by default), SIGTERM, the old process's exit
SETTLE_SECONDS = 2.0
POLL_LIMIT_SECONDS = 120.0
CREATED = re.compile(r"Release v(\d+) created")
OPERATIONS = ("redeploy", "rollback", "config_set")


def minimal_startup_window() -> str:
    """``0`` if gitpaas accepts it, else the smallest window it takes (it refused 0 when written)."""
    try:
        Settings.from_env({"GITPAAS_HOME": "/nonexistent", "GITPAAS_STARTUP_WINDOW": "0"})
        return "0"
    except UsageError:
        return "0.01"


def wait_for_answer(port: int, path: str, expect: str, host: str | None = None, process=None) -> float:
    """Poll 127.0.0.1:``port`` until a 200 whose body contains ``expect``; return that moment
    (time.monotonic). Bounded in time and count; fails early if ``process`` exits non-zero."""
    headers = {"Connection": "close", **({"Host": host} if host else {})}
    deadline = time.monotonic() + POLL_LIMIT_SECONDS
    for _ in range(20_000):
        try:
            response = requests.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=5)
            if response.status_code == 200 and expect in response.text:
                return time.monotonic()
        except requests.RequestException:
            pass
        if process is not None and process.poll() not in (None, 0):
            raise SystemExit(f"{' '.join(map(str, process.args))} failed:\n{process.communicate()[1]}")
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    raise SystemExit(f"127.0.0.1:{port}{path} never answered {expect!r}")


class DockerFloor:
    """What raw Docker takes for the same app: `docker build`, `docker run`, first 200."""

    def __init__(self) -> None:
        self.label = f"gitpaas.bench=deploy_speed-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.folder = Path(tempfile.mkdtemp(prefix="gitpaas-bench-floor-"))
        shutil.copytree(SOURCE, self.folder / "app")
        self.image: str | None = None
        self.cli, self.builder = self._buildkit_cli()

    def _buildkit_cli(self) -> tuple[str, str]:
        """The first `docker` whose `build` takes ``DOCKER_BUILDKIT=1`` (one without buildx refuses
        it), and how it builds: gitpaas builds with BuildKit, so its floor does too."""
        (self.folder / "probe").mkdir()
        (self.folder / "probe" / "Dockerfile").write_text("FROM scratch\nLABEL probe=1\n")
        refusals = []
        for cli in dict.fromkeys(path for path in (shutil.which("docker"), "/usr/bin/docker") if path and os.path.exists(path)):
            probe = subprocess.run([cli, "build", "-q", "--label", self.label, str(self.folder / "probe")],
                                   capture_output=True, text=True, timeout=120, env={**os.environ, "DOCKER_BUILDKIT": "1"})
            if probe.returncode == 0:
                version = subprocess.run([cli, "version", "--format", "{{.Client.Version}}"], capture_output=True,
                                         text=True, timeout=60).stdout.strip()
                return cli, f"BuildKit (docker CLI {version})"
            refusals.append(f"{cli}: {probe.stderr.strip().splitlines()[0] if probe.stderr.strip() else probe.returncode}")
        raise SystemExit("no docker command line here builds with BuildKit (DOCKER_BUILDKIT=1), which the floor "
                         "needs to compare with gitpaas's BuildKit builds: " + "; ".join(refusals))

    def build_and_run(self, body: str) -> tuple[float, float]:
        """(build seconds, run-until-answer seconds) for a new BODY."""
        (self.folder / "app" / "BODY").write_text(body + "\n")
        started = time.monotonic()
        built = self._docker("build", "-q", "--force-rm", "--label", self.label,
                             "--build-arg", f"GITPAAS_STACK_IMAGE={STACK}", str(self.folder / "app"))
        self.image = built.stdout.strip().splitlines()[-1]
        build_seconds = time.monotonic() - started
        return build_seconds, self.run(body)

    def run(self, expect: str, path: str = "/", env: dict[str, str] | None = None) -> float:
        """`docker run -d` of the last image built until a 200 containing ``expect``; the container
        is removed afterwards."""
        port = free_port()
        env_args = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
        started = time.monotonic()
        container = self._docker("run", "-d", "--label", self.label, "-p", f"127.0.0.1:{port}:5000",
                                 "-e", "PORT=5000", *env_args, self.image).stdout.strip()
        try:
            answered = wait_for_answer(port, path, expect)
        finally:
            self._docker("rm", "-f", container)
        return answered - started

    def cleanup(self) -> None:
        for kind, listing in (("container", ["ps", "-aq"]), ("image", ["images", "-q"])):
            ids = self._docker(*listing, "--filter", f"label={self.label}", check=False).stdout.split()
            if ids:
                self._docker("rm" if kind == "container" else "rmi", "-f", *sorted(set(ids)), check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        buildkit = {"DOCKER_BUILDKIT": "1"} if self.builder.startswith("BuildKit") else {}
        result = subprocess.run([self.cli, *args], capture_output=True, text=True, timeout=600,
                                env={**os.environ, **buildkit})
        if check and result.returncode != 0:
            raise SystemExit(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result


class Deployer:
    """One gitpaas home and its apps: pushes, rollbacks and config changes, timed until the router
    serves the change."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.bodies: dict[str, dict[int, str]] = {}  # app → version → BODY

    def create(self, app: str) -> None:
        self.home.create_app(app)
        self.bodies[app] = {}

    def commit(self, app: str, body: str) -> Path:
        """Commit the test app with ``body`` in the app's work repo (as the harness's push does)."""
        repo = self.home.work / app
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True)
            self.home._git(repo, "init", "-q", "-b", "main")
        for item in repo.iterdir():
            if item.name != ".git":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        shutil.copytree(SOURCE, repo, dirs_exist_ok=True)
        (repo / "BODY").write_text(body + "\n")
        (repo / "Procfile").write_text(PROCFILE)
        self.home._git(repo, "add", "-A")
        self.home._git(repo, "commit", "-q", "-m", body)
        return repo

    def start_push(self, app: str, repo: Path) -> subprocess.Popen:
        remote = str(self.home.path / "apps" / app / "repo.git")
        return subprocess.Popen(["git", "push", remote, "HEAD:refs/heads/main"], cwd=repo, env=self.home.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish(self, app: str, process: subprocess.Popen, body: str | None = None) -> int:
        """Wait for a push or a CLI command; return the release version it created."""
        stdout, stderr = process.communicate(timeout=600)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, process.args))} exited {process.returncode}:\n{stdout}{stderr}")
        version = int(CREATED.findall(stdout + stderr)[-1])
        if body is not None:
            self.bodies[app][version] = body
        return version

    def push(self, app: str, body: str) -> int:
        return self.finish(app, self.start_push(app, self.commit(app, body)), body)

    def redeploy(self, app: str, body: str) -> tuple[float, int]:
        """Seconds from `git push` until the new body answers through the router, and the version."""
        repo = self.commit(app, body)
        started = time.monotonic()
        process = self.start_push(app, repo)
        answered = wait_for_answer(self.home.port, "/", body + " from", self.host(app), process)
        return answered - started, self.finish(app, process, body)

    def rollback(self, app: str) -> tuple[float, int]:
        """Roll back to the newest release whose body is not the one being served."""
        current = max(self.bodies[app])
        target = max(v for v, body in self.bodies[app].items() if body != self.bodies[app][current])
        body = self.bodies[app][target]
        started = time.monotonic()
        process = self._cli("rollback", f"v{target}", "-a", app)
        answered = wait_for_answer(self.home.port, "/", body + " from", self.host(app), process)
        return answered - started, self.finish(app, process, body)

    def config_set(self, app: str, key: str, value: str) -> tuple[float, int]:
        started = time.monotonic()
        process = self._cli("config:set", f"{key}={value}", "-a", app)
        answered = wait_for_answer(self.home.port, "/env", f"{key}={value}\n", self.host(app), process)
        current = max(self.bodies[app])
        return answered - started, self.finish(app, process, self.bodies[app][current])

    def timings(self, app: str, version: int) -> dict[str, float]:
        return self.home.release(app, version).get("timings", {})

    def _cli(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([GITPAAS, *args], env=self.home.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    @staticmethod
    def host(app: str) -> str:
        return f"{app}.localhost"


def settle() -> None:
    time.sleep(SETTLE_SECONDS)


def phase_medians(records: list[dict[str, float]], answers: list[float]) -> dict[str, float]:
    """Median seconds of each phase over the releases, plus what the records do not cover: git,
    the hook's start-up and the CLI's (the answer time minus the record's total)."""
    medians = {phase: round(statistics.median(r.get(phase, 0.0) for r in records), 3) for phase in PHASES}
    outside = [max(0.0, answer - r.get("total", 0.0)) for r, answer in zip(records, answers)]
    return {"outside": round(statistics.median(outside), 3), **medians}


def measure_single(deployers: dict[str, Deployer], floor: DockerFloor, runs: int) -> dict:
    """Redeploy, rollback and config:set in every home, alternated with their floors."""
    samples: dict[str, list[float]] = {}
    records: dict[str, list[dict]] = {}
    answers: dict[str, list[float]] = {}

    def add(name: str, seconds: float, record: dict | None = None) -> None:
        samples.setdefault(name, []).append(round(seconds, 3))
        if record is not None:
            records.setdefault(name, []).append(record)
            answers.setdefault(name, []).append(seconds)

    for run in range(runs):
        token = f"{run}-{uuid.uuid4().hex[:6]}"
        floor_first = run % 2 == 0  # alternate which side goes first

        def floor_build() -> None:
            build, start = floor.build_and_run(f"floor {token}")
            add("floor_build", build)
            add("floor_run_after_build", start)
            add("floor_redeploy", build + start)

        if floor_first:
            floor_build()
        # Each home pushes its own body: the engine's build cache is shared, and a source another
        # home has just built would skip the COPY layer.
        homes = list(deployers.items()) if floor_first else list(deployers.items())[::-1]
        for label, deployer in homes:
            seconds, version = deployer.redeploy(APP, f"redeploy {label} {token}")
            add(f"redeploy_{label}", seconds, deployer.timings(APP, version))
            settle()
        if not floor_first:
            floor_build()
        # rollback and config:set, each alternated with a container start of an existing image
        for operation in ("rollback", "config_set"):
            if floor_first:
                add(f"floor_{operation}", floor.run(*_floor_args(operation, token)))
            for label, deployer in homes:
                if operation == "rollback":
                    seconds, version = deployer.rollback(APP)
                else:
                    seconds, version = deployer.config_set(APP, "BENCH_TOKEN", token)
                add(f"{operation}_{label}", seconds, deployer.timings(APP, version))
                settle()
            if not floor_first:
                add(f"floor_{operation}", floor.run(*_floor_args(operation, token)))
        print(f"run {run + 1}: " + ", ".join(f"{name} {values[-1]:.2f} s" for name, values in samples.items()),
              flush=True)
    result = {name: summary(values) for name, values in samples.items()}
    return {"seconds": result, "samples_s": samples,
            "phases_s": {name: phase_medians(records[name], answers[name]) for name in records},
            "timings": records}


def _floor_args(operation: str, token: str) -> tuple:
    if operation == "config_set":
        return (f"BENCH_TOKEN={token}\n", "/env", {"BENCH_TOKEN": token})
    return ("floor ", "/")


def measure_parallel(deployer: Deployer, runs: int) -> dict:
    """Five apps redeployed at once against the same five one after another (wall time)."""
    apps = [f"par{number}" for number in range(1, PARALLEL_APPS + 1)]
    for app in apps:
        deployer.create(app)
        deployer.push(app, f"{app} initial")
    samples: dict[str, list[float]] = {"sequential": [], "concurrent": []}
    for run in range(runs):
        order = ("sequential", "concurrent") if run % 2 == 0 else ("concurrent", "sequential")
        for mode in order:
            body = f"{mode} {run}"
            repos = {app: deployer.commit(app, f"{app} {body}") for app in apps}
            started = time.monotonic()
            if mode == "sequential":
                for app in apps:
                    deployer.finish(app, deployer.start_push(app, repos[app]), f"{app} {body}")
            else:
                processes = {app: deployer.start_push(app, repos[app]) for app in apps}
                for app, process in processes.items():
                    deployer.finish(app, process, f"{app} {body}")
            samples[mode].append(round(time.monotonic() - started, 3))
            for app in apps:  # every app really serves its new body
                wait_for_answer(deployer.home.port, "/", f"{app} {body} from", deployer.host(app))
            settle()
        print(f"parallel run {run + 1}: sequential {samples['sequential'][-1]:.1f} s, "
              f"concurrent {samples['concurrent'][-1]:.1f} s", flush=True)
    return {"apps": PARALLEL_APPS, "seconds": {mode: summary(values) for mode, values in samples.items()},
            "concurrent_over_sequential": round(statistics.median(samples["concurrent"])
                                                / statistics.median(samples["sequential"]), 3),
            "samples_s": samples}


#: the commands timed from start to exit, interpreter included: the help, and three that read state
COMMANDS = {"help": ["--help"], "releases": ["releases", "-a", APP, "-n", "15"], "ps": ["ps", "-a", APP],
            "config": ["config", "-a", APP]}


def run_timed(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from a process's start to its exit. (``Popen.wait()`` without a timeout blocks in
    waitpid; ``subprocess.run(timeout=…)`` polls with sleeps growing to 50 ms, which rounds a short
    command's time up to 0.064, 0.114, 0.164 s… — what the figures before 2026-12-02 23:30 were.)"""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        status = process.wait()
    finally:
        watchdog.cancel()
    took = time.perf_counter() - started
    if status != 0:
        raise subprocess.CalledProcessError(status, argv)
    return took


def measure_commands(deployer: Deployer, rounds: int) -> dict:
    """Wall time of each command in ``COMMANDS`` (a new process each time, as a person runs it),
    handed to the home's fork server and, alternately, run in its own process
    (``GITPAAS_FORKSERVER=0``, the ``*_alone`` samples), beside the bare interpreter (``python -c
    pass``) for reference; the commands take turns."""
    names = ["python", *COMMANDS, *(f"{name}_alone" for name in COMMANDS)]
    samples: dict[str, list[float]] = {name: [] for name in names}
    alone = {**deployer.home.env, "GITPAAS_FORKSERVER": "0"}
    for _ in range(rounds):
        for name in samples:
            command = COMMANDS.get(name.removesuffix("_alone"))
            argv = [sys.executable, "-c", "pass"] if command is None else [GITPAAS, *command]
            samples[name].append(round(run_timed(argv, alone if name.endswith("_alone") else deployer.home.env), 4))
    print("commands: " + ", ".join(f"{name} {statistics.median(values):.3f} s" for name, values in samples.items()),
          flush=True)
    return {"rounds": rounds, "argv": COMMANDS, "seconds": {name: summary(values) for name, values in samples.items()},
            "samples_s": samples}


def ratios(seconds: dict[str, dict], labels: list[str]) -> dict[str, dict[str, float]]:
    """operation → home label → gitpaas median / floor median."""
    return {operation: {label: round(seconds[f"{operation}_{label}"]["median"]
                                     / seconds[f"floor_{operation}"]["median"], 2) for label in labels}
            for operation in OPERATIONS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="alternated runs of redeploy/rollback/config:set")
    parser.add_argument("--parallel-runs", type=int, default=3, help="alternated sequential/concurrent batches")
    parser.add_argument("--no-window-row", action="store_true", help="skip the home with a minimal startup window")
    parser.add_argument("--no-forkserver-row", action="store_true",
                        help="skip the home whose commands and hook run in their own process (GITPAAS_FORKSERVER=0)")
    parser.add_argument("--no-router-reload-row", action="store_true",
                        help="skip the home whose router reloads nginx for every switch (GITPAAS_ROUTER_LUA=0)")
    parser.add_argument("--no-classic-build-row", action="store_true",
                        help="skip the home whose Dockerfiles the engine's classic builder builds "
                             "(GITPAAS_DOCKER_BUILDER=classic)")
    parser.add_argument("--no-hold-row", action="store_true",
                        help="skip the home that starts a release's processes only after its release command "
                             "(GITPAAS_HOLD_PROCESSES=0)")
    parser.add_argument("--no-published-ports-row", action="store_true",
                        help="skip the home whose web processes are reached on published loopback ports "
                             "(GITPAAS_PUBLISH_PORTS=1)")
    parser.add_argument("--command-rounds", type=int, default=15, help="rounds of the timed commands (0: none)")
    args = parser.parse_args()
    window = minimal_startup_window()
    floor = DockerFloor()
    with ExitStack() as stack:
        stack.callback(floor.cleanup)
        homes = {"default": stack.enter_context(scratch_home())}
        if not args.no_window_row:
            homes["no_window"] = stack.enter_context(scratch_home(GITPAAS_STARTUP_WINDOW=window))
        if not args.no_forkserver_row:
            homes["no_forkserver"] = stack.enter_context(scratch_home(GITPAAS_FORKSERVER="0"))
        if not args.no_router_reload_row:
            homes["router_reload"] = stack.enter_context(scratch_home(GITPAAS_ROUTER_LUA="0"))
        if not args.no_classic_build_row:
            homes["classic_build"] = stack.enter_context(scratch_home(GITPAAS_DOCKER_BUILDER="classic"))
        if not args.no_hold_row:
            homes["no_hold"] = stack.enter_context(scratch_home(GITPAAS_HOLD_PROCESSES="0"))
        if not args.no_published_ports_row:
            homes["published_ports"] = stack.enter_context(scratch_home(GITPAAS_PUBLISH_PORTS="1"))
        deployers = {label: Deployer(home) for label, home in homes.items()}
        for deployer in deployers.values():  # v1 and v2: the first build, and bodies to roll back between
            deployer.create(APP)
            deployer.push(APP, f"warm-up 1 {deployer.home.port}")
            deployer.push(APP, f"warm-up 2 {deployer.home.port}")
        floor.build_and_run("floor warm-up")
        commands = measure_commands(deployers["default"], args.command_rounds) if args.command_rounds else None
        single = measure_single(deployers, floor, args.runs)
        parallel = measure_parallel(deployers["default"], args.parallel_runs) if args.parallel_runs else None
    result = {"runs": args.runs, "stack_image": STACK, "floor_builder": floor.builder, "procfile": PROCFILE, "startup_window_row": window,
              "settle_s": SETTLE_SECONDS, **single, "ratios": ratios(single["seconds"], list(deployers)),
              "parallel": parallel, "commands": commands}
    path = write_result("deploy_speed", result)
    print(f"\n| {args.runs} runs, median (min–max) s | gitpaas | floor | ratio |\n|---|---:|---:|---:|")
    for operation, by_label in result["ratios"].items():
        base = result["seconds"][f"floor_{operation}"]
        for label, ratio in by_label.items():
            mine = result["seconds"][f"{operation}_{label}"]
            print(f"| {operation} ({label}) | {mine['median']:.2f} ({mine['min']:.2f}–{mine['max']:.2f}) "
                  f"| {base['median']:.2f} ({base['min']:.2f}–{base['max']:.2f}) | {ratio:.2f} |")
    if parallel:
        print(f"five apps: concurrent/sequential {parallel['concurrent_over_sequential']}")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
