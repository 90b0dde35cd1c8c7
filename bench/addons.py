"""Add-ons: provisioning PostgreSQL and Redis, cold (the service image built from Debian's packages)
and warm (the image there), and a release whose migration runs against the add-on — each beside
the same steps done by hand with `docker`, alternately, in one run.

    .venv/bin/python bench/addons.py [--cold-runs 2] [--runs 5]

- Provision, gitpaas: `gitpaas addons:create SERVICE -a bench` until it returns, which is when the
  add-on accepts connections (the app has no release yet, so no release is made). Cold: the image
  was removed first, so gitpaas builds it. By hand: `docker build` of the same recipe (cold:
  `--no-cache`), `docker volume create`, `docker run -d` on a network, then `docker exec` of the
  same readiness check until it succeeds.
- Release with a migration, gitpaas: `gitpaas releases:retry -a bench` of tests/apps/python-postgres
  (its release phase, `python migrate.py`, runs Alembic against DATABASE_URL; then the new web
  process is started, checked and routed to, the old one retired) until it returns. By hand:
  `docker run --rm` of the same slug running `python migrate.py` on the add-on's network, then
  `docker run -d` of the web process until it answers with the rows it reads.

A cold measurement needs the add-on image unused: when a container of another home still uses it
(so its layers would be reused), the benchmark says so and stops. Everything the by-hand side
creates carries ``gitpaas.bench=<run id>`` and is removed by that label at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from common import ROOT, scratch_home, summary, write_result
from report import addons_table
from deploy_speed import wait_for_answer
from harness import free_port

from gitpaas.addons import runtime
from gitpaas.addons.store import AddonStore
from gitpaas.build.addon_images import ADDON_STACK, LABEL, RECIPES
from gitpaas.settings import Settings

APP = "bench"
SAMPLE = ROOT / "tests" / "apps" / "python-postgres"
STACK = Settings.from_env({"GITPAAS_HOME": "/nonexistent"}).stack_image(ADDON_STACK)
SERVICES = ("postgresql", "redis")
READY_LIMIT = 120.0


def docker(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=900,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def remove_image(service: str) -> None:
    """Remove the add-on image so the next provisioning builds it from nothing: the image, and any
    untagged add-on image an earlier recipe left (its layers would be the build's cache); refuse
    when a container uses one."""
    image = RECIPES[service].image
    stale = docker("images", "--filter", f"label={LABEL}", "--filter", "dangling=true", "-q", check=False).stdout.split()
    for candidate in (image, *stale):
        users = docker("ps", "-a", "--filter", f"ancestor={candidate}", "--format", "{{.Names}}",
                       check=False).stdout.split()
        if users:
            raise SystemExit(f"a cold measurement needs {candidate} unused, but these containers use it: "
                             f"{', '.join(users)}")
    docker("rmi", image, *stale, check=False)


class ByHand:
    """The same steps with the docker CLI: build the recipe, make a volume, run, wait until ready."""

    def __init__(self) -> None:
        self.label = f"gitpaas.bench=addons-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.network = f"bench-addons-{uuid.uuid4().hex[:8]}"
        self.folder = Path(tempfile.mkdtemp(prefix="gitpaas-bench-addons-"))
        docker("network", "create", "--label", self.label, self.network)

    def provision(self, service: str, cold: bool) -> float:
        recipe = RECIPES[service]
        context = self.folder / service
        context.mkdir(exist_ok=True)
        (context / "Dockerfile").write_text(recipe.dockerfile(STACK))
        (context / "entrypoint").write_text(recipe.entrypoint)
        (context / "entrypoint").chmod(0o755)
        tag = f"gitpaas-bench/addon-{service}:{self.label.rsplit('-', 1)[-1]}"
        password = secrets.token_urlsafe(16)
        env = ({"POSTGRES_USER": "app", "POSTGRES_PASSWORD": password, "POSTGRES_DB": "app"} if service == "postgresql"
               else {"REDIS_PASSWORD": password})
        readiness, exec_env = runtime.readiness(service, {"user": "app", "database": "app", "password": password})
        name = f"bench-{service}-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        # the classic builder, as gitpaas's docker-py build uses
        docker("build", "-q", *(["--no-cache"] if cold else []), "--label", self.label, "-t", tag, str(context),
               env={"DOCKER_BUILDKIT": "0"})
        docker("volume", "create", "--label", self.label, name)
        docker("run", "-d", "--name", name, "--label", self.label, "--network", self.network,
               "-v", f"{name}:{recipe.data_dir}", *[a for k, v in env.items() for a in ("-e", f"{k}={v}")], tag)
        deadline = time.monotonic() + READY_LIMIT
        passed = [arg for key in exec_env for arg in ("-e", key)]
        while docker("exec", *passed, name, *readiness, check=False, env=exec_env).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} never became ready")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        docker("rm", "-f", "-v", name)
        docker("volume", "rm", name, check=False)
        if cold:
            docker("rmi", tag, check=False)
        return elapsed

    def release(self, image: str, network: str, database_url: str) -> float:
        """The release command in a throwaway container, then the web process until it answers."""
        port = free_port()
        env = ["-e", f"DATABASE_URL={database_url}", "-e", "PORT=5000"]
        started = time.monotonic()
        docker("run", "--rm", "--label", self.label, "--network", network, *env, image, "python", "migrate.py")
        web = docker("run", "-d", "--label", self.label, "--network", network, "-p", f"127.0.0.1:{port}:5000", *env,
                     image, "python", "app.py").stdout.strip()
        try:
            answered = wait_for_answer(port, "/", "schema 0001")
        finally:
            docker("rm", "-f", web)
        return answered - started

    def cleanup(self) -> None:
        for listing, remover in ((["ps", "-aq"], ["rm", "-f", "-v"]), (["volume", "ls", "-q"], ["volume", "rm", "-f"]),
                                 (["images", "-q"], ["rmi", "-f"])):
            ids = docker(*listing, "--filter", f"label={self.label}", check=False).stdout.split()
            if ids:
                docker(*remover, *sorted(set(ids)), check=False)
        docker("network", "rm", self.network, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def provision(home, service: str, cold: bool = False) -> float:
    started = time.monotonic()
    created = home.gitpaas("addons:create", service, "-a", APP)
    elapsed = time.monotonic() - started
    if cold != ("Building the" in created.stdout):
        raise SystemExit(f"addons:create {service} was meant to run {'cold' if cold else 'warm'}:\n{created.stdout}")
    for addon in AddonStore(home.settings).of_app(APP):  # destroyed at once: the next run starts clean
        home.gitpaas("addons:destroy", addon.name, "-a", APP, "--confirm", APP)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-runs", type=int, default=2, help="cold provisioning pairs per service (default 2)")
    parser.add_argument("--runs", type=int, default=5, help="warm provisioning and release pairs (default 5)")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        samples.setdefault(name, []).append(round(seconds, 3))

    by_hand = ByHand()
    try:
        with scratch_home() as home:
            home.create_app(APP)
            for service in SERVICES:
                for run in range(args.cold_runs):
                    sides = [("gitpaas", lambda: (remove_image(service), provision(home, service, cold=True))[1]),
                             ("docker", lambda: by_hand.provision(service, cold=True))]
                    for side, measure in sides if run % 2 == 0 else sides[::-1]:
                        add(f"{service}_cold_{side}", measure())
                for run in range(args.runs):
                    sides = [("gitpaas", lambda: provision(home, service)),
                             ("docker", lambda: by_hand.provision(service, cold=False))]
                    for side, measure in sides if run % 2 == 0 else sides[::-1]:
                        add(f"{service}_warm_{side}", measure())
                print(", ".join(f"{key} {statistics.median(values):.1f} s" for key, values in samples.items()
                                if key.startswith(service)), flush=True)

            home.gitpaas("addons:create", "postgresql", "-a", APP)
            pushed = home.push(APP, SAMPLE)
            if pushed.returncode != 0:
                raise SystemExit(f"the sample app did not deploy:\n{pushed.stderr}")
            url = home.gitpaas("config:get", "DATABASE_URL", "-a", APP).stdout.strip()
            slug = f"{home.settings.image_repository(APP)}:v1"
            for run in range(args.runs):
                sides = [("gitpaas", lambda: _timed(home.gitpaas, "releases:retry", "-a", APP)),
                         ("docker", lambda: by_hand.release(slug, home.settings.app_network(APP), url))]
                for side, measure in sides if run % 2 == 0 else sides[::-1]:
                    add(f"release_{side}", measure())
                time.sleep(2)  # the old process's retirement is done before the next measurement
    finally:
        by_hand.cleanup()

    rows = [*(f"{service}_{kind}" for service in SERVICES for kind in ("cold", "warm")), "release"]
    result = {"cold_runs": args.cold_runs, "runs": args.runs,
              **{f"{key}_s": summary(values) for key, values in samples.items()},
              **{f"{row}_ratio": round(statistics.median(samples[f"{row}_gitpaas"])
                                       / statistics.median(samples[f"{row}_docker"]), 3) for row in rows},
              "samples_s": samples}
    path = write_result("addons", result)
    print(addons_table(result))
    print(f"\nwritten to {path.relative_to(ROOT)}")


def _timed(call, *args: str) -> float:
    started = time.monotonic()
    call(*args)
    return time.monotonic() - started


if __name__ == "__main__":
    main()
