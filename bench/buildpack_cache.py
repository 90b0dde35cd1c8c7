"""The build cache: a cold buildpack build (cache cleared) against a warm one (dependencies
unchanged, code changed), alternately, in one run, for two dependency-heavy apps:

- python: the Django sample (tests/apps/django-whitenoise) with Django, psycopg, Django REST
  framework, Pillow, Celery, requests, WhiteNoise, gunicorn (about 30 packages with theirs);
- node: bench/apps/node-express, Express and a few everyday dependencies with TypeScript and ESLint
  for development, locked by npm (package-lock.json: about 190 packages).

    .venv/bin/python bench/buildpack_cache.py [--runs 5] [--apps python,node]

Each run is a real `git push`: `builds:cache:clear` then a push (cold: pip or npm downloads and
installs everything), then a push that changes only code (warm: the build stands on the previous
slug, whose virtualenv or node_modules stays in place). Three times per push: compile, the buildpack's own step ("python:
compiled in N s", what the cache saves); build, what gitpaas reports ("Built … in N s": from the
push reaching gitpaas to the slug image, so the build container and the commit too); push, the
whole `git push`, release and swap included.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import ROOT, scratch_home, summary, write_result


@dataclass(frozen=True)
class Sample:
    label: str
    source: Path
    cold: str  # what a cold build says it does
    warm: str  # what a warm one says
    files: dict[str, str] = field(default_factory=dict)


#: pinned, so every run installs the same
DJANGO_REQUIREMENTS = ("Django==6.1.3\nwhitenoise==6.12.0\ngunicorn==27.0.1\ndj-database-url==3.1.2\n"
                       "psycopg[binary]==3.3.9\ndjangorestframework==3.18.3\npillow==13.0.0\ncelery==5.7.0\n"
                       "requests==2.32.3\n")
SAMPLES = {
    "python": Sample("Django + psycopg + DRF + Pillow + Celery (pip)", ROOT / "tests" / "apps" / "django-whitenoise",
                     "Installing requirements with pip", "Reusing the virtualenv of the previous build",
                     {"requirements.txt": DJANGO_REQUIREMENTS}),
    "node": Sample("Express + lodash + pino + axios, TypeScript and ESLint (npm ci, lockfile)",
                   ROOT / "bench" / "apps" / "node-express", "Installing dependencies with npm ci",
                   "Reusing node_modules of the previous build"),
}
BUILT = re.compile(r"Built \S+ \([\d.]+ MB\) in ([\d.]+) s")
PHASES = ("compile", "build", "push")
COMPILED = re.compile(r"\w+: compiled in ([\d.]+) s")


def push(home, app: str, sample: Sample, body: str, expect: str) -> tuple[float, float, float]:
    """(compile, build, whole push) seconds; checks the build took the path expected."""
    started = time.monotonic()
    result = home.push(app, sample.source, files={**sample.files, "BODY": body})
    elapsed = time.monotonic() - started
    if result.returncode != 0 or expect not in result.stderr:
        raise SystemExit(f"push {body} of {app} did not {expect!r}:\n{result.stderr}")
    return float(COMPILED.search(result.stderr).group(1)), float(BUILT.search(result.stderr).group(1)), elapsed


def ratios(samples: dict[str, list[float]]) -> dict[str, float]:
    return {f"warm_over_cold_{what}": round(statistics.median(samples[f"warm_{what}"])
                                            / statistics.median(samples[f"cold_{what}"]), 3) for what in PHASES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold/warm pairs of each app (default 5)")
    parser.add_argument("--apps", default=",".join(SAMPLES), help="which samples (default: python,node)")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.apps.split(",") if name.strip()]
    samples = {app: {f"{kind}_{what}": [] for kind in ("cold", "warm") for what in PHASES} for app in chosen}
    with scratch_home() as home:
        for app in chosen:
            home.create_app(app)
        for run in range(1, args.runs + 1):
            for app in chosen if run % 2 else chosen[::-1]:
                sample = SAMPLES[app]
                home.gitpaas("builds:cache:clear", "-a", app)
                for kind, expect in (("cold", sample.cold), ("warm", sample.warm)):
                    for what, seconds in zip(PHASES, push(home, app, sample, f"{kind} {run}", expect)):
                        samples[app][f"{kind}_{what}"].append(round(seconds, 2))
                print(f"run {run} {app}: " + ", ".join(f"{key} {values[-1]:.1f} s"
                                                      for key, values in samples[app].items()), flush=True)
    result = {"runs": args.runs, "apps": {
        app: {"label": SAMPLES[app].label, "files": SAMPLES[app].files,
              **{f"{key}_s": summary(values) for key, values in samples[app].items()},
              **ratios(samples[app]), "samples_s": samples[app]} for app in chosen}}
    path = write_result("buildpack_cache", result)
    for app, figures in result["apps"].items():
        print(f"\n{app}: {figures['label']}\n| {args.runs} runs, median (min–max) | cold | warm | warm/cold |"
              "\n|---|---:|---:|---:|")
        for what, label in zip(PHASES, ("compile (the buildpack)", "build (to the slug image)", "whole `git push`")):
            cold, warm = figures[f"cold_{what}_s"], figures[f"warm_{what}_s"]
            print(f"| {label} | {cold['median']:.1f} s ({cold['min']:.1f}–{cold['max']:.1f}) "
                  f"| {warm['median']:.1f} s ({warm['min']:.1f}–{warm['max']:.1f}) | {figures[f'warm_over_cold_{what}']:.2f} |")
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
