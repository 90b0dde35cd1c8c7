"""The fork server's client (see ``gitpaas.forkserver``): the standard library only, and none of
gitpaas, so that a push's hook can run it with no ``site`` at all, through the script beside it
(which loads this module from its cached bytecode: a script itself is compiled at every run):

    python -S …/gitpaas/forkserver/hook_client.py hook pre-receive

That is the whole hook while the home's fork server runs: an interpreter without ``site`` (no
site-packages to list, no editable install's finder to load) and this file — about 15 ms where
``python -m gitpaas.hook`` takes 40, on the way of every push. When the server does not take the
push (none yet, another interpreter, gitpaas's code changed, ``GITPAAS_FORKSERVER=0``), the
script becomes ``python -m gitpaas.hook`` (``os.execv``: the same process, its standard input
unread), which runs the push itself and starts a server for the next one.

A client without ``site`` cannot send its ``sys.path`` as it would have been, so it sends what it
has (``"site": false``): the server takes it only when that is the start of its own path and the
rest is what ``site`` adds there (the same interpreter, prefix and environment, and user
site-packages turned off, whose folder would depend on ``$HOME``: as in the virtualenv gitpaas is
installed into); its child then takes the server's path, as ``python -m`` would have had it.
(``site`` also runs ``.pth`` files and ``sitecustomize``; what they add is taken to be the same
for a client as for the server when both run the same interpreter, virtualenv and environment.)
"""

from __future__ import annotations

import os
import sys

# The C halves of the modules a client needs, not the modules: `socket`, `signal` and `json` would
# load `enum` and `re`, twice the interpreter's own start-up here (they are what those modules
# are built on, in every CPython; the server keeps the modules).
try:
    import _json
    import _signal as signal
    import _socket as socket
    import _struct as struct
except ImportError:  # (not CPython): the hook runs as the module, which loads the modules themselves
    if __name__ != "client":  # (loaded as ``gitpaas.forkserver.client``, not by the hook's script)
        raise
    os.execv(sys.executable, [sys.executable, "-m", "gitpaas.hook", *sys.argv[2:]])

#: the environment that decides how the interpreter itself works: a child would inherit the
#: server's, so a client whose differs runs on its own
_INTERPRETER_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH", "PYTHONHOME", "PYTHONUTF8", "PYTHONIOENCODING",
                    "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "PYTHONUNBUFFERED")
#: the signals a client passes on to its child
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_MESSAGE_LIMIT = 1 << 20
#: in the home: the fork server's folder (its socket, pid, lock, last start's time)
FOLDER = "forkserver"
#: what ``python -S hook_client.py ENTRY`` may run: the entries that are modules of gitpaas
SCRIPT_ENTRIES = {"hook": "gitpaas.hook"}


class _Decoding:
    """What the C half of ``json``'s decoder reads of its decoder (``json.JSONDecoder``'s defaults)."""
    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int = float, int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str):
        raise ValueError(f"not JSON: {name}")


_scan = _json.make_scanner(_Decoding)


def loads(data: bytes):
    """``json.loads`` of a message (UTF-8)."""
    text = data.decode("utf-8")
    try:
        value, end = _scan(text, 0)
    except StopIteration as exc:
        raise ValueError("not JSON") from exc
    if text[end:].strip():
        raise ValueError("not JSON: more after the value")
    return value


def dumps(value) -> str:
    """``json.dumps`` of what a request holds: dicts with string keys, lists, strings, integers,
    booleans and None (anything else is a ValueError)."""
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(dumps, value)) + "]"
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return "{" + ", ".join(f"{dumps(key)}: {dumps(item)}" for key, item in value.items()) + "}"
    raise ValueError(f"cannot send a {type(value).__name__}")


def enabled(environ=os.environ) -> bool:
    return (environ.get("GITPAAS_FORKSERVER") or "1").strip().lower() not in ("0", "false", "no", "off")


def socket_address(folder_fd: int) -> str:
    """The socket's path through an open descriptor of its folder: a home's own path can be longer
    than the 107 bytes a Unix socket address may have."""
    return f"/proc/self/fd/{folder_fd}/socket"


def run(folder: str, entry: str, args: list[str], script: bool = False) -> tuple[int | None, dict]:
    """Run ``entry`` with ``args`` in a child of the server in ``folder``: (its exit status, {}),
    or (None, the server's reply: ``refused``, ``stale``, or nothing when there is no server)
    when this process should run it itself. ``script``: this process runs the hook's script
    (``main``), not ``python -m`` the entry's module."""
    try:
        request = _request(entry, args, script)
        conn = connect(folder)
    except (OSError, ValueError):
        return None, {}  # (none yet, not ours, a standard stream closed, a removed working folder)
    # Signals that come before the child's pid is known are held, then passed on (or, if the
    # command runs here after all, raised here); the ones this process ignores stay ignored.
    held: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: held.append(signum))
                for signum in FORWARDED if signal.getsignal(signum) != signal.SIG_IGN}
    try:
        conn.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("3i", 0, 1, 2))])
        reply = loads(conn.recv(_MESSAGE_LIMIT) or b"{}")
    except (OSError, ValueError):
        reply = {}
    if not isinstance(reply, dict) or "pid" not in reply:  # refused (or the code changed), or gone
        conn.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in held:
            os.kill(os.getpid(), signum)
        return None, reply if isinstance(reply, dict) else {}
    return _wait(conn, reply["pid"], list(previous), held), {}


