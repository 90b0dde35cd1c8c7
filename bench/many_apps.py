"""Two hundred apps on one box: does anything gitpaas does slow down with the number of apps?

    .venv/bin/python bench/many_apps.py [--apps 200] [--concurrency 3] [--redeploys 3] [--switches 10]
                                        [--rounds 5] [--time-limit 1500]

One home, the test app of bench/deploy_speed.py (tests/apps/web: a Dockerfile on the stack, a web
process and ``release: true``) as every app, at the default size, each owned by one account so the
Platform API lists them all. Measured with 1 app, then again once N apps run (pushed a few at a
time; if the time limit comes first, N is where it stopped, and the JSON says so):

- redeploy: `git push` of a new BODY until it answers through the router — the first app at 1,
  the newest app at N (medians of ``--redeploys``); each followed by the raw-Docker floor of
  bench/deploy_speed.py (`docker build` + `docker run` + first 200 of the same app, outside gitpaas),
  so a machine that got slower or faster between the two points shows in the floor's own ratio;
- router switch: ``NginxRouter.set_app`` of a probe host between two backends, as a deploy does —
  the new file written and, where nginx has Lua, the new list set in its memory, else ``nginx -t``
  and the reload, confirmed; and a reload: the probe's host names changed, which always takes
  ``nginx -t`` and a reload of every app's file (medians of ``--switches`` each);
- `gitpaas apps` (a new process each time) and `GET /apps` from a running `gitpaas server`
  (medians of ``--rounds``);
- the engine's own container start (``POST /containers/{id}/start`` until it returns, of `true` in
  the stack image), on no network, on the measured app's own network (what each of its web
  processes gets: a bridge endpoint, and the engine's DNS resolver set up inside) and joining the
  network namespace of a container running there (what a process would get from a holder made
  ahead, which gitpaas does not make: see the README's design page), alternated: the part of a
  redeploy that is Docker's, and how it grows with N apps beside it;
- memory: the proportional set size (PSS, so shared pages are counted once) of the router's nginx
  processes, of the `gitpaas server` and of the home's fork server (which the CLI and the git hook
  hand their work to); the growth from 1 app to N divided by N - 1 is the memory
  gitpaas's own processes take per app. The apps' own containers are reported beside it (they are
  the apps, not gitpaas), and so are the engine's helpers for them: a ``containerd-shim-runc-v2``
  per container, and a ``docker-proxy`` per published port (none unless ``GITPAAS_PUBLISH_PORTS=1``:
  the router reaches each web process at its own address).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import time
from pathlib import Path

import docker
from common import scratch_home, summary, write_result
from deploy_speed import STACK, Deployer, DockerFloor, settle
from harness import ApiServer

from gitpaas import labels
from gitpaas.router.nginx import NginxRouter
from gitpaas.router.processes import children

EMAIL = "many@example.com"
PROBE = "switch-probe"


def pss_kib(pid: int) -> int:
    """A process's proportional set size in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def forkserver_pss_kib(home: Path) -> int:
    """PSS of the home's fork server (gitpaas.forkserver) alone, between two commands; 0 if none runs."""
    try:
        return pss_kib(int((home / "forkserver" / "pid").read_text()))
    except (OSError, ValueError):
        return 0


def tree_pss_kib(pid: int) -> int:
    """PSS of a process and every process below it."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        total += pss_kib(current)
        pending.extend(children(current))
    return total


def running_container_ids(home_label: str) -> list[str]:
    """The full ids of the home's running containers."""
    return subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", f"label={labels.HOME}={home_label}"],
                          capture_output=True, text=True, check=True).stdout.split()


def containers_memory_mib(home_label: str) -> float:
    """The memory the home's containers use now (the engine's own figure: cgroup usage)."""
    ids = running_container_ids(home_label)
    if not ids:
        return 0.0
    stats = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *ids],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    units = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "B": 1 / 1024 / 1024}
    total = 0.0
    for line in stats:
        used = line.split("/")[0].strip()
        for unit, factor in units.items():
            if used.endswith(unit):
                total += float(used[: -len(unit)]) * factor
                break
    return round(total, 1)


def engine_helpers_pss_kib(home_label: str) -> dict[str, int]:
    """PSS of the processes the engine runs beside the home's containers: ``docker-proxy``, one per
    published port (a web process's, with ``GITPAAS_PUBLISH_PORTS=1``), and ``containerd-shim-runc-v2``,
    one per container. Counts and KiB, found by the ports and container ids they name."""
    ids = running_container_ids(home_label)
    ports: set[str] = set()
    if ids:
        ports = set(subprocess.run(
            ["docker", "inspect", "--format",
             "{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{.HostPort}} {{end}}{{end}}", *ids],
            capture_output=True, text=True, check=True).stdout.split())
    found = {"proxies": 0, "proxy_kib": 0, "shims": 0, "shim_kib": 0}
    wanted = set(ids)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        name = Path(args[0]).name if args and args[0] else ""
        after = dict(zip(args, args[1:]))
        if name == "docker-proxy" and after.get("-host-port") in ports:
            found["proxies"] += 1
            found["proxy_kib"] += pss_kib(int(entry.name))
        elif name.startswith("containerd-shim") and after.get("-id") in wanted:
            found["shims"] += 1
            found["shim_kib"] += pss_kib(int(entry.name))
    return found


