"""The fork server (gitpaas.forkserver), with real processes: the `gitpaas` console script and the
hook's `python -m gitpaas.hook` hand their work to a server started for a throwaway home, and what
a user sees — output on the right stream, exit status, environment, working folder, standard input,
Ctrl-C — is what the command does in its own process. No Docker: the commands read records.
(What the server saves in seconds is measured by bench/deploy_speed.py, never asserted here.)"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitpaas import forkserver
from gitpaas.cli import commands
from gitpaas.cli.group import cli

GITPAAS = str(Path(sys.executable).with_name("gitpaas"))


def wait_for(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def server_pid(home: Path) -> int | None:
    try:
        pid = int((home / "forkserver" / "pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if (home / "forkserver" / "socket").exists() else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    return state != "Z"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def log_of(home: Path) -> str:
    path = home / "logs" / "forkserver.log"
    return path.read_text() if path.exists() else ""


class HomePath(type(Path())):
    """A home's path, with the environment the tests run its commands with."""
    env: dict[str, str]


@pytest.fixture
def home(tmp_path):
    """A home with an app, made by the real CLI in its own process, and no server yet."""
    path = HomePath(tmp_path) / "a home with a long name to pass the 107 bytes of a socket address" / "home"
    env = {**os.environ, "GITPAAS_HOME": str(path), "GITPAAS_HTTP_PORT": "8080",
           "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    env.pop("GITPAAS_FORKSERVER", None)
    created = subprocess.run([GITPAAS, "apps:create", "shop"], env={**env, "GITPAAS_FORKSERVER": "0"},
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    path.env = env
    yield path
    forkserver.stop(path)


def gitpaas(home: Path, *args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([GITPAAS, *args], env={**home.env, **(env or {})}, capture_output=True, text=True,
                          timeout=60, **kwargs)


def started(home: Path) -> int:
    """The first command starts the server (and runs in its own process); the server's pid."""
    gitpaas(home, "apps")
    return wait_for(lambda: server_pid(home), "the fork server")


def test_commands_run_in_a_child_of_the_server_as_they_would_in_their_own_process(home, tmp_path):
    pid = started(home)
    folder = home / "forkserver"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "socket").stat().st_mode) == 0o600

    info = gitpaas(home, "apps:info", "-a", "shop", env={"GITPAAS_HTTP_PORT": "9999"})
    assert info.returncode == 0 and "http://shop.localhost:9999/" in info.stdout, "the client's environment"
    # what a user sees is what the command shows in its own process: streams, exit status
    for args in (["apps:info", "-a", "nope"], ["releasez"], ["config", "-a", "shop", "--json"], ["apps"],
                 ["releases", "-a", "shop"], ["config:get", "-a", "shop", "NOPE"]):
        served = gitpaas(home, *args)
        alone = gitpaas(home, *args, env={"GITPAAS_FORKSERVER": "0"})
        assert (served.returncode, served.stdout, served.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    assert "app 'nope' not found" in gitpaas(home, "apps:info", "-a", "nope").stderr

    work = tmp_path / "work"
    work.mkdir()
    backed = gitpaas(home, "backup", "home.tar", cwd=work)
    assert backed.returncode == 0 and "Backed up 1 app to home.tar" in backed.stdout
    assert stat.S_IMODE((work / "home.tar").stat().st_mode) == 0o600, "in the client's folder, private"

    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), "the server to stop")
    assert "stopped by SIGTERM; it ran 9 command(s)" in log_of(home)
    assert not (folder / "socket").exists() and not (folder / "pid").exists()


def hook_command(home: Path, way: str) -> list[str]:
    """The hook as git runs it (the app's installed hook: ``python -S …/hook_client.py``), or its module."""
    if way == "installed":
        return [str(home / "apps/shop/repo.git/hooks/pre-receive")]
    return [sys.executable, "-m", "gitpaas.hook", "pre-receive"]


@pytest.mark.parametrize("way", ["installed", "module"])
def test_the_hook_reads_its_refs_from_the_pushers_standard_input(home, way):
    pid = started(home)
    hook = subprocess.run(hook_command(home, way), input="0000 1111 refs/heads/feature\n",
                          env={**home.env, "GIT_DIR": str(home / "apps/shop/repo.git")},
                          cwd=home / "apps/shop/repo.git", capture_output=True, text=True, timeout=60)
    assert hook.returncode == 1
    assert "gitpaas deploys only the main or master branch, not 'feature'" in hook.stdout
    assert "-a shop --stage development" in hook.stdout
    assert "ran on its own" not in log_of(home), "the installed hook's client (no site) is taken as it is"
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), "the server to stop")
    assert "it ran 1 command(s)" in log_of(home)


