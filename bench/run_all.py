"""Every benchmark, one after another, then the report: `make bench` runs this.

    .venv/bin/python bench/run_all.py [--only deploy_speed,history] [--quick]

Each benchmark runs as its own process (its own scratch gitpaas homes, cleaned up by label) and
writes bench/results/NAME.json; then bench/report.py writes summary.json, README.md (the tables,
the machine, each target met or missed) and deploy_phases.png. Run counts are chosen so the whole
run stays near 20 minutes on the project's 2-core machine (about 17 when last run), plus about 20 for
swarm_scale, which needs the swarm rig (scripts/swarm-rig.sh; it is brought up if it is not and left
up; where the machine cannot run a swarm the benchmark is reported as skipped); --quick does
one run of each, a smoke test of the suite rather than a measurement, and puts the results that
were in bench/results/ back afterwards.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time

from common import RESULTS, ROOT, SKIPPED
from report import write_all

#: name → (arguments, arguments with --quick)
BENCHMARKS = {
    "history": (["--runs", "15"], ["--sizes", "100,1000", "--runs", "2"]),
    "deploy_speed": (["--runs", "5", "--parallel-runs", "3"], ["--runs", "1", "--parallel-runs", "1"]),
    "buildpack_cache": (["--runs", "5"], ["--runs", "1"]),
    # 3 rounds of 5 deploys, each beside a window at rest as long
    "zero_downtime": (["--rounds", "3", "--deploys", "5", "--workers", "6"],
                      ["--rounds", "1", "--deploys", "1", "--workers", "2"]),
    "addons": (["--cold-runs", "2", "--runs", "5"], ["--cold-runs", "1", "--runs", "1"]),
    # 200 apps filled 3 pushes at a time (stops adding apps after 25 min and says so)
    "many_apps": (["--apps", "200"], ["--apps", "3", "--redeploys", "1", "--switches", "2", "--rounds", "1"]),
    # needs the swarm rig (scripts/swarm-rig.sh, root; brought up if it is not, left up); stops deploying
    # before 50 apps if the run would pass 20 min (30 apps in 24 min when last run on the 2-core
    # machine); skipped, not failed, where the machine cannot run a swarm
    "swarm_scale": (["--apps", "50"], ["--quick"]),
}
TIME_LIMIT = 1800  # seconds per benchmark: a hung one must not hold the suite forever


def load_summary() -> dict:
    try:
        return json.loads((RESULTS / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmarks to run (default: all): " + ", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="one run of each: checks the suite works")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if args.quick:
        with tempfile.TemporaryDirectory(prefix="gitpaas-bench-results-") as kept:
            shutil.copytree(RESULTS, kept, dirs_exist_ok=True)
            try:
                run(chosen, quick=True)
            finally:
                shutil.rmtree(RESULTS)
                shutil.copytree(kept, RESULTS)
        print("(quick run: the results in bench/results/ were put back as they were)")
    else:
        run(chosen, quick=False)


def run(chosen: list[str], quick: bool) -> None:
    wall: dict[str, float] = {}
    failed: list[str] = []
    skipped: list[str] = []
    for name in chosen:
        arguments = BENCHMARKS[name][1 if quick else 0]
        print(f"\n=== {name} {' '.join(arguments)}", flush=True)
        started = time.monotonic()
        try:
            code = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), *arguments],
                                  cwd=ROOT, timeout=TIME_LIMIT).returncode
        except subprocess.TimeoutExpired:
            code = "timed out"
        wall[name] = round(time.monotonic() - started, 1)
        if code == SKIPPED:
            print(f"=== {name}: skipped (it says why above) in {wall[name]:.0f} s", flush=True)
            skipped.append(name)
            continue
        print(f"=== {name}: {'done' if code == 0 else f'FAILED ({code})'} in {wall[name]:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    previous = load_summary()  # with --only, keep what the other benchmarks took last time
    summary = write_all({"wall_seconds": {**previous.get("wall_seconds", {}), **wall}, "failed": failed,
                         "skipped": skipped, "quick": quick})
    print("\n=== targets (reported, never asserted)")
    for check in summary["targets"]:
        print(f"{'met   ' if check['met'] else 'MISSED'}  {check['target']}: {check['figure']}")
    print(f"\nbench/results/README.md, summary.json{' and deploy_phases.png' if summary['chart'] else ''} written; "
          f"{sum(wall.values()) / 60:.1f} min in all")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