def engine_starts(network: str, label: str, runs: int) -> dict[str, list[float]]:
    """How long the engine takes to start a container (`true` in the stack image), alternately on no
    network, on ``network``, and in the network namespace of a container already running there (as
    a process would start if it joined a holder made ahead, as Kubernetes's pause container is): from
    the start request to its answer (the process is running)."""
    client = docker.from_env()
    key, _, value = label.partition("=")
    took: dict[str, list[float]] = {"none": [], "app_network": [], "joined": []}
    holder = None
    try:
        holder = client.containers.run(STACK, ["sleep", "infinity"], labels={key: value}, network=network,
                                       detach=True, init=True)
        modes = {"none": {"network": "none"}, "app_network": {"network": network},
                 "joined": {"network_mode": f"container:{holder.id}"}}
        for _ in range(runs):
            for mode, how in modes.items():
                container = client.containers.create(STACK, ["true"], labels={key: value}, **how)
                try:
                    started = time.perf_counter()
                    container.start()
                    took[mode].append(round(time.perf_counter() - started, 4))
                    container.wait(timeout=60)
                finally:
                    container.remove(force=True)
    finally:
        if holder is not None:
            holder.remove(force=True)
        client.close()
    return took


class Box:
    """The home with its apps, its router and its API server."""

    def __init__(self, deployer: Deployer, server: ApiServer, floor: DockerFloor) -> None:
        self.deployer = deployer
        self.floor = floor
        self.home = deployer.home
        self.server = server
        self.router = NginxRouter(self.home.settings)
        self.apps: list[str] = []

    def add_app(self, number: int) -> None:
        app = f"app{number:03d}"
        self.home.gitpaas("apps:create", app, "--owner", EMAIL)
        self.deployer.bodies[app] = {}
        self.deployer.push(app, f"{app} first")
        self.apps.append(app)

    def measure(self, redeploys: int, switches: int, rounds: int) -> dict:
        app = self.apps[-1]
        redeploy, phases, floor = [], [], []
        for run in range(redeploys):
            seconds, version = self.deployer.redeploy(app, f"{app} again {run} {time.time()}")
            redeploy.append(round(seconds, 3))
            phases.append(self.deployer.timings(app, version))
            settle()
            floor.append(round(sum(self.floor.build_and_run(f"floor {run} {time.time()}")), 3))
            settle()
        switch = []
        for run in range(switches):
            started = time.perf_counter()
            self.router.set_app(PROBE, [f"{PROBE}.localhost"], [("127.0.0.1", 1 + run % 2)])
            switch.append(round(time.perf_counter() - started, 4))
        reload = []
        for run in range(switches):
            hosts = [f"{PROBE}.localhost"] + ([f"www.{PROBE}.localhost"] if run % 2 == 0 else [])
            started = time.perf_counter()
            self.router.set_app(PROBE, hosts, [("127.0.0.1", 1)])
            reload.append(round(time.perf_counter() - started, 4))
        self.router.remove_app(PROBE)
        settle()
        engine = engine_starts(self.home.settings.app_network(app), self.floor.label, redeploys)
        cli, api = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            listed = self.home.gitpaas("apps", "--json").stdout
            cli.append(round(time.perf_counter() - started, 4))
            started = time.perf_counter()
            response = self.server.call("GET", "/apps")
            api.append(round(time.perf_counter() - started, 4))
            response.raise_for_status()
        count_cli, count_api = len(json.loads(listed)), len(response.json())
        master = self.router._master_pid()
        return {
            "apps": len(self.apps), "app": app, "listed_by_cli": count_cli, "listed_by_api": count_api,
            "redeploy_s": summary(redeploy), "floor_s": summary(floor), "switch_s": summary(switch), "reload_s": summary(reload),
            "start_none_s": summary(engine["none"]), "start_app_network_s": summary(engine["app_network"]),
            "start_joined_s": summary(engine["joined"]), "cli_apps_s": summary(cli),
            "api_apps_s": summary(api),
            "router_pss_kib": tree_pss_kib(master) if master else 0,
            "server_pss_kib": tree_pss_kib(self.server.process.pid),
            "forkserver_pss_kib": forkserver_pss_kib(self.home.path),
            "containers_mib": containers_memory_mib(self.home.settings.home_label),
            "engine_helpers": engine_helpers_pss_kib(self.home.settings.home_label),
            "redeploy_phases_s": {phase: round(statistics.median(p.get(phase, 0.0) for p in phases), 3)
                                  for phase in ("receive", "build", "release", "health", "swap", "total")},
            "samples": {"redeploy_s": redeploy, "floor_s": floor, "switch_s": switch, "reload_s": reload, "cli_apps_s": cli,
                        "api_apps_s": api, "start_none_s": engine["none"], "start_app_network_s": engine["app_network"],
                        "start_joined_s": engine["joined"]},
        }