def connect(folder: str) -> socket.socket:
    """A connection to the server in ``folder``, once the folder and the server are known to be
    this user's own: the client hands its environment and its terminal to whoever listens."""
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        info = os.fstat(folder_fd)
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise PermissionError("the fork server's folder is not this user's alone")
        conn.connect(socket_address(folder_fd))
        if peer_uid(conn) != os.getuid():
            raise PermissionError("the fork server runs as another user")
    except BaseException:
        conn.close()
        raise
    finally:
        os.close(folder_fd)
    return conn


def peer_uid(conn) -> int:
    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid


def _request(entry: str, args: list[str], script: bool = False) -> bytes:
    streams = []
    for stream, fd in ((sys.stdin, 0), (sys.stdout, 1), (sys.stderr, 2)):
        os.fstat(fd)  # (raises when closed)
        if stream is None or not hasattr(stream, "encoding"):
            raise ValueError("a standard stream is not a text stream")
        streams.append({"encoding": stream.encoding, "errors": stream.errors,
                        "line_buffering": getattr(stream, "line_buffering", False),
                        "write_through": getattr(stream, "write_through", False)})
    ignored = [int(signum) for signum in FORWARDED if signal.getsignal(signum) == signal.SIG_IGN]
    # A script's first path entry is its folder, where `python -m` has the working folder (neither
    # has one with PYTHONSAFEPATH).
    path = sys.path if not script or sys.flags.safe_path else [os.getcwd(), *sys.path[1:]]
    return dumps({
        "entry": entry, "args": args, "cwd": os.getcwd(), "env": dict(os.environ), "umask": _umask(),
        "streams": streams, "path": path, "ppid": os.getppid(), "ignored": ignored,
        "interpreter": interpreter(os.environ),
    }).encode()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def interpreter(environ) -> dict:
    """What a child inherits from the server rather than from its client: they must be the same.
    (The first entry of ``sys.path`` is the script's folder, or the working folder, unless ``-P``
    left it out as the server's does: the child takes the client's.) ``site``: whether the path
    is whole, or only what the interpreter has before ``site`` adds to it (``python -S``)."""
    return {"executable": os.path.realpath(sys.executable), "prefix": _prefix(),
            "path": sys.path if sys.flags.safe_path else sys.path[1:], "groups": sorted(os.getgroups()),
            "env": {key: environ.get(key) for key in _INTERPRETER_ENV}, "site": not sys.flags.no_site}


def _prefix() -> str:
    """``sys.prefix`` as ``site`` leaves it: a virtualenv's own folder (the one above its
    interpreter's, beside a ``pyvenv.cfg``), which ``site.venv`` sets and ``python -S`` never does."""
    if not sys.flags.no_site:
        return sys.prefix
    folder = os.path.dirname(os.path.abspath(sys.executable))
    above = os.path.dirname(folder)
    if any(os.path.isfile(os.path.join(where, "pyvenv.cfg")) for where in (folder, above)):
        return above
    return sys.prefix


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
    try:
        reply = conn.recv(_MESSAGE_LIMIT)
    finally:
        conn.close()
    if not reply:
        print(" !    gitpaas: the fork server stopped before the command finished; it may still be running",
              file=sys.stderr)
        return 1
    ended = loads(reply)
    if ended.get("signal"):
        signal.signal(ended["signal"], signal.SIG_DFL)
        os.kill(os.getpid(), ended["signal"])
    return int(ended["exit"])


#: set across the exec below when the server said it stopped because gitpaas's code changed: the
#: module's client then starts the next one at once (``gitpaas.forkserver.hand_off``)
STALE_ENV = "GITPAAS_FORKSERVER_STALE"


def main(argv: list[str]) -> int:
    """``hook_client.py ENTRY ARGS…``: ENTRY's work handed to the server of ``$GITPAAS_HOME``, or,
    when it does not take it, ``python -m`` ENTRY's module in this same process."""
    if not argv or argv[0] not in SCRIPT_ENTRIES:
        print(f"usage: python -S hook_client.py {{{','.join(SCRIPT_ENTRIES)}}} ARGS…", file=sys.stderr)
        return 2
    entry, args = argv[0], argv[1:]
    home = os.environ.get("GITPAAS_HOME")
    if home and enabled():
        status, reply = run(os.path.join(os.path.abspath(os.path.expanduser(home)), FOLDER), entry, args,
                            script=True)
        if status is not None:
            return status
        if reply.get("stale"):
            os.environ[STALE_ENV] = "1"
    # (the module itself tries the server once more, and starts one if it should: rare, and then
    # it says so in the server's log)
    os.execv(sys.executable, [sys.executable, "-m", SCRIPT_ENTRIES[entry], *args])
