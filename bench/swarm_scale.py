"""Swarm scale: what one Swarm manager does with 1 app and with N apps (50 by default) on the swarm
rig (scripts/swarm-rig.sh: three dockerds in network namespaces on this machine, one a manager,
and a registry), in one run. The baseline is the same home with one app: every figure is reported
as N apps / 1 app, and as a straight line through those two points (an estimate, not a measurement).

    .venv/bin/python bench/swarm_scale.py [--apps 50] [--runs 3] [--router-runs 10] [--cli-runs 5]
                                          [--web 3] [--max-minutes 20] [--quick]

Needs the rig: it runs `scripts/swarm-rig.sh up` (a no-op when the rig is up, and the rig is left
up afterwards); when the rig says this machine cannot run a swarm (exit 3) the benchmark prints why
and exits with common.SKIPPED, which run_all.py reports as skipped rather than failed.

1. The first app (tests/apps/web, its own Procfile and release command, scaled to ``--web`` web
   processes so a rolling update spans the nodes) is measured with nothing else deployed:
   - a redeploy: a one-file change pushed with git, until the new body answers through the router
     (and until every web process serves it, and until `git push` exits), split into the pipeline's
     phases from the release record (what the push's last line, ``Deployed vN in X s: receive …``,
     prints, to 0.01 s). The registry push of the slug is read from the same record: it happens in
     ``create_release``, after the build and before ``Release vN created`` and the release phase,
     and is the only step the phases do not cover, so "publish" is the record's total minus its
     phases (tagging, pushing the new layer and manifest to the registry, saving the record);
   - a `gitpaas config:set` (a rolling update of every web process), until every web process
     serves the new value through the router, and until the command exits;
   - a router switch: ``NginxRouter(settings).set_app`` alternating between the app's backends and
     the same backends in another order, timed in process (it returns once nginx confirms the
     reload); the app is routed as the scheduler left it afterwards;
   - `gitpaas apps`, `gitpaas nodes` and `gitpaas ps -a APP` (wall time of a new process);
   - the manager dockerd's RSS, and the total RSS of every node's dockerd and containerd (and of
     the containerd shims, one per container); tasks per node; the CPU the rig uses at rest over
     10 s (the nodes' containers — the apps and their health checks — from the nodes' parent
     cgroups, and every node's dockerd, containerd and shims from /proc).
2. Apps 2..N are created and deployed one after another, each a real `git push` of the same app
   (its own body): the wall time of every push, and its phases.
3. With N apps, the first app is measured again exactly as in 1.

The measurements with N apps cannot alternate with the ones with 1 app (the N apps are the
state being measured), so the machine's noise is not spread evenly: compare ratios, and read the
min–max. The three nodes share this machine's cores, so whatever every task costs at rest (the
health checks above all) slows everything measured with N apps, `gitpaas apps` included: read the
CPU at rest and the load average beside the seconds. The deploy loop stops early if the whole run
would not fit ``--max-minutes`` (the JSON says so, with the number of apps reached). Every app lives in one scratch home, purged at the end
(services, networks, the registry's repositories, slug images, router), also on failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import docker
import requests

from common import ROOT, SKIPPED, summary, write_result
from harness import GITPAAS, Home
from report import swarm_scale_table

from gitpaas.formation import hosts as app_hosts
from gitpaas.platform import Platform
from gitpaas.release import PHASES
from gitpaas.router.nginx import NginxRouter

SOURCE = ROOT / "tests" / "apps" / "web"
RIG = ROOT / "scripts" / "swarm-rig.sh"
#: swarm-rig.sh's exit status when this machine cannot run a swarm (its last line says why)
CANNOT = 3
FIRST = "scale1"
CREATED = re.compile(r"Release v(\d+) created")
DEPLOYED = re.compile(r"Deployed v\d+ in [\d.]+ s: [^\n]*")
#: between measurements: old tasks drain (GITPAAS_DRAIN_SECONDS=1), get SIGTERM and exit
SETTLE_SECONDS = 3.0
POLL_LIMIT_SECONDS = 300.0
#: (key, label) of each phase of a deploy: the record's phases, plus what they do not cover
STEPS = ("outside", "receive", "build", "publish", "release", "health", "swap")
MIB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: how long the rig's CPU use is watched while nothing happens
IDLE_SECONDS = 10.0
#: every push and command the run started (see Watched.stop_all)
RUNNING: list[subprocess.Popen] = []


# --- the rig ---------------------------------------------------------------------------------

def rig_up() -> dict[str, str]:
    """The GITPAAS_SWARM_* lines of `swarm-rig.sh up`; exits SKIPPED if this machine cannot run a swarm."""
    up = subprocess.run(["bash", str(RIG), "up"], capture_output=True, text=True, timeout=600)
    if up.returncode == CANNOT:
        reason = (up.stderr.strip().splitlines() or ["(no reason given)"])[-1]
        print(f"*** swarm_scale SKIPPED: {reason} ***", flush=True)
        sys.exit(SKIPPED)
    if up.returncode != 0:
        raise SystemExit(f"swarm-rig.sh up exited {up.returncode}:\n{up.stdout}{up.stderr}")
    return dict(line.split("=", 1) for line in up.stdout.splitlines() if line.startswith("GITPAAS_SWARM_"))


class Rig:
    """The rig's engines as processes (RSS) and the manager's view of the tasks."""

    def __init__(self, env: dict[str, str]) -> None:
        self.state = Path(os.environ.get("GITPAAS_SWARM_RIG", "/run/gitpaas-swarm").rstrip("/"))
        self.nodes = int((self.state / "nodes").read_text().strip())
        self.manager = docker.DockerClient(base_url=env["GITPAAS_SWARM_MANAGER"], timeout=120)
        self.engines = self._engine_pids()

    def _engine_pids(self) -> list[int | None]:
        pids = []
        for node in range(1, self.nodes + 1):
            try:
                pids.append(self.engine_pid(node))
            except (OSError, ValueError):
                pids.append(None)
        return pids

    def changed(self) -> str | None:
        """Why the rig is not the one this run started on (its engines restarted or gone), or None."""
        now = self._engine_pids()
        if now == self.engines and all(pid and Path(f"/proc/{pid}").exists() for pid in now):
            return None
        return (f"the swarm rig's engines changed during the run (dockerd pids {self.engines} → {now}): someone ran "
                "swarm-rig.sh down/up (tests/integration/test_swarm.py does, at its end) — the run is void")

    def check(self) -> None:
        reason = self.changed()
        if reason:
            raise SystemExit(reason)

    def foreign_services(self, home_id: str) -> int:
        """Services on the swarm that are not this home's (another user of the rig)."""
        return sum(1 for s in self.manager.api.services() if not s["Spec"]["Name"].startswith(f"gp-{home_id}-"))

    def engine_pid(self, node: int) -> int:
        return int((self.state / f"n{node}.pid").read_text().strip())

    def memory(self, samples: int = 3) -> dict[str, float]:
        """MiB of resident memory, the median of ``samples`` readings half a second apart."""
        readings = []
        for sample in range(samples):
            if sample:
                time.sleep(0.5)
            readings.append(self._memory_once())
        return {key: round(statistics.median(r[key] for r in readings), 1) for key in readings[0]}

    def _memory_once(self) -> dict[str, float]:
        engines = {self.engine_pid(node): node for node in range(1, self.nodes + 1)}
        exec_roots = [f" -address {self.state}/x{node}/" for node in range(1, self.nodes + 1)]
        dockerd = containerd = shims = 0
        count = 0
        for pid, ppid, comm, cmdline, _ in _processes():
            if pid in engines:
                dockerd += _rss(pid)
            elif comm == "containerd" and ppid in engines:
                containerd += _rss(pid)
            elif comm.startswith("containerd-shim") and any(root in cmdline for root in exec_roots):
                shims += _rss(pid)
                count += 1
        registry = _rss(int((self.state / "registry.pid").read_text().strip()))
        return {"manager_dockerd": _rss(self.engine_pid(1)) / MIB, "dockerd": dockerd / MIB,
                "containerd": containerd / MIB, "daemons": (dockerd + containerd) / MIB, "shims": shims / MIB,
                "shim_processes": count, "registry": registry / MIB}

    def _cpu_seconds(self) -> tuple[float | None, float]:
        """CPU seconds used so far by the nodes' containers (their parent cgroups: the apps'
        processes and their health checks, which run in them) — None where no cgroup tells — and
        by the nodes' dockerd, containerd and shims (with the children they reaped: runc…)."""
        containers: float | None = 0.0
        for node in range(1, self.nodes + 1):
            v1 = sorted(Path("/sys/fs/cgroup").glob(f"*/gpsw-n{node}/cpuacct.usage"))
            v2 = Path(f"/sys/fs/cgroup/gpsw-n{node}/cpu.stat")
            if v1:
                containers += int(v1[0].read_text()) / 1e9
            elif v2.exists():
                usage = next(line.split()[1] for line in v2.read_text().splitlines() if line.startswith("usage_usec"))
                containers += int(usage) / 1e6
            else:
                containers = None
                break
        engines = {self.engine_pid(node) for node in range(1, self.nodes + 1)}
        exec_roots = [f" -address {self.state}/x{node}/" for node in range(1, self.nodes + 1)]
        daemons = sum(cpu for pid, ppid, comm, cmdline, cpu in _processes()
                      if pid in engines or (comm == "containerd" and ppid in engines)
                      or (comm.startswith("containerd-shim") and any(root in cmdline for root in exec_roots)))
        return containers, daemons

    def idle_cpu(self, seconds: float = IDLE_SECONDS) -> dict[str, float | None]:
        """Percent of one core the rig uses while nothing is deployed, over ``seconds``."""
        containers, daemons = self._cpu_seconds()
        started = time.monotonic()
        time.sleep(seconds)
        containers_after, daemons_after = self._cpu_seconds()
        elapsed = time.monotonic() - started
        return {"containers": round(100 * (containers_after - containers) / elapsed, 1)
                if containers is not None and containers_after is not None else None,
                "daemons": round(100 * (daemons_after - daemons) / elapsed, 1), "seconds": round(elapsed, 1)}

    def tasks_per_node(self) -> dict[str, int]:
        """Running tasks on each node, of every service on the swarm (not only this home's: the
        rig may have other users, whose tasks count in the nodes' memory too)."""
        names = {n["ID"]: n["Description"]["Hostname"] for n in self.manager.api.nodes()}
        running = Counter(names.get(t.get("NodeID"), "?") for t in self.manager.api.tasks(filters={"desired-state": "running"})
                          if t["Status"]["State"] == "running")
        return {name: running.get(name, 0) for name in sorted(names.values())}

    def services_and_networks(self) -> dict[str, int]:
        return {"services": len(self.manager.api.services()),
                "overlay_networks": len(self.manager.api.networks(filters={"driver": "overlay"}))}