def signalled_command(home: Path, pid: int, signum: int, way: str = "module", **popen) -> int:
    """A long command run through the server ``pid`` and ``signum`` sent to its client once it
    runs: the client's exit status, after the command's process ended. The hook stands in for any
    long command: it reads the pushed refs until git closes them (kept open until it ended)."""
    before = set(children_of(pid))
    client = subprocess.Popen(hook_command(home, way), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**home.env, "GIT_DIR": str(home / "apps/shop/repo.git")}, **popen)
    child = wait_for(lambda: set(children_of(pid)) - before, "the command's process").pop()
    client.send_signal(signum)
    client.wait(timeout=30)
    wait_for(lambda: not alive(child), "the command to end")  # (its standard input still open)
    client.stdin.close()
    return client.returncode


@pytest.mark.parametrize("way", ["installed", "module"])
def test_ctrl_c_and_a_client_killed_outright_reach_the_command(home, way):
    pid = started(home)
    for signum in (signal.SIGINT, signal.SIGKILL):
        # Ctrl-C: the command ends as it would on its own (an uncaught KeyboardInterrupt ends Python
        # by SIGINT), and the client with it, by the same signal
        assert signalled_command(home, pid, signum, way) == -signum
    assert alive(pid)
    wait_for(lambda: children_of(pid) == [], "the server to reap its children")


def test_a_server_that_cannot_serve_the_client_as_it_would_run_leaves_it_to_run_itself(home):
    pid = started(home)
    other = gitpaas(home, "apps", env={"LC_ALL": "C"})  # another locale: another interpreter's encoding
    assert other.returncode == 0 and "shop" in other.stdout
    assert alive(pid)
    assert "a client ran on its own: its env differs (LC_ALL)" in log_of(home)
    # gitpaas's code changes (an upgrade): the server stops, the command runs on its own, a new server starts
    source = Path(forkserver.__file__)
    info = source.stat()
    try:
        os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
        changed = gitpaas(home, "apps")
    finally:
        os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert changed.returncode == 0 and "shop" in changed.stdout
    wait_for(lambda: not alive(pid), "the old server to stop")
    assert "stopped: gitpaas's code changed; it ran 0 command(s)" in log_of(home), "both ran on their own"
    wait_for(lambda: server_pid(home) not in (None, pid), "a new server")


