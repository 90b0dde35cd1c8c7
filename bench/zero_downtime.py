"""Zero-downtime under load: requests sent, failed and p99 latency while deploying repeatedly,
then while rolling back, scaling, restarting and changing config (``CHANGES``), against the same
load at rest, in one run.

The load runs without a break from the first window to the last, and every request is counted
in the window it started in (it names that window in its ``X-Request-Id``, which the router
logs, so the router's own figures are split the same way). Windows at rest and windows of
deploys alternate over ``--rounds`` rounds (deploys first in the even rounds, rest first in the
odd ones: D R | R D | D R …), each rest window as long as the deploy window before it: the other
work of a shared machine, which comes and goes, then falls on both alike. A deploy window lasts
until its last deploy's old processes are retired (stopped and removed in the background: work
the deploy causes); the load runs uncounted for a few seconds first and for half a second before
each deploy window. The p99s are of every request of a kind, pooled over the rounds; each
round's own ratio is reported beside.

    .venv/bin/python bench/zero_downtime.py [--rounds 3] [--deploys 5] [--workers 8]
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import threading
import time
from pathlib import Path

import docker
import requests

from common import percentile, scratch_home, write_result

from gitpaas import labels
from gitpaas.scheduler.docker_local.containers import RETIRING


#: what else changes the running processes, one after another under the same load
CHANGES = [("rollback",), ("ps:scale", "web=2"), ("ps:restart",), ("ps:scale", "web=1"), ("config:set", "BENCH=1"),
           ("ps:restart", "web.1")]

#: a request of the load in the router's access log: its $request_time (seconds, to the millisecond)
#: and the request id it was sent with (``zd-WINDOW-N``)
LOGGED = r'"{host}" "GET / HTTP/1\.1" \d{{3}} \d+ (\d+\.\d+) .* zd-([a-z]+[0-9]*)-\d+$'

#: requests sent while nothing is measured (before the first window, between windows)
UNCOUNTED = "gap"
#: seconds of load before anything counts (the app's first requests, the load's connections)
WARM_UP = 3.0
#: … and before each deploy window (requests of the rest window before still in flight)
GAP = 0.5


class Load:
    """``workers`` threads sending GETs through the router as fast as they can (a new connection
    each) until stopped; each request is kept under the window current when it started, with its
    latency in milliseconds as the client saw it. The router's own figure for it (nginx's
    $request_time: from the request's first byte to the answer's last, so without the client's
    own waits for a CPU on this shared machine) is read from its access log at the end."""

    def __init__(self, port: int, host: str, workers: int, access_log: Path) -> None:
        self.port, self.host, self.access_log = port, host, access_log
        self.window = UNCOUNTED
        self.samples: list[tuple[str, float, bool]] = []  # (window, ms, ok)
        self._numbers = itertools.count()
        self._stop = threading.Event()
        self._offset = access_log.stat().st_size if access_log.exists() else 0
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            window = self.window
            started = time.perf_counter()
            try:
                response = requests.get(f"http://127.0.0.1:{self.port}/", timeout=30, headers={
                    "Host": self.host, "Connection": "close", "X-Request-Id": f"zd-{window}-{next(self._numbers)}"})
                ok = 200 <= response.status_code < 300
            except requests.RequestException:
                ok = False
            self.samples.append((window, (time.perf_counter() - started) * 1000, ok))

    def stop(self) -> dict[str, list[float]]:
        """Stop the load; the router's logged milliseconds of each window's requests."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        logged: dict[str, list[float]] = {}
        with open(self.access_log, encoding="utf-8", errors="replace") as log:
            log.seek(self._offset)
            for seconds, window in re.findall(LOGGED.format(host=re.escape(self.host)), log.read(), re.MULTILINE):
                logged.setdefault(window, []).append(float(seconds) * 1000)
        return logged


def stats(load: Load, logged: dict[str, list[float]], windows: set[str]) -> dict:
    """Requests, failures, and p50/p99 (the client's and the router's) of the requests of ``windows``, pooled."""
    latencies = [ms for window, ms, _ok in load.samples if window in windows]
    routed = [ms for window in windows for ms in logged.get(window, [])]
    return {"requests": len(latencies), "failed": sum(1 for window, _ms, ok in load.samples if window in windows and not ok),
            "p50_ms": round(percentile(latencies, 50), 2), "p99_ms": round(percentile(latencies, 99), 2),
            "router_logged": len(routed), "router_p50_ms": round(percentile(routed, 50), 1) if routed else None,
            "router_p99_ms": round(percentile(routed, 99), 1) if routed else None}


