"""The fork server: one resident process per home that has imported gitpaas once, and forks a
child to run each command and each push (what Mercurial's chg does for ``hg``).

Without it every ``gitpaas`` command and every push's hook starts an interpreter and imports
click, rich, Docker's client, the pipeline, nginx's templates and git before doing anything —
about 0.2 s of a config change's second, and most of a ``gitpaas ps``. With it the command line
is a small client (this module's top half, the standard library only):

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
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from gitpaas.home import home_of

#: in the home: the socket, the server's pid, its lock (one server per home), the last start's time
FOLDER = "forkserver"
#: commands that run in their own process: they take over the terminal (a tty of a container, a
#: hidden prompt needs the controlling terminal the child has not got) or are servers themselves
IN_PROCESS = frozenset({"run", "pg:psql", "redis:cli", "login", "server"})
#: a client starts a server at most this often (a server that fails to start is not retried per command)
SPAWN_INTERVAL_SECONDS = 30.0
DEFAULT_IDLE_SECONDS = 1800.0
#: the environment that decides how the interpreter itself works: a child would inherit the
#: server's, so a client whose differs runs on its own
_INTERPRETER_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH", "PYTHONHOME", "PYTHONUTF8", "PYTHONIOENCODING",
                    "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "PYTHONUNBUFFERED")
#: the signals a client passes on to its child
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_MESSAGE_LIMIT = 1 << 20
#: in a child of the server: the pid of its client's parent (git, for the hook), what os.getppid()
#: would have said had the command run in the client's own process
_client_parent: int | None = None


def parent_pid() -> int:
    """The parent of the process this command runs for: its own parent's pid, or its client's."""
    return _client_parent or os.getppid()


def enabled(environ=os.environ) -> bool:
    return (environ.get("GITPAAS_FORKSERVER") or "1").strip().lower() not in ("0", "false", "no", "off")


def folder_of(home: Path) -> Path:
    return home / FOLDER


def _socket_address(folder_fd: int) -> str:
    """The socket's path through an open descriptor of its folder: a home's own path can be longer
    than the 107 bytes a Unix socket address may have."""
    return f"/proc/self/fd/{folder_fd}/socket"


# --- the client ------------------------------------------------------------------------------

def hand_off(entry: str, args: list[str], command: str | None) -> int | None:
    """Run ``entry`` (``cli`` or ``hook``) with ``args`` in a child of the home's fork server; its
    exit status, or None when this process should run it itself."""
    if not enabled() or command in IN_PROCESS:
        return None
    home = home_of(os.environ)
    try:
        request = _request(entry, args)
        conn = _connect(folder_of(home))
    except (OSError, ValueError):
        _start_server(home)  # (none yet, not ours, a standard stream closed, a removed working folder)
        return None
    # Signals that come before the child's pid is known are held, then passed on (or, if the
    # command runs here after all, raised here); the ones this process ignores stay ignored.
    held: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: held.append(signum))
                for signum in FORWARDED if signal.getsignal(signum) is not signal.SIG_IGN}
    try:
        socket.send_fds(conn, [request], [0, 1, 2])
        reply = json.loads(conn.recv(_MESSAGE_LIMIT) or b"{}")
    except (OSError, ValueError):
        reply = {}
    if "pid" not in reply:  # refused (this client, or the code changed: that server is stopping), or gone
        conn.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in held:
            os.kill(os.getpid(), signum)
        if reply.get("stale") or not reply.get("refused"):  # (a new one waits for the old one to finish)
            _start_server(home, now=bool(reply.get("stale")))
        return None
    return _wait(conn, reply["pid"], list(previous), held)


def _connect(folder: Path) -> socket.socket:
    """A connection to the server in ``folder``, once the folder and the server are known to be
    this user's own: the client hands its environment and its terminal to whoever listens."""
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        info = os.fstat(folder_fd)
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise PermissionError("the fork server's folder is not this user's alone")
        conn.connect(_socket_address(folder_fd))
        if peer_uid(conn) != os.getuid():
            raise PermissionError("the fork server runs as another user")
    except BaseException:
        conn.close()
        raise
    finally:
        os.close(folder_fd)
    return conn


def peer_uid(conn: socket.socket) -> int:
    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid


def _request(entry: str, args: list[str]) -> bytes:
    streams = []
    for stream, fd in ((sys.stdin, 0), (sys.stdout, 1), (sys.stderr, 2)):
        os.fstat(fd)  # (raises when closed)
        if stream is None or not hasattr(stream, "encoding"):
            raise ValueError("a standard stream is not a text stream")
        streams.append({"encoding": stream.encoding, "errors": stream.errors,
                        "line_buffering": getattr(stream, "line_buffering", False),
                        "write_through": getattr(stream, "write_through", False)})
    ignored = [int(signum) for signum in FORWARDED if signal.getsignal(signum) is signal.SIG_IGN]
    return json.dumps({
        "entry": entry, "args": args, "cwd": os.getcwd(), "env": dict(os.environ), "umask": _umask(),
        "streams": streams, "path": sys.path, "ppid": os.getppid(), "ignored": ignored,
        "interpreter": _interpreter(os.environ),
    }).encode()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _interpreter(environ) -> dict:
    """What a child inherits from the server rather than from its client: they must be the same.
    (The first entry of ``sys.path`` is the script's folder, or the working folder, unless ``-P``
    left it out as the server's does: the child takes the client's.)"""
    return {"executable": os.path.realpath(sys.executable), "prefix": sys.prefix, "path": sys.path if sys.flags.safe_path else sys.path[1:], "groups": sorted(os.getgroups()),
            "env": {key: environ.get(key) for key in _INTERPRETER_ENV}}


def _wait(conn: socket.socket, pid: int, forwarded: list[int], held: list[int]) -> int:
    """Pass signals on until the child ends; its exit status (a child killed by a signal kills this
    process with the same signal, as a shell expects)."""
    def forward(signum: int, frame=None) -> None:
        try:
            # Ctrl-C and Ctrl-\ reach a terminal's whole foreground group: the child's group too
            # (it leads its own); TERM and HUP were sent to this process alone.
            if signum in (signal.SIGINT, signal.SIGQUIT):
                try:
                    os.killpg(pid, signum)
                    return
                except ProcessLookupError:  # (it does not lead its group yet: it holds the signal till it does)
                    pass
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    for signum in forwarded:
        signal.signal(signum, forward)
    for signum in held:
        forward(signum)
    with conn:
        reply = conn.recv(_MESSAGE_LIMIT)
    if not reply:
        print(" !    gitpaas: the fork server stopped before the command finished; it may still be running",
              file=sys.stderr)
        return 1
    ended = json.loads(reply)
    if ended.get("signal"):
        signal.signal(ended["signal"], signal.SIG_DFL)
        os.kill(os.getpid(), ended["signal"])
    return int(ended["exit"])


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
