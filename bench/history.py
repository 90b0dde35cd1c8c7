"""History at scale: listing the latest releases of an app with 100, 1,000 and 10,000 releases on
disk, through the CLI, the store and the HTTP API, in one run. No Docker: the records are written
through gitpaas's own store (as ``pipeline.create_release`` does, minus the image), not deployed.

    .venv/bin/python bench/history.py [--sizes 100,1000,10000] [--runs 15]

Each history is an app in a home of its own (and its own `gitpaas server`); every round lists the
newest 15 of each in turn, so the machine's noise falls on all sizes alike. The baseline is the
smallest history: listing the latest releases should cost the same whatever the history behind
them. `gitpaas --version` is the CLI's start-up floor (it exits before any command runs).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from common import summary, write_result
from harness import GITPAAS, ApiServer, Home

from gitpaas.identity import account_ref
from gitpaas.operations import create_app
from gitpaas.platform import Platform
from gitpaas.release import SUCCEEDED, Release

APP = "history"
LIMIT = 15
EMAIL = "bench@example.com"
RANGE = f"version ..; max={LIMIT}, order=desc"


def fill(platform: Platform, app_name: str, count: int) -> float:
    """Write ``count`` succeeded release records through the store; returns the seconds it took."""
    app = platform.apps.get(app_name)
    releases = platform.apps.releases(app_name)
    image_repository = platform.settings.image_repository(app_name)
    started = time.monotonic()
    for number in range(count):
        slug_id = str(uuid.uuid4())

        def build(version: int) -> Release:
            return Release(
                version=version, description=f"Deploy {number:07x}", app={"id": app.id, "name": app.name},
                user=account_ref(EMAIL),
                slug={"id": slug_id}, artifacts=[{"type": "slug", "id": slug_id}],
                output_stream_url=releases.output_path(version).as_uri(), commit=uuid.uuid4().hex + "00000000",
                image=f"{image_repository}:v{version}", process_types={"web": "python3 /app/server.py"},
                config_vars={"GREETING": "hello"}, build_log=None,
                timings={"receive": 0.1, "build": 1.0, "release": 0.5, "health": 2.1, "swap": 0.3, "total": 4.0},
            )
        release = releases.create(build)
        release.mark(SUCCEEDED)
        release.current = number == count - 1
        releases.save(release)
    app = platform.apps.get(app_name)
    app.current_release = count
    platform.apps.save(app)
    return time.monotonic() - started


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="history lengths (default 100,1000,10000)")
    parser.add_argument("--runs", type=int, default=15, help="rounds over the sizes (default 15)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    samples: dict[str, dict[int, list[float]]] = {kind: {size: [] for size in sizes}
                                                  for kind in ("store", "cli", "api", "cli_startup")}
    with ExitStack() as stack:
        # One home per size: every CLI command first looks for interrupted releases in every app of
        # its home, so an app with a long history would weigh on the listing of a short one.
        homes: dict[int, Home] = {}
        servers: dict[int, ApiServer] = {}
        written = {}
        for size in sizes:
            homes[size] = Home.make(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitpaas-bench-"))))
            servers[size] = ApiServer(homes[size], email=EMAIL)
            stack.callback(servers[size].stop)
            platform = Platform(homes[size].settings)
            create_app(platform, APP, owner=EMAIL)
            written[size] = round(fill(platform, APP, size), 1)
            print(f"{size} records written in {written[size]} s", flush=True)

        def store_list(size: int) -> None:
            found = Platform(homes[size].settings).apps.releases(APP).list(limit=LIMIT)
            assert len(found) == min(LIMIT, size) and found[0].version == size

        def cli_list(size: int) -> None:
            result = subprocess.run([GITPAAS, "releases", "-a", APP, "-n", str(LIMIT)],
                                    capture_output=True, text=True, env=homes[size].env, timeout=120)
            assert result.returncode == 0 and f"v{size} (current)" in result.stdout, result.stderr

        def api_list(size: int) -> None:
            response = servers[size].call("GET", f"/apps/{APP}/releases", headers={"Range": RANGE})
            assert response.status_code == (206 if size > LIMIT else 200), response.text
            body = response.json()
            assert len(body) == min(LIMIT, size) and body[0]["version"] == size

        def cli_startup(size: int) -> None:
            subprocess.run([GITPAAS, "--version"], capture_output=True, env=homes[size].env, timeout=120, check=True)

        for action in (store_list, cli_list, api_list):  # warm up: imports, page cache, the servers
            for size in sizes:
                action(size)
        for run in range(args.runs):
            order = sizes if run % 2 == 0 else sizes[::-1]
            for size in order:
                for kind, action in (("store", store_list), ("cli", cli_list), ("api", api_list),
                                     ("cli_startup", cli_startup)):
                    samples[kind][size].append(round(timed(lambda: action(size)) * 1000, 2))
            print(f"round {run + 1}: " + ", ".join(
                f"{kind} {'/'.join(f'{by_size[s][-1]:.0f}' for s in sizes)} ms" for kind, by_size in samples.items()),
                flush=True)
    smallest, largest = sizes[0], sizes[-1]
    result = {
        "sizes": sizes, "limit": LIMIT, "runs": args.runs, "records_written_s": written,
        **{f"{kind}_ms": {str(size): summary(values) for size, values in by_size.items()}
           for kind, by_size in samples.items()},
        **{f"{kind}_ratio_{largest}_over_{smallest}": round(statistics.median(by_size[largest])
                                                            / statistics.median(by_size[smallest]), 2)
           for kind, by_size in samples.items()},
        "samples_ms": {kind: {str(size): values for size, values in by_size.items()}
                       for kind, by_size in samples.items()},
    }
    path = write_result("history", result)
    print(f"\n| newest {LIMIT}, median (min–max) ms | " + " | ".join(f"{s:,} releases" for s in sizes)
          + f" | {largest:,}/{smallest:,} |\n|---|" + "---:|" * (len(sizes) + 1))
    for kind, label in (("store", "`ReleaseStore.list(limit=15)`"), ("api", "API `GET /apps/APP/releases`"),
                        ("cli", "`gitpaas releases -n 15`"), ("cli_startup", "`gitpaas --version`")):
        cells = [result[f"{kind}_ms"][str(size)] for size in sizes]
        print(f"| {label} | " + " | ".join(f"{c['median']:.1f} ({c['min']:.1f}–{c['max']:.1f})" for c in cells)
              + f" | {result[f'{kind}_ratio_{largest}_over_{smallest}']:.2f} |")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