def ratio(during: dict, rest: dict, key: str) -> float | None:
    return round(during[key] / rest[key], 2) if rest.get(key) and during.get(key) is not None else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deploys", type=int, default=5, help="deploys in each round's window")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with scratch_home() as home:
        home.create_app("bench")
        assert home.push("bench", "web").returncode == 0
        host = "bench.localhost"
        access_log = home.path / "router" / "logs" / "access.log"
        client = docker.from_env()
        pushed = itertools.count()

        def settled() -> None:
            """Until the app's old processes are retired (stopped and removed)."""
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if not client.containers.list(all=True, ignore_removed=True, filters={
                        **labels.filters({labels.HOME: home.settings.home_label}), "name": RETIRING}):
                    return
                time.sleep(0.05)
            print("warning: the old processes were not retired within 120 s; the window ends anyway", file=sys.stderr)

        def deploys(window: str) -> float:
            load.window = UNCOUNTED
            time.sleep(GAP)
            load.window = window
            started = time.monotonic()
            for _ in range(args.deploys):
                push = home.push("bench", "web", files={"BODY": f"deploy {next(pushed)}"})
                assert push.returncode == 0, push.stderr
            settled()
            load.window = UNCOUNTED
            return time.monotonic() - started

        def rest(window: str, seconds: float) -> float:
            load.window = window
            time.sleep(seconds)
            load.window = UNCOUNTED
            return seconds

        load = Load(home.port, host, args.workers, access_log)
        try:
            time.sleep(WARM_UP)
            seconds: list[float] = []
            rested: list[float] = []
            for number in range(args.rounds):
                if number % 2 == 0:
                    seconds.append(deploys(f"deploys{number}"))
                    rested.append(rest(f"rest{number}", seconds[-1]))
                else:  # (as long as the deploy window before: this round's is not done yet)
                    rested.append(rest(f"rest{number}", seconds[-1]))
                    seconds.append(deploys(f"deploys{number}"))
            load.window = "changes"
            started = time.monotonic()
            for command in CHANGES:
                home.gitpaas(*command, "-a", "bench")
            settled()
            changes_window = time.monotonic() - started
            load.window = UNCOUNTED
        finally:
            logged = load.stop()
    rounds = []
    for number in range(args.rounds):
        during = stats(load, logged, {f"deploys{number}"})
        at_rest = stats(load, logged, {f"rest{number}"})
        rounds.append({"seconds": round(seconds[number], 1), "rest_seconds": round(rested[number], 1), "p99_ratio": ratio(during, at_rest, "p99_ms"),
                       "router_p99_ratio": ratio(during, at_rest, "router_p99_ms"),
                       "at_rest": at_rest, "during_deploys": during})
    during = stats(load, logged, {f"deploys{number}" for number in range(args.rounds)})
    at_rest = stats(load, logged, {f"rest{number}" for number in range(args.rounds)})
    result = {"rounds": args.rounds, "deploys_per_round": args.deploys, "deploys": args.rounds * args.deploys,
              "workers": args.workers, "seconds": round(sum(seconds), 1), "rest_seconds": round(sum(rested), 1),
              "at_rest": at_rest, "during_deploys": during,
              "p99_ratio": ratio(during, at_rest, "p99_ms"), "router_p99_ratio": ratio(during, at_rest, "router_p99_ms"),
              "per_round": rounds,
              "changes": [" ".join(command) for command in CHANGES], "changes_seconds": round(changes_window, 1),
              "during_changes": stats(load, logged, {"changes"})}
    path = write_result("zero_downtime", result)
    print(f"{'':16}{'requests':>10}{'failed':>8}{'p50 ms':>9}{'p99 ms':>9}{'router p50':>12}{'router p99':>12}")
    for name in ("at_rest", "during_deploys", "during_changes"):
        row = result[name]
        print(f"{name:16}{row['requests']:>10}{row['failed']:>8}{row['p50_ms']:>9}{row['p99_ms']:>9}"
              f"{row['router_p50_ms']!s:>12}{row['router_p99_ms']!s:>12}")
    print("per round: " + ", ".join(f"{r['p99_ratio']} ({r['router_p99_ratio']} at the router)" for r in rounds))
    print(f"p99 during deploys / at rest: {result['p99_ratio']} (at the router: {result['router_p99_ratio']})  "
          f"({result['deploys']} deploys in {result['seconds']:.1f} s, {args.rounds} rounds) → {path}")


if __name__ == "__main__":
    main()
