"""Shared by the benchmarks: a throwaway gitpaas home (the integration tests' harness), timing and
result files. Every benchmark measures gitpaas and its baseline in the same run and reports ratios."""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: a benchmark's exit status when this machine cannot run it (it prints why): run_all.py reports it
#: as skipped, not failed
SKIPPED = 75
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tests"))

from harness import Home  # noqa: E402


@contextmanager
def scratch_home(**env: str) -> Iterator[Home]:
    """A gitpaas home on its own port, removed (containers, images, router) afterwards."""
    with tempfile.TemporaryDirectory(prefix="gitpaas-bench-") as base:
        home = Home.make(Path(base), **env)
        try:
            yield home
        finally:
            try:
                home.purge()
            except Exception as exc:  # noqa: BLE001 — what was measured is kept; what is left is said
                print(f"warning: the bench home was not purged completely: {exc}", file=sys.stderr)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": len(samples)}


def machine() -> dict:
    import os
    return {"python": platform.python_version(), "system": platform.platform(), "cpus": os.cpu_count(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **data}, indent=2) + "\n")
    return path
