"""Zero-downtime under load: requests sent, failed and p99 latency while deploying repeatedly,
then while rolling back, scaling, restarting and changing config (``CHANGES``), against the same
load at rest, in one run.

    .venv/bin/python bench/zero_downtime.py [--deploys 5] [--workers 8]
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from pathlib import Path

import requests

from common import percentile, scratch_home, write_result


#: what else changes the running processes, one after another under the same load
CHANGES = [("rollback",), ("ps:scale", "web=2"), ("ps:restart",), ("ps:scale", "web=1"), ("config:set", "BENCH=1"),
           ("ps:restart", "web.1")]


#: a request of the load in the router's access log: its $request_time (seconds, to the millisecond)
LOGGED = r'"{host}" "GET / HTTP/1\.1" \d{{3}} \d+ (\d+\.\d+) '


class Load:
    """``workers`` threads sending GETs through the router as fast as they can (a new connection
    each), bounded by ``max_requests`` and a time limit; latencies in milliseconds, as the client
    saw them and as the router logged them (nginx's $request_time: from the request's first byte
    to the answer's last, so without the client's own waits for a CPU on this shared machine)."""

    def __init__(self, port: int, host: str, workers: int, access_log: Path, max_requests: int = 200_000) -> None:
        self.port, self.host, self.max_requests, self.access_log = port, host, max_requests, access_log
        self.latencies: list[float] = []
        self.failed = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self) -> None:
        deadline = time.monotonic() + 900
        while not self.stop.is_set() and time.monotonic() < deadline and len(self.latencies) < self.max_requests:
            started = time.perf_counter()
            try:
                response = requests.get(f"http://127.0.0.1:{self.port}/", timeout=30,
                                        headers={"Host": self.host, "Connection": "close"})
                ok = 200 <= response.status_code < 300
            except requests.RequestException:
                ok = False
            self.latencies.append((time.perf_counter() - started) * 1000)
            self.failed += not ok

    def run(self, action) -> dict:
        offset = self.access_log.stat().st_size if self.access_log.exists() else 0
        for thread in self.threads:
            thread.start()
        action()
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        with open(self.access_log, encoding="utf-8", errors="replace") as log:
            log.seek(offset)
            logged = [float(ms) * 1000 for ms in re.findall(LOGGED.format(host=re.escape(self.host)), log.read())]
        return {"requests": len(self.latencies), "failed": self.failed,
                "p50_ms": round(percentile(self.latencies, 50), 2), "p99_ms": round(percentile(self.latencies, 99), 2),
                "router_logged": len(logged), "router_p50_ms": round(percentile(logged, 50), 1) if logged else None,
                "router_p99_ms": round(percentile(logged, 99), 1) if logged else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deploys", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with scratch_home() as home:
        home.create_app("bench")
        assert home.push("bench", "web").returncode == 0
        host = "bench.localhost"
        access_log = home.path / "router" / "logs" / "access.log"
        deploy_seconds = []

        def deploy_repeatedly() -> None:
            for number in range(args.deploys):
                started = time.monotonic()
                push = home.push("bench", "web", files={"BODY": f"deploy {number}"})
                assert push.returncode == 0, push.stderr
                deploy_seconds.append(time.monotonic() - started)

        during = Load(home.port, host, args.workers, access_log).run(deploy_repeatedly)
        window = sum(deploy_seconds)

        def change_repeatedly() -> None:
            for command in CHANGES:
                home.gitpaas(*command, "-a", "bench")

        started = time.monotonic()
        changes = Load(home.port, host, args.workers, access_log).run(change_repeatedly)
        changes_window = time.monotonic() - started
        at_rest = Load(home.port, host, args.workers, access_log).run(lambda: time.sleep(window))
    result = {"deploys": args.deploys, "workers": args.workers, "seconds": round(window, 1),
              "at_rest": at_rest, "during_deploys": during,
              "p99_ratio": round(during["p99_ms"] / at_rest["p99_ms"], 2) if at_rest["p99_ms"] else None,
              "router_p99_ratio": (round(during["router_p99_ms"] / at_rest["router_p99_ms"], 2)
                                   if at_rest["router_p99_ms"] and during["router_p99_ms"] is not None else None),
              "changes": [" ".join(command) for command in CHANGES], "changes_seconds": round(changes_window, 1),
              "during_changes": changes}
    path = write_result("zero_downtime", result)
    print(f"{'':16}{'requests':>10}{'failed':>8}{'p50 ms':>9}{'p99 ms':>9}{'router p50':>12}{'router p99':>12}")
    for name in ("at_rest", "during_deploys", "during_changes"):
        row = result[name]
        print(f"{name:16}{row['requests']:>10}{row['failed']:>8}{row['p50_ms']:>9}{row['p99_ms']:>9}"
              f"{row['router_p50_ms']:>12}{row['router_p99_ms']:>12}")
    print(f"p99 during deploys / at rest: {result['p99_ratio']} (at the router: {result['router_p99_ratio']})  "
          f"({args.deploys} deploys in {window:.1f} s) → {path}")


if __name__ == "__main__":
    main()
