"""The build cache: a cold buildpack build (cache cleared) against a warm one (dependencies
unchanged, code changed) of the Python sample app with a few real PyPI dependencies, alternately,
in one run.

    .venv/bin/python bench/buildpack_cache.py [--runs 5]

Each run is a real `git push`: `builds:cache:clear` then a push (cold: pip downloads and installs
everything), then a push that changes only code (warm: the cached virtualenv is reused). Three
times per push: compile, the python buildpack's own step ("python: compiled in N s", what the
cache saves); build, what gitpaas reports ("Built … in N s": from the push reaching gitpaas to the
slug image, so the build container and the commit too); push, the whole `git push`, release and
swap included.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from common import ROOT, scratch_home, summary, write_result

APP = "bench"
SAMPLE = ROOT / "tests" / "apps" / "python-pypi"
#: A few real dependencies (about a dozen packages with theirs), pinned so every run installs the same.
REQUIREMENTS = "humanize==4.12.3\nrequests==2.32.3\nflask==3.0.3\n"
BUILT = re.compile(r"Built \S+ \([\d.]+ MB\) in ([\d.]+) s")
PHASES = ("compile", "build", "push")
COMPILED = re.compile(r"python: compiled in ([\d.]+) s")


def push(home, body: str, expect: str) -> tuple[float, float, float]:
    """(compile, build, whole push) seconds; checks the build took the path expected."""
    started = time.monotonic()
    result = home.push(APP, SAMPLE, files={"requirements.txt": REQUIREMENTS, "BODY": body})
    elapsed = time.monotonic() - started
    if result.returncode != 0 or expect not in result.stderr:
        raise SystemExit(f"push {body} did not {expect!r}:\n{result.stderr}")
    return float(COMPILED.search(result.stderr).group(1)), float(BUILT.search(result.stderr).group(1)), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold/warm pairs (default 5)")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {f"{kind}_{what}": [] for kind in ("cold", "warm") for what in PHASES}
    with scratch_home() as home:
        home.create_app(APP)
        for run in range(1, args.runs + 1):
            home.gitpaas("builds:cache:clear", "-a", APP)
            for kind, expect in (("cold", "Installing requirements with pip"), ("warm", "Reusing the cached virtualenv")):
                for what, seconds in zip(PHASES, push(home, f"{kind} {run}", expect)):
                    samples[f"{kind}_{what}"].append(round(seconds, 2))
            print(f"run {run}: " + ", ".join(f"{key} {values[-1]:.1f} s" for key, values in samples.items()), flush=True)
    result = {"requirements": REQUIREMENTS.split(), "runs": args.runs,
              **{f"{key}_s": summary(values) for key, values in samples.items()},
              **{f"warm_over_cold_{what}": round(statistics.median(samples[f"warm_{what}"])
                                                 / statistics.median(samples[f"cold_{what}"]), 3) for what in PHASES},
              "samples_s": samples}
    path = write_result("buildpack_cache", result)
    print(f"\n| {args.runs} runs, median (min–max) | cold | warm | warm/cold |\n|---|---:|---:|---:|")
    for what, label in zip(PHASES, ("compile (the buildpack)", "build (to the slug image)", "whole `git push`")):
        cold, warm = result[f"cold_{what}_s"], result[f"warm_{what}_s"]
        print(f"| {label} | {cold['median']:.1f} s ({cold['min']:.1f}–{cold['max']:.1f}) "
              f"| {warm['median']:.1f} s ({warm['min']:.1f}–{warm['max']:.1f}) | {result[f'warm_over_cold_{what}']:.2f} |")
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