def _processes():
    """(pid, ppid, comm, command line, CPU seconds with its reaped children's) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = sum(int(value) for value in fields[11:15]) / CLOCK_TICKS  # utime, stime, cutime, cstime
        yield int(entry.name), int(fields[1]), comm, " " + cmdline, cpu


def _rss(pid: int) -> int:
    """Bytes of VmRSS; 0 for a process that is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@contextmanager
def swarm_home(env: dict[str, str], problems: list[str]) -> Iterator[Home]:
    """A scratch gitpaas home on the swarm, purged afterwards (services, networks, the registry's
    repositories, slug images, router). ``purge_home`` tries every step even when the swarm is gone
    by then (the rig taken down), so what is on this machine goes regardless; what could not be
    removed is added to ``problems`` (a failed purge never hides the failure that came before it)."""
    with tempfile.TemporaryDirectory(prefix="gitpaas-bench-") as base:
        home = Home.make(Path(base), **env)
        try:
            yield home
        finally:
            Watched.stop_all()
            try:
                home.purge()
            except Exception as exc:  # noqa: BLE001 — a report, not a failure of the measurement
                problems.append(f"purging the home failed ({exc.__class__.__name__}: {exc})")


# --- pushes and commands, watched through the router -------------------------------------------

class Watched:
    """A running `git push` or CLI command, its output in a file (a pipe could fill while we poll)."""

    def __init__(self, argv: list[str], cwd: Path | None, env: dict[str, str]) -> None:
        self.out = tempfile.TemporaryFile(mode="w+")
        self.argv = argv
        self.started = time.monotonic()
        # (a session of its own: the run's clean-up can stop it with its hook and children)
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, text=True, stdout=self.out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.exited: float | None = None
        RUNNING.append(self.process)

    @staticmethod
    def stop_all() -> None:
        """Stop every push or command still running (a run cut short), before the home is purged."""
        for process in RUNNING:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=30)

    def poll(self) -> bool:
        if self.exited is None and self.process.poll() is not None:
            self.exited = time.monotonic()
            if self.process.returncode != 0:
                raise SystemExit(f"{' '.join(self.argv)} exited {self.process.returncode}:\n{self.output()}")
        return self.exited is not None

    def wait(self) -> float:
        """Until it exits (bounded); seconds from its start."""
        deadline = time.monotonic() + POLL_LIMIT_SECONDS
        while not self.poll():
            if time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(self.argv)} did not finish within {POLL_LIMIT_SECONDS:.0f} s")
            time.sleep(0.02)
        return self.exited - self.started

    def output(self) -> str:
        self.out.seek(0)
        return self.out.read()


