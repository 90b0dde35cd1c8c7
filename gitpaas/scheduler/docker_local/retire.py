"""Retire old processes in the background: ``python -m gitpaas.scheduler.docker_local.retire``.

Started detached by docker-local once the router no longer sends the processes anything, so a
deploy returns as soon as the new release serves. For each container: wait ``drain`` seconds
(requests already in flight finish), SIGTERM (through the init, to the whole process group),
SIGKILL after ``grace`` seconds, remove. Each outcome is one line in ``$GITPAAS_HOME/logs/retire.log``:

    2026-11-22T04:10:00Z example web.1 (v3): exited 0 after SIGTERM in 0.4 s
    2026-11-22T04:10:31Z example worker.1 (v3): killed after the 30 s grace period (exit 137)
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

from gitpaas import labels
from gitpaas.release import now_iso

MODULE = "gitpaas.scheduler.docker_local.retire"


def retire_one(client: docker.DockerClient, container_id: str, grace: float, drain: float) -> str:
    try:
        container = client.containers.get(container_id)
    except NotFound:
        return f"{container_id[:12]}: already gone"
    who = (f"{container.labels.get(labels.APP)} {container.labels.get(labels.DYNO)} "
           f"(v{container.labels.get(labels.RELEASE)})")
    time.sleep(drain)
    started = time.monotonic()
    try:
        container.stop(timeout=int(grace))
        container.reload()
        code = container.attrs["State"]["ExitCode"]
        took = time.monotonic() - started
        if code == 137 and took >= grace:
            outcome = f"killed after the {grace:g} s grace period (exit 137)"
        else:
            outcome = f"exited {code} after SIGTERM in {took:.1f} s"
        container.remove(force=True)
    except NotFound:
        outcome = "already gone"
    except APIError as exc:
        outcome = f"could not be stopped: {exc.explanation or exc}"
    return f"{who}: {outcome}"


def retirers_alive() -> set[str]:
    """The container ids that a running retirer process is retiring (read from their command lines)."""
    owned: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # exited meanwhile
        if MODULE in words:
            owned.update(word for word in words[words.index(MODULE) + 1:] if len(word) == 64)
    return owned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--drain", type=float, default=1.0)
    parser.add_argument("ids", nargs="+")
    args = parser.parse_args(argv)
    client = docker.from_env(timeout=int(args.grace) + 60)
    with ThreadPoolExecutor(max_workers=min(8, len(args.ids))) as pool:
        outcomes = list(pool.map(lambda cid: retire_one(client, cid, args.grace, args.drain), args.ids))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "a", encoding="utf-8") as log:
        for outcome in outcomes:
            log.write(f"{now_iso()} {outcome}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
