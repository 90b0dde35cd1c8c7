"""The fork server itself: ``python -m gitpaas.forkserver.server HOME`` (a client starts it; see
the package's docstring for what it is for and how a client talks to it).

It imports what gitpaas's commands and hook use (``PRELOAD``), then waits on its socket. For each
client it forks; the child becomes that client's command (``_become``) and returns from
``Server.run`` to run it and end as the client's own process would have (``end``); the server
itself only ever imports, forks and reaps, in one thread, so a fork copies nothing half-done.
"""

from __future__ import annotations

import atexit
import fcntl
import gc
import importlib
import io
import json
import os
import selectors
import signal
import site
import socket
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from gitpaas import forkserver, hook
from gitpaas.build import buildkit
from gitpaas.cli import main as cli_main
from gitpaas.cli.commands import MODULES
from gitpaas.forkserver import DEFAULT_IDLE_SECONDS, folder_of
from gitpaas.forkserver.client import _MESSAGE_LIMIT, interpreter, peer_uid, socket_address
from gitpaas.router import render

#: besides every command module (``gitpaas.cli.commands.MODULES``): the hook, and what commands
#: import on first use (``gitpaas.lazy`` and the imports inside functions the layers test lists)
PRELOAD = (
    "gitpaas.cli.group", "gitpaas.cli.main", "gitpaas.cli.common", "gitpaas.hook", "gitpaas.receive",
    "gitpaas.platform", "gitpaas.settings", "gitpaas.locks", "gitpaas.output", "gitpaas.operations",
    "gitpaas.formation", "gitpaas.events", "gitpaas.pipelines", "gitpaas.reviewapps", "gitpaas.accounts",
    "gitpaas.addons.backups", "gitpaas.addons.lifecycle", "gitpaas.addons.plans", "gitpaas.addons.store",
    "gitpaas.notify.drains", "gitpaas.notify.store",
    "gitpaas.dockerutil", "gitpaas.scheduler.docker_local", "gitpaas.scheduler.swarm", "gitpaas.build.slugs",
    "gitpaas.build.buildpack", "gitpaas.build.dockerfile", "gitpaas.build.stack", "gitpaas.router.nginx",
    "gitpaas.client.remote", "gitpaas.client.api", "filelock", "rich.console", "rich.table",
)
#: how often the server looks whether its home is still there and its code unchanged, when idle
_LOOK_SECONDS = 2.0
#: a client sends its request as soon as it connects; one that does not holds the others up this long
_REQUEST_TIMEOUT_SECONDS = 2.0


def preload(log=lambda line: None) -> int:
    """Import every module a command or a push may need, and make what they would otherwise make
    again in every child (``WARM``); how many modules are loaded then."""
    for name in (*PRELOAD, *MODULES):
        importlib.import_module(name)
    for step in WARM:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 — a head start, not a need: each child then makes its own
            log(f"could not make ahead what each command makes ({type(exc).__name__}: {exc}); each makes its own")
    return len(sys.modules)


def _load_strptime() -> None:
    datetime.strptime("2026-12-03T06:00:00", "%Y-%m-%dT%H:%M:%S")


#: what each push's child made for itself, made once in the server (``preload``), each on its own:
#: the class of BuildKit's status messages (it imports protobuf: 12–18 ms of a push here), the
#: router's templates compiled (jinja2: 10–17 ms of each switch), and the module behind
#: ``datetime.strptime``, loaded on its first call
WARM = (buildkit.status_message, render.compile_templates, _load_strptime)


def code_fingerprint() -> list[tuple[str, int, int]]:
    """What a change of gitpaas's code (an upgrade, an edit of a checkout) or of the installed
    packages changes: gitpaas's files and the site-packages folders."""
    root = Path(__file__).resolve().parents[1]
    found = []
    for folder, folders, files in os.walk(root):
        folders[:] = sorted(name for name in folders if name != "__pycache__")
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                info = os.stat(path)
            except FileNotFoundError:
                continue
            found.append((path, info.st_mtime_ns, info.st_size))
    for entry in sys.path:
        if entry.endswith("-packages") and os.path.isdir(entry):
            info = os.stat(entry)
            found.append((entry, info.st_mtime_ns, 0))
    return found


@dataclass
class Command:
    """What a child runs, once it has become its client's process."""
    entry: str
    args: list[str]

    def run(self) -> int:
        # The child is its client's now: the signals held since the fork (``_accept``) reach it. A
        # Ctrl-C among them ends it as it would have ended the client before the command began: by
        # SIGINT, without a traceback of where it stood.
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, forkserver.FORWARDED)
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
            os._exit(128 + signal.SIGINT)  # (not reached: the signal ends it)
        return (hook.run if self.entry == "hook" else cli_main.run)(self.args)