class Bench:
    """The scratch home's apps: pushes, config changes and router switches, timed."""

    def __init__(self, home: Home, rig: Rig) -> None:
        self.home = home
        self.rig = rig
        self.session = requests.Session()

    # --- git ---
    def commit(self, app: str, body: str) -> Path:
        """The test app with ``body`` committed in the app's work repo (as the harness's push does)."""
        repo = self.home.work / app
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True)
            self.home._git(repo, "init", "-q", "-b", "main")
        shutil.copytree(SOURCE, repo, dirs_exist_ok=True)
        (repo / "BODY").write_text(body + "\n")
        self.home._git(repo, "add", "-A")
        self.home._git(repo, "commit", "-q", "-m", body)
        return repo

    def push(self, app: str, repo: Path) -> Watched:
        return Watched(["git", "push", str(self.home.path / "apps" / app / "repo.git"), "HEAD:refs/heads/main"],
                       repo, self.home.env)

    def cli(self, *args: str) -> Watched:
        return Watched([GITPAAS, *args], None, self.home.env)

    # --- the router ---
    def answer(self, app: str, path: str) -> str | None:
        try:
            response = self.session.get(f"http://127.0.0.1:{self.home.port}{path}", timeout=5,
                                        headers={"Host": f"{app}.localhost", "Connection": "close"})
        except requests.RequestException:
            return None
        return response.text if response.status_code == 200 else None

    def watch(self, watched: Watched, app: str, path: str, dyno_of, dynos: int) -> dict[str, float]:
        """Poll the router until every one of ``dynos`` web processes has answered with what
        ``dyno_of`` recognizes (it returns the dyno's name, else None) and the command exited.
        Seconds from the command's start: first new answer, every web process, command exit."""
        first = everyone = None
        seen: set[str] = set()
        deadline = time.monotonic() + POLL_LIMIT_SECONDS
        while True:
            done = watched.poll()
            if everyone is None:
                dyno = dyno_of(self.answer(app, path) or "")
                now = time.monotonic()
                if dyno:
                    seen.add(dyno)
                    first = first or now
                    if len(seen) >= dynos:
                        everyone = now
            if done and everyone is not None:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(watched.argv)}: {app}{path} never served the change from every web "
                                 f"process within {POLL_LIMIT_SECONDS:.0f} s (seen: {sorted(seen)})")
            time.sleep(0.02)
        return {"first": first - watched.started, "every": everyone - watched.started,
                "command": watched.exited - watched.started}

    def steps(self, app: str, output: str, command_seconds: float) -> tuple[dict[str, float], str]:
        """Where a release's time went, from its record: the phases, the slug's publication
        (total − phases) and what the record does not cover (command wall time − total)."""
        version = int(CREATED.findall(output)[-1])
        timings = self.home.release(app, version).get("timings", {})
        phases = {phase: timings.get(phase, 0.0) for phase in PHASES}
        total = timings.get("total", sum(phases.values()))
        line = DEPLOYED.findall(output)
        return ({"outside": round(max(0.0, command_seconds - total), 3), **phases,
                 "publish": round(max(0.0, total - sum(phases.values())), 3), "total": total},
                line[-1].strip() if line else "")

    def settle(self) -> None:
        time.sleep(SETTLE_SECONDS)

    # --- operations ---
    def deploy_new(self, app: str) -> dict:
        """apps:create and the first push of ``app``; its wall times and phases."""
        created = self.cli("apps:create", app).wait()
        repo = self.commit(app, f"{app} v1")
        watched = self.push(app, repo)
        seconds = watched.wait()
        steps, line = self.steps(app, watched.output(), seconds)
        deadline = time.monotonic() + 30
        while not (self.answer(app, "/") or "").startswith(f"{app} v1 from"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{app} was deployed but does not answer through the router")
            time.sleep(0.1)
        return {"app": app, "create_s": round(created, 3), "push_s": round(seconds, 3), "steps_s": steps, "line": line}

    def redeploy(self, app: str, body: str, web: int) -> dict:
        repo = self.commit(app, body)
        watched = self.push(app, repo)
        times = self.watch(watched, app, "/", lambda text: _dyno(text, body), web)
        steps, line = self.steps(app, watched.output(), times["command"])
        return {**{k: round(v, 3) for k, v in times.items()}, "steps_s": steps, "line": line}

    def config_set(self, app: str, token: str, web: int) -> dict:
        watched = self.cli("config:set", f"BENCH_TOKEN={token}", "-a", app)
        times = self.watch(watched, app, "/env", lambda text: _env_dyno(text, token), web)
        steps, _ = self.steps(app, watched.output(), times["command"])
        return {**{k: round(v, 3) for k, v in times.items()}, "steps_s": steps}

    def router_switches(self, app: str, runs: int) -> list[float]:
        """``set_app`` alternating between the app's backends and another order of them (the
        same backends twice when there is one); the scheduler's routing is put back after."""
        platform = Platform(self.home.settings)
        hosts = app_hosts(platform.settings, platform.apps.get(app))
        current = platform.scheduler.services.web_backends(app)
        if not current:
            raise SystemExit(f"{app} has no web backends to route to")
        other = list(reversed(current)) if len(current) > 1 else current * 2
        router = NginxRouter(platform.settings)
        samples = []
        for run in range(runs):
            started = time.monotonic()
            router.set_app(app, hosts, other if run % 2 == 0 else current)
            samples.append(round(time.monotonic() - started, 4))
        router.set_app(app, hosts, current)  # (a no-op after an even number of switches)
        if not self.answer(app, "/"):
            raise SystemExit(f"{app} does not answer after the router switches")
        return samples

    def cli_seconds(self, runs: int) -> dict[str, list[float]]:
        """`gitpaas apps`, `gitpaas nodes` and `gitpaas ps -a FIRST`, in turn, ``runs`` times."""
        samples: dict[str, list[float]] = {"apps": [], "nodes": [], "ps": []}
        commands = {"apps": ("apps",), "nodes": ("nodes",), "ps": ("ps", "-a", FIRST)}
        for _ in range(runs):
            for name, argv in commands.items():
                samples[name].append(round(self.cli(*argv).wait(), 3))
        return samples

    def home_tasks_per_node(self) -> dict[str, int]:
        nodes = self.home.json("nodes")
        return {n["hostname"]: len(n["processes"]) for n in nodes}


def _dyno(text: str, body: str) -> str | None:
    """``BODY from web.2`` → ``web.2`` when BODY is ``body``."""
    first = text.strip()
    return first[len(body) + len(" from "):] if first.startswith(body + " from ") else None


def _env_dyno(text: str, token: str) -> str | None:
    """The DYNO of an /env answer that shows BENCH_TOKEN=``token``."""
    lines = text.splitlines()
    if f"BENCH_TOKEN={token}" not in lines:
        return None
    return next((line[5:] for line in lines if line.startswith("DYNO=")), "?")


# --- one measurement point (1 app, then N apps) --------------------------------------------------

def measure(bench: Bench, label: str, web: int, runs: int, router_runs: int, cli_runs: int) -> dict:
    """Everything measured on the first app, with however many apps are deployed now."""
    bench.settle()
    bench.rig.check()
    point: dict = {"idle_cpu_percent": bench.rig.idle_cpu(), "memory_mib": bench.rig.memory(),
                   "tasks_per_node": bench.rig.tasks_per_node(),
                   "home_tasks_per_node": bench.home_tasks_per_node(), **bench.rig.services_and_networks(),
                   "other_services": bench.rig.foreign_services(bench.home.settings.home_id),
                   "load_average_1min": round(os.getloadavg()[0], 2)}
    cli = bench.cli_seconds(cli_runs)
    router = bench.router_switches(FIRST, router_runs)
    redeploys, configs = [], []
    for run in range(runs):
        token = f"{label.replace(' ', '')}-{run}-{uuid.uuid4().hex[:6]}"
        redeploys.append(bench.redeploy(FIRST, f"redeploy {token}", web))
        bench.settle()
        configs.append(bench.config_set(FIRST, token, web))
        bench.settle()
        print(f"{label}, run {run + 1}: redeploy {redeploys[-1]['first']:.2f} s (push {redeploys[-1]['command']:.2f} s; "
              f"{redeploys[-1]['line']}), config:set {configs[-1]['every']:.2f} s", flush=True)
    point.update({
        "redeploy_answer_s": summary([r["first"] for r in redeploys]),
        "redeploy_every_s": summary([r["every"] for r in redeploys]),
        "redeploy_push_s": summary([r["command"] for r in redeploys]),
        "redeploy_steps_s": _step_medians([r["steps_s"] for r in redeploys]),
        "redeploy_steps_range_s": {step: [min(r["steps_s"][step] for r in redeploys),
                                          max(r["steps_s"][step] for r in redeploys)] for step in STEPS},
        "config_set_every_s": summary([c["every"] for c in configs]),
        "config_set_command_s": summary([c["command"] for c in configs]),
        "config_set_steps_s": _step_medians([c["steps_s"] for c in configs]),
        "router_switch_s": summary(router),
        **{f"cli_{name}_s": summary(values) for name, values in cli.items()},
        "samples": {"redeploys": redeploys, "config_sets": configs, "router_switch_s": router, "cli_s": cli},
    })
    point["memory_after_mib"] = bench.rig.memory()
    bench.rig.check()
    return point


def _step_medians(records: list[dict[str, float]]) -> dict[str, float]:
    return {step: round(statistics.median(r.get(step, 0.0) for r in records), 3) for step in (*STEPS, "total")}


# --- what the two points say -----------------------------------------------------------------

def figures(point: dict) -> dict[str, float]:
    """The figures of a point that are compared: medians, MiB, the swarm's running tasks."""
    return {
        "redeploy_answer_s": point["redeploy_answer_s"]["median"],
        "redeploy_push_s": point["redeploy_push_s"]["median"],
        **{f"redeploy_{step}_s": point["redeploy_steps_s"][step] for step in STEPS},
        "config_set_every_s": point["config_set_every_s"]["median"],
        "config_set_command_s": point["config_set_command_s"]["median"],
        "router_switch_s": point["router_switch_s"]["median"],
        "cli_apps_s": point["cli_apps_s"]["median"],
        "cli_nodes_s": point["cli_nodes_s"]["median"],
        "cli_ps_s": point["cli_ps_s"]["median"],
        "manager_dockerd_mib": point["memory_mib"]["manager_dockerd"],
        "daemons_mib": point["memory_mib"]["daemons"],
        "shims_mib": point["memory_mib"]["shims"],
        "idle_cpu_containers_pct": point["idle_cpu_percent"]["containers"] or 0.0,
        "idle_cpu_daemons_pct": point["idle_cpu_percent"]["daemons"],
        "tasks": sum(point["home_tasks_per_node"].values()),
        "swarm_tasks": sum(point["tasks_per_node"].values()),
    }


def ranges(point: dict) -> dict[str, tuple[float, float]]:
    """min–max over the runs of the figures measured more than once."""
    found = {key: (point[key]["min"], point[key]["max"]) for key in (
        "redeploy_answer_s", "redeploy_push_s", "config_set_every_s", "config_set_command_s", "router_switch_s",
        "cli_apps_s", "cli_nodes_s", "cli_ps_s")}
    found.update({f"redeploy_{step}_s": tuple(point["redeploy_steps_range_s"][step]) for step in STEPS})
    return found


def compare(one: dict, many: dict, apps: int, estimate_at: tuple[int, ...]) -> dict:
    """Ratios N/1, the slope per extra app, and the straight line through the two points at
    ``estimate_at`` apps — for the figures that grew: a timed figure grew when every run with N
    apps took longer than every run with 1 app; the others, when they are larger. A figure that
    did not grow is "flat" and its line is its value with N apps (no slope is invented from noise)."""
    a, b = figures(one), figures(many)
    low, high = ranges(one), ranges(many)
    ratios = {key: round(b[key] / a[key], 2) if a[key] else None for key in a}
    per_app = {key: round((b[key] - a[key]) / (apps - 1), 5) for key in a}
    grew = {key: per_app[key] > 0 and (key not in low or high[key][0] > low[key][1]) for key in a}
    line = {str(count): {key: round(a[key] + per_app[key] * (count - 1) if grew[key] else b[key], 3) for key in a}
            for count in estimate_at}
    tasks = b["swarm_tasks"] - a["swarm_tasks"]  # (the nodes' memory is every task's, this home's or not)
    per_task = {"daemons_mib_per_task": round((b["daemons_mib"] - a["daemons_mib"]) / tasks, 2) if tasks else None,
                "shims_mib_per_task": round((b["shims_mib"] - a["shims_mib"]) / tasks, 2) if tasks else None}
    return {"figures_1": a, "figures_n": b, "ratios": ratios, "per_extra_app": per_app, "grew": grew,
            "straight_line": line, "per_extra_task": per_task}


def deploy_trend(deploys: list[dict]) -> dict:
    """First, median and last push of apps 2..N, and the least-squares slope against the app's number."""
    pushes = [d["push_s"] for d in deploys]
    trend = {"first_s": pushes[0], "median_s": round(statistics.median(pushes), 3), "last_s": pushes[-1],
             "min_s": min(pushes), "max_s": max(pushes), "pushes": len(pushes),
             "last_over_first": round(pushes[-1] / pushes[0], 2)}
    if len(pushes) >= 3:
        numbers = list(range(2, len(pushes) + 2))
        slope, intercept = statistics.linear_regression(numbers, pushes)
        trend.update(slope_s_per_app=round(slope, 4), fit_at_2_s=round(intercept + 2 * slope, 2),
                     fit_at_last_s=round(intercept + numbers[-1] * slope, 2))
        half = len(deploys) // 2
        trend["steps_first_half_s"] = _step_medians([d["steps_s"] for d in deploys[:half]])
        trend["steps_second_half_s"] = _step_medians([d["steps_s"] for d in deploys[half:]])
    trend["create_s"] = summary([d["create_s"] for d in deploys])
    return trend


# --- the run ---------------------------------------------------------------------------------

def source_digest() -> str:
    """A digest of gitpaas's code: the run says whether it changed while it ran (every push and
    command runs the code as it is on disk at that moment)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "gitpaas").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def run(rig: Rig, env: dict[str, str], args: argparse.Namespace, problems: list[str]) -> tuple:
    """The first app and its measurement, apps 2..N, the measurement again, the purge."""
    begun = time.monotonic()
    wall: dict[str, float] = {}
    stopped_early = None
    home_env = {key: env[key] for key in ("GITPAAS_SWARM_MANAGER", "GITPAAS_SWARM_REGISTRY")}
    with swarm_home({"GITPAAS_SCHEDULER": "swarm", "GITPAAS_DRAIN_SECONDS": "1", **home_env}, problems) as home:
        bench = Bench(home, rig)
        phase = time.monotonic()
        warm_up = bench.deploy_new(FIRST)  # the nodes pull the stack's layers here, if they had not
        if args.web != 1:
            bench.cli("ps:scale", f"web={args.web}", "-a", FIRST).wait()
        wall["first_app"] = round(time.monotonic() - phase, 1)
        print(f"{FIRST} deployed ({warm_up['push_s']:.1f} s, the first push of the run) and scaled to "
              f"web={args.web}", flush=True)
    
        phase = time.monotonic()
        one = measure(bench, "1 app", args.web, args.runs, args.router_runs, args.cli_runs)
        wall["measure_1"] = round(time.monotonic() - phase, 1)

        phase = time.monotonic()
        deploys: list[dict] = []
        for number in range(2, args.apps + 1):
            deploys.append(bench.deploy_new(f"scale{number}"))
            print(f"app {number}/{args.apps}: create {deploys[-1]['create_s']:.1f} s, push {deploys[-1]['push_s']:.1f} s "
                  f"({deploys[-1]['line']})", flush=True)
            elapsed = time.monotonic() - begun
            recent = statistics.mean(d["create_s"] + d["push_s"] for d in deploys[-3:])
            # what is left after this loop: the second measurement, slower than the first as much as the
            # last deploys are slower than the first ones (the nodes share this machine's cores), and the purge
            slower = max(1.2, recent / (deploys[0]["create_s"] + deploys[0]["push_s"]))
            left = slower * wall["measure_1"] + 60 + 1.5 * number
            if number < args.apps and elapsed + recent + left > args.max_minutes * 60:
                stopped_early = (f"stopped at {number} of {args.apps} apps: another app ({recent:.1f} s for each of "
                                 f"the last three) would take the run past --max-minutes {args.max_minutes:g}")
                print(stopped_early, flush=True)
                break
        rig.check()
        wall["deploys"] = round(time.monotonic() - phase, 1)

        phase = time.monotonic()
        many = measure(bench, f"{len(deploys) + 1} apps", args.web, args.runs, args.router_runs, args.cli_runs)
        wall["measure_n"] = round(time.monotonic() - phase, 1)
        purge_started = time.monotonic()
    wall["purge"] = round(time.monotonic() - purge_started, 1)
    wall["total"] = round(time.monotonic() - begun, 1)
    return warm_up, one, deploys, many, wall, stopped_early


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=50, help="apps deployed for the second measurement (≥ 2)")
    parser.add_argument("--runs", type=int, default=3, help="redeploys and config:sets of the first app at each point")
    parser.add_argument("--router-runs", type=int, default=10, help="router switches at each point")
    parser.add_argument("--cli-runs", type=int, default=5, help="runs of each CLI command at each point")
    parser.add_argument("--web", type=int, default=3, help="web processes of the first app (the others run one)")
    parser.add_argument("--max-minutes", type=float, default=20.0,
                        help="stop deploying apps early if the whole run would take longer")
    parser.add_argument("--quick", action="store_true", help="5 apps, one run of each: checks the benchmark works")
    args = parser.parse_args()
    if args.quick:
        args.apps, args.runs, args.router_runs, args.cli_runs = 5, 1, 3, 2
    if args.apps < 2:
        parser.error("--apps must be at least 2")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # (the home is purged on the way out)
    env = rig_up()
    rig = Rig(env)
    source = source_digest()
    problems: list[str] = []
    try:
        measured = run(rig, env, args, problems)
    except BaseException:
        reason = rig.changed()
        if reason:
            print(f"\n*** {reason} ***", file=sys.stderr, flush=True)
        raise
    finally:
        for problem in problems:
            print(f"WARNING: {problem}", file=sys.stderr, flush=True)
    reason = rig.changed()  # (the purge ran on the same swarm: the figures are of one swarm)
    if reason:
        raise SystemExit(reason)
    warm_up, one, deploys, many, wall, stopped_early = measured
    apps = len(deploys) + 1

    result = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()), "nodes": rig.nodes, "apps": apps,
        "apps_requested": args.apps, "stopped_early": stopped_early, "quick": args.quick, "runs": args.runs,
        "router_runs": args.router_runs, "cli_runs": args.cli_runs, "web_of_first_app": args.web,
        "publish_measured_as": "the release record's total minus its phases (receive, build, release, health, "
                               "swap): the step between the build and the release phase, where create_release "
                               "tags the slug and pushes it to the registry",
        "first_push_s": warm_up["push_s"],
        "cleanup_problems": problems,
        "gitpaas_source": source, "gitpaas_source_changed_during_run": source_digest() != source,
        "one_app": {k: v for k, v in one.items() if k != "samples"},
        "n_apps": {k: v for k, v in many.items() if k != "samples"},
        "deploys": deploy_trend(deploys),
        **compare(one, many, apps, (200, 500)),
        "wall_seconds": wall,
        "samples_one_app": one["samples"], "samples_n_apps": many["samples"], "samples_deploys": deploys,
    }
    path = write_result("swarm_scale", result)
    print()
    print(swarm_scale_table(json.loads(path.read_text())))
    print(f"\n{wall['total'] / 60:.1f} min in all (the purge {wall['purge']:.0f} s); written to {path}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