def ratio(at_n: dict, at_1: dict, key: str) -> float:
    return round(at_n[key]["median"] / at_1[key]["median"], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=3, help="pushes at once while filling the box")
    parser.add_argument("--redeploys", type=int, default=7,
                        help="redeploys at 1 app and at N, each followed by the raw-Docker floor's build and run")
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--time-limit", type=float, default=1500.0,
                        help="stop adding apps after this many seconds (the report says where it stopped)")
    args = parser.parse_args()
    started = time.monotonic()
    with scratch_home() as home:
        deployer = Deployer(home)
        server = ApiServer(home, email=EMAIL)
        floor = DockerFloor()
        try:
            box = Box(deployer, server, floor)
            box.add_app(1)
            box.deployer.push(box.apps[0], "app001 warm-up")  # the engine's build cache and the router, warm
            settle()
            first = box.measure(args.redeploys, args.switches, args.rounds)
            print(f"1 app: redeploy {first['redeploy_s']['median']:.2f} s, switch {first['switch_s']['median']:.3f} s, "
                  f"apps {first['cli_apps_s']['median']:.3f} s, GET /apps {first['api_apps_s']['median']:.3f} s",
                  flush=True)
            stopped_early = False
            number = 2
            with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                while number <= args.apps:
                    if time.monotonic() - started > args.time_limit:
                        stopped_early = True
                        break
                    batch = list(range(number, min(args.apps, number + args.concurrency * 4 - 1) + 1))
                    for done in pool.map(box.add_app, batch):
                        del done
                    number = batch[-1] + 1
                    print(f"{len(box.apps)} apps ({time.monotonic() - started:.0f} s)", flush=True)
            box.apps.sort()
            settle()
            last = box.measure(args.redeploys, args.switches, args.rounds)
        finally:
            server.stop()
            floor.cleanup()
    n = last["apps"]
    per_app = {key: round((last[key] - first[key]) / max(1, n - 1), 1) for key in ("router_pss_kib", "server_pss_kib",
                                                                                   "forkserver_pss_kib")}
    result = {
        "apps_wanted": args.apps, "apps": n, "stopped_early": stopped_early, "concurrency": args.concurrency,
        "first": first, "last": last,
        "ratios": {"redeploy": ratio(last, first, "redeploy_s"), "floor": ratio(last, first, "floor_s"),
                   "redeploy_over_floor": round(ratio(last, first, "redeploy_s") / ratio(last, first, "floor_s"), 3),
                   "switch": ratio(last, first, "switch_s"),
                   "start_none": ratio(last, first, "start_none_s"),
                   "start_app_network": ratio(last, first, "start_app_network_s"),
                   "start_joined": ratio(last, first, "start_joined_s"),
                   "reload": ratio(last, first, "reload_s"),
                   "cli_apps": ratio(last, first, "cli_apps_s"), "api_apps": ratio(last, first, "api_apps_s")},
        "per_app_kib": per_app,
        "containers_mib_per_app": round(last["containers_mib"] / max(1, n), 1),
        "fill_seconds": round(time.monotonic() - started, 1),
    }
    path = write_result("many_apps", result)
    print(f"\n| median | 1 app | {n} apps | {n}/1 |\n|---|---:|---:|---:|")
    for label, key in (("redeploy", "redeploy_s"), ("raw-Docker floor", "floor_s"), ("router switch", "switch_s"), ("router reload", "reload_s"),
                       ("engine start, no network", "start_none_s"), ("engine start, app's network", "start_app_network_s"),
                       ("engine start, joining a running container's network", "start_joined_s"),
                       ("gitpaas apps", "cli_apps_s"),
                       ("GET /apps", "api_apps_s")):
        print(f"| {label} | {first[key]['median']:.3f} s | {last[key]['median']:.3f} s | "
              f"{statistics.median(last['samples'][key]) / statistics.median(first['samples'][key]):.2f} |")
    print(f"| router / server PSS | {first['router_pss_kib']} / {first['server_pss_kib']} KiB | "
          f"{last['router_pss_kib']} / {last['server_pss_kib']} KiB | per app: {per_app} |")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
