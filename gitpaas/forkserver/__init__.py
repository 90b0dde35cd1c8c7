"""The fork server: one resident process per home that has imported gitpaas once, and forks a
child to run each command and each push (what Mercurial's chg does for ``hg``).

Without it every ``gitpaas`` command and every push's hook starts an interpreter and imports
click, rich, Docker's client, the pipeline, nginx's templates and git before doing anything —
about 0.2 s of a config change's second, and most of a ``gitpaas ps``. With it the command line
is a small client (``gitpaas.forkserver.client``, the standard library only; a push's hook runs it
as a script without ``site``, see there):

1. it connects to ``$GITPAAS_HOME/forkserver/socket`` and sends its arguments, environment,
   working folder and umask, with its standard input, output and error themselves (the file
   descriptors, over the socket: ``SCM_RIGHTS``);
2. the server forks; the child takes those streams, that environment and folder, and runs the
   command exactly as the client would have (``gitpaas.cli.main.run``, ``gitpaas.hook.run``),
   then exits the normal way; the server tells the client the child's exit status;
3. the client forwards Ctrl-C, SIGTERM, SIGHUP and SIGQUIT to the child meanwhile, and exits
   with the child's status. Killed outright (SIGKILL), it takes its child with it.

No server, or one that cannot serve this client as it would run here (another interpreter, its
``sys.path``, locale or groups; or gitpaas's code changed since it started), and the command runs
in the client's own process, as before; the client then starts a server in the background for
the next command. Commands that take over the terminal (``run``, ``pg:psql``, ``login``'s hidden
prompt) and ``server`` always run in their own process. ``GITPAAS_FORKSERVER=0`` turns it off.

The server: only the same user may connect (the socket is 0600 in a 0700 folder, and the peer's
uid is checked). It stops after ``GITPAAS_FORKSERVER_IDLE`` seconds without a command (30 minutes),
when its home is removed, on SIGTERM, or when gitpaas's code changes; it finishes its running
children first. What it did is in ``logs/forkserver.log``.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path

from gitpaas.forkserver.client import FOLDER, FORWARDED, STALE_ENV, enabled, run  # noqa: F401 — FORWARDED: the server's and the tests'
from gitpaas.home import home_of

#: commands that run in their own process: they take over the terminal (a tty of a container, a
#: hidden prompt needs the controlling terminal the child has not got) or are servers themselves
IN_PROCESS = frozenset({"run", "pg:psql", "redis:cli", "login", "server"})
#: a client starts a server at most this often (a server that fails to start is not retried per command)
SPAWN_INTERVAL_SECONDS = 30.0
DEFAULT_IDLE_SECONDS = 1800.0
#: in a child of the server: the pid of its client's parent (git, for the hook), what os.getppid()
#: would have said had the command run in the client's own process
_client_parent: int | None = None


def parent_pid() -> int:
    """The parent of the process this command runs for: its own parent's pid, or its client's."""
    return _client_parent or os.getppid()


def folder_of(home: Path) -> Path:
    return home / FOLDER


# --- the client ------------------------------------------------------------------------------

def hand_off(entry: str, args: list[str], command: str | None) -> int | None:
    """Run ``entry`` (``cli`` or ``hook``) with ``args`` in a child of the home's fork server; its
    exit status, or None when this process should run it itself (and a server is started for the
    next command when there is none, or the one there is stops because gitpaas's code changed)."""
    stale = os.environ.pop(STALE_ENV, None)  # (the hook's script heard it before it became this module)
    if not enabled() or command in IN_PROCESS:
        return None
    home = home_of(os.environ)
    status, reply = run(str(folder_of(home)), entry, args)
    if status is None and (stale or reply.get("stale") or not reply.get("refused")):
        _start_server(home, now=bool(stale or reply.get("stale")))  # (a new one waits for the old one to finish)
    return status


def _start_server(home: Path, now: bool = False) -> None:
    """Start the home's fork server in the background (not more often than SPAWN_INTERVAL_SECONDS);
    only for a home that exists: a command never creates one by being run."""
    if not enabled() or not (home / "home.json").is_file():
        return
    folder = folder_of(home)
    stamp = folder / "started"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if not now and time.time() - stamp.stat().st_mtime < SPAWN_INTERVAL_SECONDS:
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    import subprocess  # (only here: every other command's client does without it)
    try:
        stamp.touch()
        subprocess.Popen([sys.executable, "-P", "-m", "gitpaas.forkserver.server", str(home)], cwd="/",
                         env={**os.environ, "GITPAAS_HOME": str(home)}, start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        pass


def stop(home: Path, timeout: float = 10.0) -> bool:
    """Ask the home's fork server to stop (SIGTERM: it finishes its children first) and wait for
    it; True if one was running. Its pid is believed only while it holds the lock."""
    folder = folder_of(home)
    try:
        lock_fd = os.open(folder / "lock", os.O_RDWR)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False  # (no server holds it: a pid file left is a crashed one's)
        except BlockingIOError:
            pass
        try:
            pid = int((folder / "pid").read_text())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True  # (the server let go of it: it has exited)
            except BlockingIOError:
                time.sleep(0.02)
        return True
    finally:
        os.close(lock_fd)