class Server:
    def __init__(self, home: Path, idle_seconds: float) -> None:
        self.home = home
        self.folder = folder_of(home)
        self.idle_seconds = idle_seconds
        self.stopping: str | None = None
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd → (pid, its client's connection)
        self.served = 0

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> Command | None:
        """Serve until told to stop; None in the server, the command to run in a child."""
        if not (self.home / "home.json").is_file():
            return None  # (a home removed meanwhile is not made again)
        self.folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.lock_fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        if not self._lock():
            return None
        try:
            os.close(os.pidfd_open(os.getpid()))
        except OSError as exc:  # (Linux before 5.3): the commands run in their own processes
            self.log(f"cannot start: this kernel has no pidfd_open ({exc})")
            return None
        began = time.monotonic()
        self.fingerprint = code_fingerprint()  # (before loading: code changed while loading is seen)
        modules = preload(self.log)
        self.interpreter = interpreter(os.environ)
        gc.freeze()  # (what is loaded now stays shared with every child: the collector leaves it alone)
        self.folder_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        self.listener = self._listen()
        (self.folder / "pid").write_text(f"{os.getpid()}\n")
        self.log(f"started (pid {os.getpid()}): {modules} modules loaded in {time.monotonic() - began:.2f} s")
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, frame: self._stop(f"stopped by {signal.Signals(signum).name}"))
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, ("accept", None))
        last_active = last_look = time.monotonic()
        while not (self.stopping and not self.children):
            if self.stopping and self.listener is not None:
                self._close_listener()
            for key, _ in self.selector.select(timeout=1.0):
                kind, data = key.data
                try:
                    if kind == "accept":
                        command = self._accept()
                        if command is not None:
                            return command  # (in the child)
                    elif kind == "child":
                        self._reap(key.fileobj)
                    else:
                        self._client_gone(data)
                except Exception:  # noqa: BLE001 — one client's trouble: logged, the server goes on
                    self.log("unexpected error, the server goes on:\n" + traceback.format_exc().rstrip())
                last_active = time.monotonic()
            now = time.monotonic()
            if not self.children and now - last_active > self.idle_seconds:
                self._stop(f"stopped after {self.idle_seconds:g} s without a command")
            if now - last_look > _LOOK_SECONDS:
                last_look = now
                if not (self.home / "home.json").is_file():
                    self._stop("stopped: its home is gone")
                elif not self.children and code_fingerprint() != self.fingerprint:
                    self._stop("stopped: gitpaas's code changed")
        self._close_listener()
        try:
            os.unlink("pid", dir_fd=self.folder_fd)
        except FileNotFoundError:
            pass
        self.log(f"{self.stopping}; it ran {self.served} command(s)")
        return None

    def _lock(self) -> bool:
        """One server per home. A server still finishing its children after it stopped listening
        (its code changed) is waited for, a minute at most; one that is serving is left to serve."""
        deadline = time.monotonic() + 60
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if (self.folder / "socket").exists() or time.monotonic() > deadline:
                    return False
                time.sleep(0.2)

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            os.unlink("socket", dir_fd=self.folder_fd)  # (a crashed server's: the lock says none runs)
        except FileNotFoundError:
            pass
        mask = os.umask(0o177)
        try:
            listener.bind(socket_address(self.folder_fd))
        finally:
            os.umask(mask)
        listener.listen(64)
        self.socket_inode = os.stat("socket", dir_fd=self.folder_fd).st_ino
        return listener

    def _close_listener(self) -> None:
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        self.listener.close()
        self.listener = None
        try:
            if os.stat("socket", dir_fd=self.folder_fd).st_ino == self.socket_inode:
                os.unlink("socket", dir_fd=self.folder_fd)
        except FileNotFoundError:
            pass

    def _stop(self, reason: str) -> None:
        self.stopping = self.stopping or reason

    # --- one client --------------------------------------------------------------------------
    def _accept(self) -> Command | None:
        try:
            conn, _ = self.listener.accept()
        except OSError as exc:  # (out of file descriptors, say): that client runs on its own
            self.log(f"could not accept a client: {exc}")
            time.sleep(0.1)
            return None
        fds: list[int] = []
        try:
            if peer_uid(conn) != os.getuid():
                raise ValueError("another user")
            conn.settimeout(_REQUEST_TIMEOUT_SECONDS)
            message, fds, _, _ = socket.recv_fds(conn, _MESSAGE_LIMIT, 3)
            request = json.loads(message)
            if not isinstance(request, dict) or len(fds) != 3 or request.get("entry") not in ("cli", "hook"):
                raise ValueError("not a request")
            refusal = self._refusal(request)
            if refusal:
                raise ValueError(refusal)
            # The signals a client passes on wait in the child until it is the client's (they are
            # let through as its command starts, ``Command.run``): one that came sooner would
            # run the server's handlers in it, or cut short its taking the client's place.
            signal.pthread_sigmask(signal.SIG_BLOCK, forkserver.FORWARDED)
            try:
                pid = os.fork()
            except OSError:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, forkserver.FORWARDED)
                raise
            if pid:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, forkserver.FORWARDED)
        except (OSError, ValueError) as exc:
            reason = exc.args[0] if isinstance(exc, ValueError) and exc.args else {"refused": str(exc)}
            try:
                conn.send(json.dumps(reason if isinstance(reason, dict) else {"refused": reason}).encode())
            except OSError:
                pass
            for fd in fds:
                os.close(fd)
            conn.close()
            return None
        if pid == 0:
            try:
                return self._become(conn, fds, request)
            except BaseException:  # noqa: BLE001 — never back into the server's loop
                traceback.print_exc()
                os._exit(70)
        # The pid first: once the client has it, it never runs the command itself as well.
        try:
            conn.setblocking(True)
            conn.send(json.dumps({"pid": pid}).encode())
            told = True
        except OSError:
            told = False
        for fd in fds:
            os.close(fd)
        self.served += 1
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, conn)
        self.selector.register(pidfd, selectors.EVENT_READ, ("child", None))
        conn.setblocking(False)
        if told:
            self.selector.register(conn, selectors.EVENT_READ, ("client", pid))
        else:
            self._client_gone(pid)
        return None

    def _refusal(self, request: dict) -> dict | None:
        if not isinstance(request.get("args"), list) or not isinstance(request.get("env"), dict):
            return {"refused": "not a request"}
        theirs = request.get("interpreter")
        if not isinstance(theirs, dict):
            return {"refused": "not a request"}
        mine = self._as_seen_by(theirs)
        if theirs != mine:
            differs = sorted(key for key in mine if theirs.get(key) != mine[key])
            env = sorted(key for key, value in mine["env"].items() if (theirs.get("env") or {}).get(key) != value)
            self.log(f"a client ran on its own: its {', '.join(differs)} differ{'s' if len(differs) == 1 else ''}"
                     + (f" ({', '.join(env)})" if env else ""))
            return {"refused": "another interpreter, path, locale or groups than the server's"}
        if code_fingerprint() != self.fingerprint:
            self._stop("stopped: gitpaas's code changed")
            self._close_listener()  # (before the client hears it and starts the next server)
            return {"refused": "gitpaas's code changed since the server started", "stale": True}
        return None

    def _as_seen_by(self, theirs: dict) -> dict:
        """The server's interpreter as a client of its kind would see it: whole, or for a client
        run without ``site`` (the hook's ``python -S``: ``gitpaas.forkserver.client``) what this
        interpreter had before ``site`` added its folders — the start of its path, which the
        client's must equal. Such a client is taken only with user site-packages turned off
        (``site.ENABLE_USER_SITE``, off in a virtualenv): their folder depends on ``$HOME``."""
        mine = self.interpreter
        if theirs.get("site") is not False or site.ENABLE_USER_SITE:
            return mine
        path = theirs.get("path")
        return {**mine, "site": False, "path": mine["path"][:len(path) if isinstance(path, list) else 0]}

    def _become(self, conn: socket.socket, fds: list[int], request: dict) -> Command:
        """In the child: drop the server's parts, take the client's streams, environment, folder
        and umask — the process is then what the client would have been."""
        # (every signal a client passes on as the client would take it, whatever the server
        # inherited from the client that started it: one started by `gitpaas … &` ignores SIGQUIT)
        for signum in forkserver.FORWARDED:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in request.get("ignored", []):  # (what the client ignores: `nohup gitpaas …`)
            signal.signal(signum, signal.SIG_IGN)
        forkserver._client_parent = request.get("ppid")
        for key in list(self.selector.get_map().values()):
            if key.fileobj is not self.listener:
                os.close(key.fd) if isinstance(key.fileobj, int) else key.fileobj.close()
        self.selector.close()
        self.listener.close()
        conn.close()
        os.close(self.folder_fd)
        os.close(self.lock_fd)
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # (found again from $TMPDIR)
        sys.stdin, sys.stdout, sys.stderr = (_text_stream(fd, stream) for fd, stream in enumerate(request["streams"]))
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
        sys.argv = [sys.argv[0], *request["args"]]
        # (the client's path; or, from one without ``site``, its first entry, then the server's path,
        # which is what ``site`` would have made the client's)
        theirs = request["interpreter"]
        if theirs.get("site") is not False:
            sys.path[:] = request["path"]
        else:  # (what comes before the interpreter's own path: the working folder, unless PYTHONSAFEPATH)
            before = request["path"][:len(request["path"]) - len(theirs["path"])]
            sys.path[:] = [*before, *self.interpreter["path"]]
        return Command(request["entry"], request["args"])

    def _reap(self, pidfd: int) -> None:
        pid, conn = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        ended = {"exit": code} if code >= 0 else {"exit": 128 - code, "signal": -code}
        try:
            conn.setblocking(True)
            conn.send(json.dumps(ended).encode())
        except OSError:
            pass
        self._forget(conn)

    def _client_gone(self, pid: int) -> None:
        """The client's connection ended before its command: it was killed outright (its own
        SIGTERM or Ctrl-C it would have passed on). The command is hung up on, as a terminal's
        would be."""
        for pidfd, (child, conn) in self.children.items():
            if child == pid:
                try:
                    if conn.recv(16):
                        return  # (a client says nothing after its request)
                except BlockingIOError:
                    return
                except OSError:
                    pass
                self._forget(conn)
                try:
                    os.kill(pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass
                return

    def _forget(self, conn: socket.socket) -> None:
        try:
            self.selector.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def log(self, line: str) -> None:
        try:
            folder = self.home / "logs"
            folder.mkdir(exist_ok=True)  # (not parents: a removed home is not made again)
            with open(folder / "forkserver.log", "a", encoding="utf-8") as handle:
                handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n")
        except OSError:
            pass


def _text_stream(fd: int, spec: dict) -> io.TextIOWrapper:
    """A standard stream as the client's interpreter made it: its encoding, errors and buffering
    (and, as CPython's own, no newline translation)."""
    raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
    buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
    return io.TextIOWrapper(buffered, encoding=spec["encoding"], errors=spec["errors"], newline="\n",
                            line_buffering=spec["line_buffering"] or fd == 2,
                            write_through=spec.get("write_through", False))


def idle_seconds(environ) -> float:
    raw = environ.get("GITPAAS_FORKSERVER_IDLE") or ""
    try:
        value = float(raw) if raw else DEFAULT_IDLE_SECONDS
    except ValueError:
        return DEFAULT_IDLE_SECONDS
    return value if value > 0 else DEFAULT_IDLE_SECONDS


def serve_forever(home: Path) -> int:
    command = Server(home, idle_seconds(os.environ)).run()
    if command is None:
        return 0
    try:
        status = command.run()
    except SystemExit as exc:
        status = exc.code
    end(status)  # (another exception ends the child the interpreter's way: its traceback, status 1)


def end(status: object) -> NoReturn:
    """End a child as the interpreter ends a process on ``sys.exit(status)`` — its non-daemon
    threads joined, ``atexit``'s callbacks run (a temporary folder's cleanup among them), the
    garbage collected, the standard streams flushed, the same exit status — but without the
    interpreter's teardown of every module and of what they hold, all of which the child shares
    with the server: each reference count written on the way copies the page it is on, 25–35 ms
    of a command whose own work took 4 (``gitpaas --help``). So what a module's globals hold is not
    finalized (a file left open without ``with`` is not flushed by its ``__del__``): gitpaas closes
    what it opens. A stream that cannot be flushed (a reader gone: ``gitpaas releases | head -1``)
    is left to the interpreter, which says so and exits 120."""
    if status is None:
        code = 0
    elif isinstance(status, int):
        code = status if -(1 << 63) <= status < (1 << 63) else -1  # (past a C long: -1, as the interpreter)
    else:  # (``sys.exit("message")``: the message on standard error, status 1)
        print(status, file=sys.stderr)
        code = 1
    # What the interpreter's exit does first, with its own function: the threads' exit hooks (an
    # executor left open tells its idle workers to end), then every non-daemon thread joined. A
    # Ctrl-C meanwhile is said and ignored, as the interpreter does, and the exit goes on.
    try:
        threading._shutdown()
    except BaseException:  # noqa: BLE001
        print(f"Exception ignored in: {threading!r}", file=sys.stderr)
        traceback.print_exc()
    atexit._run_exitfuncs()  # (then these, as it does; they are unregistered once run)
    gc.collect()  # (objects in cycles made by the command: their finalizers run, as at its exit)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BaseException:  # noqa: BLE001 — the interpreter's own exit says why, and exits 120
        sys.exit(code)
    os._exit(code & 0xFF)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m gitpaas.forkserver.server HOME", file=sys.stderr)
        sys.exit(2)
    sys.exit(serve_forever(Path(sys.argv[1])))