def test_the_installed_hook_runs_the_push_itself_when_no_server_takes_it(home):
    """The hook's client without ``site`` becomes ``python -m gitpaas.hook`` (the same process, its
    standard input unread) when there is no server, when it is turned off, and when the server
    would not run it as it would run here; the output is the same each way."""
    def push(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(hook_command(home, "installed"), input="0000 1111 refs/heads/feature\n",
                              env={**home.env, "GIT_DIR": str(home / "apps/shop/repo.git"), **env},
                              cwd=home / "apps/shop/repo.git", capture_output=True, text=True, timeout=60)
    said = "gitpaas deploys only the main or master branch, not 'feature'"
    alone = push()  # no server yet: it runs on its own, and starts one
    assert (alone.returncode, said in alone.stdout) == (1, True), alone.stderr
    pid = wait_for(lambda: server_pid(home), "the fork server the module started")
    for env in ({"GITPAAS_FORKSERVER": "0"}, {"LC_ALL": "C"}):
        ran = push(**env)
        assert (ran.returncode, ran.stdout, ran.stderr) == (alone.returncode, alone.stdout, alone.stderr), env
    # (refused twice: the client without site, then the module it became)
    assert log_of(home).count("a client ran on its own") == 2
    assert log_of(home).count("a client ran on its own: its env differs (LC_ALL)") == 2
    served = push()
    assert (served.returncode, served.stdout, served.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    assert log_of(home).count("a client ran on its own") == 2, "its client was taken as it was"
    # gitpaas's code changes: the server stops, the push runs on its own, and the module the script
    # became starts the next server at once (the server began seconds ago: a client that was not
    # told would wait 30 s before it starts one)
    source = Path(forkserver.__file__)
    info = source.stat()
    try:
        os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
        changed = push()
    finally:
        os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert (changed.returncode, changed.stdout) == (alone.returncode, alone.stdout)
    wait_for(lambda: not alive(pid), "the old server to stop")
    assert "stopped: gitpaas's code changed; it ran 1 command(s)" in log_of(home), "only the push before"
    wait_for(lambda: server_pid(home) not in (None, pid), "a new server", timeout=20)


def test_the_hooks_client_loads_none_of_the_modules_it_was_written_to_avoid(home):
    """What the hook costs is the interpreter and this script: no `site`, and of the standard library
    neither `socket`, `signal` nor `json` (with them `enum` and `re` came, as long again as the
    interpreter's own start); with no server, it is the module that loads them."""
    installed = (home / "apps/shop/repo.git/hooks/pre-receive").read_text()
    script = installed.split(" -S ", 1)[1].split()[0]
    ran = subprocess.run([sys.executable, "-S", "-X", "importtime", script], capture_output=True, text=True,
                         timeout=60)
    loaded = {line.split("|")[-1].strip() for line in ran.stderr.splitlines() if line.startswith("import time:")}
    assert ran.returncode == 2 and "usage" in ran.stderr and "client" in loaded, ran.stderr  # (no hook's arguments)
    assert not loaded & {"site", "socket", "signal", "json", "enum", "re", "pathlib", "gitpaas"}, sorted(loaded)


def test_the_hooks_client_from_another_interpreter_is_refused(home):
    """The virtualenv's interpreter and the one it was made from are the same file; without `site`
    only the virtualenv's own folder (its ``pyvenv.cfg``) tells them apart."""
    base = getattr(sys, "_base_executable", sys.executable)
    if os.path.realpath(os.path.dirname(base)) == os.path.realpath(os.path.dirname(sys.executable)):
        pytest.skip("the tests do not run in a virtualenv")
    started(home)
    script = (home / "apps/shop/repo.git/hooks/pre-receive").read_text().split(" -S ", 1)[1].split()[0]
    subprocess.run([base, "-S", script, "hook", "pre-receive"], input="0000 1111 refs/heads/feature\n",
                   env={**home.env, "GIT_DIR": str(home / "apps/shop/repo.git")}, cwd=home / "apps/shop/repo.git",
                   capture_output=True, text=True, timeout=60)  # (then `python -m gitpaas.hook` there: no gitpaas)
    assert "a client ran on its own: its prefix differs" in log_of(home)


def test_a_client_without_site_is_taken_only_with_the_start_of_the_servers_path(home):
    """A client run with ``python -S`` sends the path it has, which must be what the server's
    interpreter had before ``site`` added to it; another is refused, and says why in the log."""
    from gitpaas.forkserver import client

    started(home)
    bare = subprocess.run([sys.executable, "-S", "-c", "import sys; print(chr(10).join(sys.path[1:]))"],
                          env=home.env, capture_output=True, text=True, check=True).stdout.splitlines()
    show = "import json, os; from gitpaas.forkserver import client; print(json.dumps(client.interpreter(os.environ)))"
    seen = json.loads(subprocess.run([sys.executable, "-P", "-c", show], env=home.env, capture_output=True,
                                     text=True, check=True).stdout)
    assert seen["path"][:len(bare)] == bare and len(seen["path"]) > len(bare) and seen["site"] is True
    for path, taken in ((bare, True), (["/elsewhere", *bare], False), (bare[1:], False)):
        text = {"encoding": "utf-8", "errors": "strict", "line_buffering": False, "write_through": False}
        request = {"entry": "cli", "args": ["--version"], "cwd": "/", "env": home.env, "umask": 0o022,
                   "streams": [text] * 3, "path": ["/", *path], "ppid": os.getpid(), "ignored": [],
                   "interpreter": {**seen, "site": False, "path": path}}
        conn = client.connect(str(home / "forkserver"))
        null = os.open(os.devnull, os.O_RDWR)
        try:
            socket.send_fds(conn, [client.dumps(request).encode()], [null] * 3)
            reply = client.loads(conn.recv(1 << 20))
            ended = client.loads(conn.recv(1 << 20)) if "pid" in reply else None
        finally:
            os.close(null)
            conn.close()
        assert ("pid" in reply) is taken, (path, reply)
        assert ended in ({"exit": 0}, None), ended
    assert "a client ran on its own: its path differs" in log_of(home)


def test_the_server_stops_when_idle_or_when_its_home_is_gone(home, tmp_path):
    gitpaas(home, "apps", env={"GITPAAS_FORKSERVER_IDLE": "0.5"})
    pid = wait_for(lambda: server_pid(home), "the fork server")
    wait_for(lambda: not alive(pid), "the idle server to stop", timeout=10)
    assert "stopped after 0.5 s without a command" in log_of(home)

    (home / "forkserver" / "started").unlink()  # (a client starts a server at most every 30 s)
    pid = started(home)
    moved = tmp_path / "moved"
    home.rename(moved)
    wait_for(lambda: not alive(pid), "the server to notice its home is gone", timeout=10)


def test_no_server_without_a_home_and_none_when_turned_off(tmp_path, home):
    nowhere = tmp_path / "nowhere"
    listed = gitpaas(home, "apps", env={"GITPAAS_HOME": str(nowhere)})
    assert listed.returncode == 0
    assert not (nowhere / "forkserver").exists(), "a command run with no home starts no server"
    off = gitpaas(home, "apps", env={"GITPAAS_FORKSERVER": "0"})
    assert off.returncode == 0 and "shop" in off.stdout
    assert not (home / "forkserver").exists(), "none started"


def test_commands_that_take_the_terminal_run_in_their_own_process():
    """A child of the server has no controlling terminal: a command that sets the terminal raw or
    hides what is typed (itself, or a function of its module it calls) runs in its own process."""
    for name, (module_name, _, _) in commands.COMMANDS.items():
        module = importlib.import_module(module_name)
        callback = inspect.unwrap(cli.commands[name].callback)
        called = [value for value in (module.__dict__.get(word) for word in callback.__code__.co_names)
                  if inspect.isfunction(value) and value.__module__ == module_name]
        source = "".join(inspect.getsource(function) for function in (callback, *called))
        if any(word in source for word in ("isatty()", "hide_input", "termios", "getpass(")):
            assert name in forkserver.IN_PROCESS, f"{name} uses the terminal"
    for name in ("run", "pg:psql", "redis:cli", "login"):
        assert name in forkserver.IN_PROCESS
    assert "server" in forkserver.IN_PROCESS


def test_the_server_makes_once_what_each_push_would_make_again():
    """After ``preload``, what a push's child uses loads nothing more: BuildKit's status messages
    (protobuf), the router's templates (compiled once), ``datetime.strptime``'s module."""
    code = """
import sys
from gitpaas.forkserver import server
server.preload()
from gitpaas.router import render
compiled = []
original = render._environment.compile
render._environment.compile = lambda *args, **kwargs: compiled.append(args) or original(*args, **kwargs)
before = set(sys.modules)
from gitpaas.build import buildkit
from gitpaas.scheduler.docker_local.containers import unix_time
buildkit.status_message().FromString(b"")
render.compile_templates()
assert unix_time("2026-12-03T06:00:00.5Z") == 1796277600.0
print(sorted(set(sys.modules) - before), len(compiled))
"""
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[] 0"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_held_since_the_fork_ends_the_command_before_it_begins_as_it_would_the_client(signum):
    """The server blocks what a client passes on across ``fork`` (``_accept``); a child's command
    lets it through as it starts. One that came meanwhile ends the child by that signal, as it would
    have ended the client's own process, with nothing run and no traceback."""
    code = f"""
import os, signal
from gitpaas import forkserver
from gitpaas.forkserver.server import Command
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_BLOCK, forkserver.FORWARDED)
os.kill(os.getpid(), {int(signum)})
print("held", flush=True)
Command("cli", ["--help"]).run()
print("ran on", flush=True)
"""
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (ran.returncode, ran.stdout, ran.stderr) == (-signum, "held\n", "")


def test_a_server_that_cannot_make_ahead_still_serves(monkeypatch):
    from gitpaas.forkserver import server

    def broken() -> None:
        raise ImportError("no module named 'google.protobuf'")

    made: list[str] = []
    monkeypatch.setattr(server, "WARM", (broken, lambda: made.append("the templates")))
    logged: list[str] = []
    assert server.preload(logged.append) == len(sys.modules)
    assert logged == ["could not make ahead what each command makes (ImportError: no module named "
                      "'google.protobuf'); each makes its own"]
    assert made == ["the templates"]  # (each step on its own)


def no_core_ignoring_quit() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def test_a_command_takes_ctrl_backslash_as_its_client_would_whatever_the_server_inherited(home):
    """A server started by a client that ignores SIGQUIT (``gitpaas … &`` from a script: the shell
    ignores it) ignores it too; a later client's Ctrl-\\ still ends its command, by SIGQUIT."""
    gitpaas(home, "apps", preexec_fn=no_core_ignoring_quit)
    pid = wait_for(lambda: server_pid(home), "the fork server")
    assert int(Path(f"/proc/{pid}/status").read_text().split("SigIgn:")[1].split()[0], 16) & (1 << (signal.SIGQUIT - 1))
    no_core = lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # noqa: E731
    assert signalled_command(home, pid, signal.SIGQUIT, preexec_fn=no_core) == -signal.SIGQUIT


#: the interpreter's own standard streams, buffered as a user's would be
BUFFERED = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}


def ended_both_ways(code: str, **streams) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """``code`` (which ends by ``{end}(…)``) run ending by ``server.end``, then by ``sys.exit``,
    each in an interpreter of its own with buffered standard streams."""
    return tuple(subprocess.run([sys.executable, "-c", code.format(end=end)], text=True, timeout=60, env=BUFFERED,
                                check=False, **(streams or {"capture_output": True}))
                 for end in ("server.end", "sys.exit"))


#: a command that leaves work for the interpreter's exit: output not yet flushed (standard output
#: to a pipe is block-buffered), a thread still running, an executor left open (its idle worker
#: waits for the exit to tell it to end), an ``atexit`` callback, a temporary folder that a
#: finalizer removes; then it exits with STATUS, by ``END``
_LEAVES_WORK = """
import atexit, concurrent.futures, os, sys, tempfile, threading, time
from gitpaas.forkserver import server
folder = tempfile.TemporaryDirectory(prefix="gitpaas-end-")
print(folder.name)
print("to standard error", file=sys.stderr, end="")
def later():
    time.sleep(0.3)
    print("the thread finished")
threading.Thread(target=later).start()
executor = concurrent.futures.ThreadPoolExecutor(1)  # (kept: an executor dropped ends its worker itself)
executor.submit(time.sleep, 0).result()
atexit.register(lambda: print("atexit ran"))
{{end}}({status!r})
"""


@pytest.mark.parametrize("status", [0, 3, None, "a message", -1, 256, True])
def test_a_child_ends_as_the_interpreter_would_without_tearing_down_what_it_shares(status):
    """``server.end``, how a child of the server ends, does what ``sys.exit`` does — the same
    output in the same order, the thread waited for, the executor's worker ended, ``atexit``'s
    callbacks and a temporary folder's cleanup run, the same exit status — skipping only the
    teardown of every module."""
    def seen(ran: subprocess.CompletedProcess) -> tuple:
        folder, _, rest = ran.stdout.partition("\n")
        return ran.returncode, rest, ran.stderr, os.path.exists(folder)

    served, alone = map(seen, ended_both_ways(_LEAVES_WORK.format(status=status)))
    assert served == alone
    assert served[1:] == ("the thread finished\natexit ran\n", "to standard error"
                          + ("a message\n" if status == "a message" else ""), False)


def test_a_child_whose_reader_is_gone_ends_as_the_interpreter_would():
    """Standard output to a pipe whose reader has gone, found when the output left in its buffer
    is flushed at the end: the interpreter says so and exits 120."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        served, alone = ended_both_ways("import sys\nfrom gitpaas.forkserver import server\nprint('x' * 100)\n{end}(0)\n",
                                        stdout=writer, stderr=subprocess.PIPE)
    finally:
        os.close(writer)
    assert (served.returncode, served.stderr) == (alone.returncode, alone.stderr)
    assert served.returncode == 120


def test_a_child_interrupted_while_its_threads_finish_ends_as_the_interpreter_would():
    """A Ctrl-C while the exit waits for a thread (a buildpack build's container still being
    removed): the interpreter says it ignored it, and exits with the command's status."""
    code = """
import os, signal, sys, threading, time
from gitpaas.forkserver import server
threading.Thread(target=time.sleep, args=(1.0,)).start()
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
print("done")
{end}(3)
"""
    def seen(ran: subprocess.CompletedProcess) -> tuple:
        lines = ran.stderr.splitlines()
        return ran.returncode, ran.stdout, lines[:1], [line.rstrip(": ") for line in lines[-1:]]

    served, alone = map(seen, ended_both_ways(code))
    assert served == alone
    assert served[0] == 3
    assert served[2][0].startswith("Exception ignored in: <module 'threading'")
    assert served[3] == ["KeyboardInterrupt"]
