"""Retire old processes in the background (a detached process: a fork, or ``python -c ENTRY``).

Started detached by docker-local once the router no longer sends the processes anything, so a
deploy returns as soon as the new release serves. For each container: wait ``drain`` seconds
(requests already in flight finish), SIGTERM (through the init, to the whole process group),
SIGKILL after ``grace`` seconds, remove. Each outcome is one line in ``$GITPAAS_HOME/logs/retire.log``:

    2026-11-22T04:10:00Z example web.1 (v3): exited 0 after SIGTERM in 0.4 s
    2026-11-22T04:10:31Z example worker.1 (v3): killed after the 30 s grace period (exit 137)

Who retires what is on disk: ``$GITPAAS_HOME/retiring/<container id>``, one file per container,
locked (``flock``) by its retirer for as long as it lives and removed when it is done. A file
nobody holds is a retirement a reboot or a kill cut short, which the app's next swap or
``gitpaas boot`` hands on.

The retirer is a fork of the process that swapped (it has imported Docker's client already: a
new interpreter would spend about 0.2 s of CPU importing it again, in the middle of the next
deploy) when that process runs one thread; otherwise, as in the API server, a new interpreter.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

from gitpaas import labels
from gitpaas.dockerutil import negotiated_client
from gitpaas.release import now_iso

MODULE = "gitpaas.scheduler.docker_local.retire"
#: what a new interpreter runs to retire (``python -c ENTRY ARGS``)
ENTRY = f"import sys; from {MODULE} import main; sys.exit(main())"
#: in the home: one file per container being retired, locked by its retirer
FOLDER = "retiring"
#: a claim file another process holds this long is a live retirer's (a look at a stale one holds it
#: for microseconds)
_BUSY_SECONDS = 0.05
#: a forked retirer says it is ready (its session, descriptors and engine client set up) within this
_READY_SECONDS = 5.0


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


def claim(home: Path, ids: list[str]) -> dict[str, int]:
    """Lock a claim file for each container in ``ids`` that no live retirer has: id → its open
    descriptor, which the retirer inherits (the lock lasts as long as a process holds it)."""
    folder = home / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    claimed: dict[str, int] = {}
    try:
        for cid in ids:
            fd = _lock(folder / cid, create=True)
            if fd is not None:
                claimed[cid] = fd
    except BaseException:
        release_claims(claimed)
        raise
    return claimed


def release_claims(claimed: dict[str, int]) -> None:
    """Close this process's descriptors of ``claimed`` (a retirer that inherited them keeps them)."""
    for fd in claimed.values():
        os.close(fd)


def retirers_alive(home: Path) -> set[str]:
    """The container ids that a live retirer holds; the files of retirements cut short are removed."""
    owned: set[str] = set()
    try:
        entries = list((home / FOLDER).iterdir())
    except FileNotFoundError:
        return owned
    for entry in entries:
        fd = _lock(entry, create=False)
        if fd is None:
            if entry.exists():
                owned.add(entry.name)
            continue
        try:
            entry.unlink(missing_ok=True)  # (held: nobody else can be claiming it meanwhile)
        finally:
            os.close(fd)
    return owned


def _lock(path: Path, create: bool) -> int | None:
    """``path`` opened and locked, or None if a live retirer holds it (or, with ``create`` false,
    it is gone). A file removed by the one that held it is opened again: a lock on an unlinked
    file would claim nothing. A claim waits a moment for a lock held briefly (a look at a stale
    file); a look does not wait (held is alive)."""
    deadline = time.monotonic() + (_BUSY_SECONDS if create else 0.0)
    while True:
        try:
            fd = os.open(path, (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY) | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)
            continue
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
        if not create:
            return None


def spawn(home: Path, grace: float, drain: float, claimed: dict[str, int]) -> None:
    """Start a detached retirer for the containers of ``claimed`` (which it inherits); return once
    it runs. Raises OSError if it could not be started (the caller then marks nothing)."""
    argv = ["--home", str(home), "--grace", str(grace), "--drain", str(drain), *claimed]
    if threading.active_count() == 1:  # (a fork of a process with other threads could inherit their locks)
        _fork(argv, keep=set(claimed.values()))
    else:
        # (-c, not -m: the package imports this module first, and runpy would warn of running it twice)
        subprocess.Popen([sys.executable, "-c", ENTRY, *argv], pass_fds=tuple(claimed.values()),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)


def _fork(argv: list[str], keep: set[int]) -> None:
    """Run ``main(argv)`` in a grandchild in its own session, whose every inherited descriptor but
    ``keep`` points at /dev/null (a push's output, an app's lock: none is held on by the retirer);
    return once it says it is ready, else raise OSError."""
    ready_r, ready_w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            _grandchild(argv, keep | {ready_w}, ready_w)
        os.close(ready_w)
        ready_w = -1
        try:
            os.waitpid(pid, 0)  # the middle process exits at once
        except ChildProcessError:
            pass  # (reaped already: a process that ignores SIGCHLD has its children reaped for it)
        readable, _, _ = select.select([ready_r], [], [], _READY_SECONDS)
        if not readable or os.read(ready_r, 1) != b"1":
            raise OSError("the retirer did not start")
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)


def _grandchild(argv: list[str], keep: set[int], ready_w: int) -> None:
    """In the fork: fork again in a session of its own, and retire there. Never returns."""
    code = 70
    try:
        gc.freeze()  # (the parent's objects are never collected here: no finalizer of theirs runs twice)
        os.setsid()
        if os.fork():
            os._exit(0)
        try:
            Path("/proc/self/comm").write_text("gitpaas-retire")  # (what `ps -e` and `top` call it)
        except OSError:
            pass
        for signum in (signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd != null and fd not in keep:
                # (dup2, not close: an object of the parent's that still names the number may close
                # it later; it then closes /dev/null, never a descriptor this process opened since)
                os.dup2(null, fd)

        def ready() -> None:
            os.write(ready_w, b"1")
            os.close(ready_w)

        code = main(argv, ready)
    finally:
        os._exit(code)


def main(argv: list[str] | None = None, ready: Callable[[], None] | None = None) -> int:
    """Retire the containers ``argv`` names; ``ready`` is called once the engine's client is made."""
    parser = argparse.ArgumentParser(prog="gitpaas-retire")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--drain", type=float, default=1.0)
    parser.add_argument("ids", nargs="+")
    args = parser.parse_args(argv)
    client = negotiated_client(timeout=int(args.grace) + 60)
    if ready is not None:
        ready()
    try:
        with ThreadPoolExecutor(max_workers=min(8, len(args.ids))) as pool:
            outcomes = list(pool.map(lambda cid: retire_one(client, cid, args.grace, args.drain), args.ids))
        log = args.home / "logs" / "retire.log"
        try:
            log.parent.mkdir(exist_ok=True)  # (not parents: a home removed meanwhile is not made again)
            with open(log, "a", encoding="utf-8") as out:
                for outcome in outcomes:
                    out.write(f"{now_iso()} {outcome}\n")
        except FileNotFoundError:
            pass
    finally:
        for cid in args.ids:
            (args.home / FOLDER / cid).unlink(missing_ok=True)  # (still locked: nobody claims it meanwhile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
