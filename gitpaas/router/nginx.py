"""The running router: one nginx master process per gitpaas home, started, reloaded and stopped.

Everything nginx reads or writes lives under ``settings.router_dir``::

    nginx.conf          the main configuration (default server, shared settings)
    generation.conf     a token the default server answers with, changed on every reload
    apps/APP.conf       one upstream + server block per app
    lua/                the balancer (gitpaas_balancer.lua) and balancer.token, when nginx has Lua
    logs/ tmp/          error and access logs, temp files
    nginx.pid
    certs/              the operator's certificate and key, when HTTPS is on (see ``tls``)

Rendering is pure (``render_main_config``, ``render_app_config`` in ``render``); ``NginxRouter``
does the I/O, and reads nginx's processes through ``processes``. A new app file is tested with
``nginx -t`` before it replaces the old one, so a bad change never reaches the running nginx,
which goes on serving the configuration it has.

Where Debian's ``libnginx-mod-http-lua`` is installed, apps whose backends are addresses are
balanced by ``gitpaas_balancer.lua``: a change of backends alone (a deploy, rollback, scale) is a
rewritten app file and one POST that puts the new list in nginx's shared memory, answered once
every later request goes there, instead of ``nginx -t`` and a reload (0.1-0.2 s, more with many
apps). Anything else in the file changing still takes the tested reload.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from gitpaas.errors import EnvironmentProblem, UsageError
from gitpaas.names import validate_app_name
from gitpaas.router.processes import (
    children,
    is_accepting_worker,
    prepare_temp_dir,
    process_title,
    temp_dir,
    worker_user,
)
from gitpaas.router.render import (
    Balanced,
    Balancer,
    balanced_backends,
    render_app_config,
    render_main_config,
    render_maintenance,
    renumbered,
    unbalanced,
)
from gitpaas.router.tls import CertificateFiles
from gitpaas.settings import Settings
from gitpaas.store.files import write_atomic

GENERATION_PATH = "/__gitpaas/generation"
BACKENDS_PATH = "/__gitpaas/backends"
TOKEN_HEADER = "X-Gitpaas-Router-Token"
# Where distributions put nginx's dynamic modules; the Lua module needs the NDK loaded before it.
MODULE_DIRS = ("/usr/lib/nginx/modules", "/usr/lib64/nginx/modules")
LUA_MODULES = ("ndk_http_module.so", "ngx_http_lua_module.so")
BALANCER_SOURCE = Path(__file__).parent / "templates" / "gitpaas_balancer.lua"
PROBE_AGAIN_AFTER = 600.0  # seconds before a module nginx refused is tried again
# Sent when polling the generation: no app can claim it, because app hosts have no underscore.
GENERATION_HOST = "__gitpaas_router"

START_TIMEOUT = 10.0
RELOAD_TIMEOUT = 10.0
NGINX_COMMAND_TIMEOUT = 30.0


class NginxRouter:
    """The nginx of one gitpaas home: started on demand, outliving the gitpaas process.

    Changes take effect by a graceful reload, and every public method returns only once nginx
    serves the configuration on disk. How that is known: each reload writes a fresh random token
    into ``generation.conf``, which the default server returns at ``/__gitpaas/generation`` (to
    127.0.0.1 only). The router polls it until the token matches — so a new worker serves the
    new configuration — and until every worker from before the reload calls itself "shutting
    down" in /proc, which nginx does as it stops accepting connections. After that, no new
    connection can reach the old configuration.
    """

    def __init__(self, settings: Settings, nginx_binary: str = "nginx") -> None:
        self.settings = settings
        # absolute: nginx runs in the router's folder
        found = shutil.which(nginx_binary)
        self.nginx_binary = os.path.abspath(found) if found else nginx_binary
        self.router_dir = settings.router_dir
        self.main_config_path = self.router_dir / "nginx.conf"
        self.pid_path = self.router_dir / "nginx.pid"
        self.error_log_path = self.router_dir / "logs" / "error.log"
        self._lock = FileLock(str(self.router_dir / "router.lock"))
        self._certificates = CertificateFiles(self.router_dir, settings.https_port)
        self.temp_dir = temp_dir(self.router_dir, settings.home_id)
        self.lua_dir = self.router_dir / "lua"
        # present from a file's change until a reload or start confirms nginx loaded it: until then
        # nginx may run another version of an app file than the one on disk, so no list is pushed
        self.unconfirmed_path = self.router_dir / "unconfirmed"

    def _locked(self):
        """The router's lock, held for a switch (milliseconds): another deploy's or a retirer's
        switch waiting for it looks again every 5 ms, not filelock's default 50."""
        return self._lock.acquire(poll_interval=0.005)

    def app_config_path(self, app: str) -> Path:
        return self.router_dir / "apps" / f"{validate_app_name(app)}.conf"

    @property
    def maintenance_dir(self) -> Path:
        return self.router_dir / "maintenance"

    def set_maintenance(self, app: str, on: bool) -> None:
        """Answer every request for the app with the maintenance page (503), or stop doing so."""
        path = self.maintenance_dir / f"{validate_app_name(app)}.conf"
        self._prepare_dirs()
        with self._locked():
            if on == path.exists():
                return
            if on:
                write_atomic(path, render_maintenance().encode())
            else:
                path.unlink()
            self._write_main_config(self._balancer())  # current first (a module gone would make the old one invalid)
            if self._master_pid() is not None:
                self._reload()

    # --- public operations --------------------------------------------------------------

    def is_running(self) -> bool:
        return self._master_pid() is not None

    def ensure_running(self) -> None:
        """Start nginx if it is not running; reload it if the main configuration was outdated."""
        self._prepare_dirs()
        with self._locked():
            changed = self._write_main_config(self._balancer())
            if self._master_pid() is None:
                self._start()
            elif changed:
                self._reload()

    def set_app(self, app: str, hosts: list[str], backends: list[tuple[str, int]], max_body: str = "100m") -> None:
        """Route ``hosts`` to ``backends`` (round robin); no backends answers 503. When nginx already
        serves exactly that, nothing is rewritten or reloaded."""
        self._prepare_dirs()
        target = self.app_config_path(app)
        with self._locked():
            balancer = self._balancer()
            changed = self._write_main_config(balancer)
            current = _read(target)
            text = render_app_config(app, hosts, backends, port=self.settings.http_port, max_body=max_body,
                                     maintenance_dir=self.maintenance_dir,
                                     balanced=self.settings.router_lua and balancer is not None)
            # nginx runs what the files say unless one changed since the last confirmed (re)load
            running = not changed and self._master_pid() is not None and not self.unconfirmed_path.exists()
            if running and current is not None and _same_route(current, text):
                return  # (the number does not count: none is taken for a change that is none)
            if balanced_backends(text) is not None:
                text = renumbered(text, self._next_number(current))
            if running and current is not None and self._set_backends(app, target, current, text, balancer):
                return
            self._install_app_config(target, text, balancer)
            self._reload_or_start(tested=True)

    def _set_backends(self, app: str, target: Path, current: str, text: str, balancer: Balancer | None) -> bool:
        """When ``text`` differs from the ``current`` app file in its balancer's backends alone:
        write it and give the running nginx the new list with the file's number (no test, no
        reload: nginx loaded that structure already, and the addresses were validated). When
        nginx does not take the list, a tested reload loads the file, whose number is then the
        newest. False when the files differ otherwise.

        If this fails all the same (or is interrupted), the file and nginx's memory get the old
        backends back, numbered newer still, because the caller stops the new ones next."""
        old, new = balanced_backends(current), balanced_backends(text)
        if old is None or new is None or old.structure != new.structure:
            return False
        self._unconfirmed()  # until nginx took the list: killed in between, the next change reloads
        write_atomic(target, text.encode())
        try:
            if self._push_backends(app, new, balancer):
                self.unconfirmed_path.unlink()
            else:
                self._install_app_config(target, text, balancer)
                self._reload_or_start(tested=True)
            return True
        except BaseException:
            restored = renumbered(current, self._next_number(text))
            write_atomic(target, restored.encode())
            if self._push_backends(app, balanced_backends(restored), balancer):
                self.unconfirmed_path.unlink(missing_ok=True)  # else it stays: the next change reloads
            raise

    def _push_backends(self, app: str, balanced: Balanced | None, balancer: Balancer | None) -> bool:
        if balancer is None or balanced is None:
            return False
        connection = http.client.HTTPConnection("127.0.0.1", self.settings.http_port, timeout=5)
        try:
            connection.request("POST", BACKENDS_PATH, body=f"{app}\n{balanced.number}\n{balanced.backends}".encode(),
                               headers={"Host": GENERATION_HOST, TOKEN_HEADER: balancer.token})
            response = connection.getresponse()
            return response.status == 200 and response.read().strip() == b"ok"
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def remove_app(self, app: str) -> None:
        """Stop routing the app's hosts: they get the 404 page again."""
        (self.maintenance_dir / f"{validate_app_name(app)}.conf").unlink(missing_ok=True)
        path = self.app_config_path(app)
        if not path.exists():
            return
        self._prepare_dirs()
        with self._locked():
            try:
                path.unlink()
            except FileNotFoundError:
                return
            balancer = self._balancer()
            self._write_main_config(balancer)
            if self._master_pid() is not None:
                self._reload()
                self._push_backends(app, Balanced(structure="", backends="", number=0), balancer)  # forget its list

    def reload(self) -> None:
        """Make nginx serve the configuration on disk, starting it if needed."""
        self._prepare_dirs()
        with self._locked():
            self._write_main_config(self._balancer())
            self._reload_or_start()

    def stop(self, timeout: float | None = None) -> None:
        """Quit gracefully (open requests finish), then terminate; return once nginx is gone."""
        timeout = self.settings.stop_timeout if timeout is None else timeout
        if not self.router_dir.exists():
            return
        with self._locked():
            master = self._master_pid()
            if master is None:
                self.pid_path.unlink(missing_ok=True)
                return
            workers = children(master)
            for sig, wait in ((signal.SIGQUIT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                for pid in [master, *workers] if sig == signal.SIGKILL else [master]:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass  # exited already: that is what we are waiting for
                if self._wait(lambda: not any(process_title(pid) for pid in [master, *workers]), wait):
                    break
            else:
                raise EnvironmentProblem(f"nginx (pid {master}) of {self.router_dir} did not stop")
            self.pid_path.unlink(missing_ok=True)
            if not self.temp_dir.is_relative_to(self.router_dir):
                shutil.rmtree(self.temp_dir, ignore_errors=True)  # the workers' buffers: nothing to keep

    # --- TLS ----------------------------------------------------------------------------

    @property
    def certs_dir(self) -> Path:
        return self._certificates.directory

    def tls(self) -> dict | None:
        """The HTTPS listener's settings when the operator added a certificate, else None."""
        return self._certificates.https_listener()

    def set_certificate(self, certificate_pem: bytes, key_pem: bytes) -> None:
        """Serve HTTPS with this certificate; if nginx refuses it, the previous state stays."""
        self._prepare_dirs()
        with self._certificates.replacing(certificate_pem, key_pem):
            self.reload()

    def remove_certificate(self) -> None:
        self._certificates.remove()
        if self.is_running():
            self.reload()

    # --- configuration files ------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        for folder in (self.router_dir, self.router_dir / "apps", self.router_dir / "logs", self.maintenance_dir,
                       self.lua_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        prepare_temp_dir(self.temp_dir)

    def _balancer(self) -> Balancer | None:
        """How the main configuration loads the balancer, when this nginx can load its Lua module;
        else None (every app's backends are nginx ``server`` lines). ``GITPAAS_ROUTER_LUA=0``
        only stops new app files from using it, so files that do still load. Installs the token
        and the Lua file in ``lua/`` (read by the master at its next (re)load). Called once per
        operation, under the lock."""
        modules = self._lua_modules()
        if modules is None:
            return None
        token_path = self.lua_dir / "balancer.token"
        token = (_read(token_path) or "").strip()
        if not re.fullmatch(r"[0-9a-f]{32}", token):
            token = secrets.token_hex(16)
            write_atomic(token_path, token.encode())
        source = BALANCER_SOURCE.read_bytes()
        installed = self.lua_dir / BALANCER_SOURCE.name
        if _read_bytes(installed) != source:
            write_atomic(installed, source)
        return Balancer(modules=modules, lua_dir=str(self.lua_dir), token=token,
                        source_digest=hashlib.sha256(source).hexdigest())

    def _lua_modules(self) -> tuple[str, ...] | None:
        """The NDK and Lua module files, if this nginx loads them: a module built for another nginx
        would make every configuration invalid. Tried once with ``nginx -t`` on a configuration
        of its own, and the answer kept (``lua/modules.json``) until the binary or a module changes."""
        modules = _lua_modules()
        if modules is None:
            return None
        key = [f"{path}:{_mtime(path)}" for path in (self.nginx_binary, *modules)]
        record = self.lua_dir / "modules.json"
        try:
            known = json.loads(record.read_text())
            # a refusal is tried again after a while: it may have been this machine's moment
            if known.get("key") == key and (known.get("loads") or time.time() - known.get("at", 0) < PROBE_AGAIN_AFTER):
                return modules if known.get("loads") else None
        except (FileNotFoundError, ValueError, AttributeError, TypeError):
            pass  # not tried yet, or a record from something else: try
        probe, pid = self.lua_dir / ".probe.conf", self.lua_dir / ".probe.pid"
        lines = [f'load_module "{path}";' for path in modules]
        write_atomic(probe, ("\n".join(lines) + f'\npid "{pid}";\nevents {{}}\nhttp {{\n'
                             "    lua_shared_dict gitpaas_probe 16k;\n"
                             '    init_by_lua_block { require("ngx.balancer") }\n}\n').encode())
        try:
            status, output = self._run(self._command("-t", config=probe))
        finally:
            probe.unlink(missing_ok=True)
            pid.unlink(missing_ok=True)
        write_atomic(record, json.dumps({"key": key, "loads": status == 0, "at": time.time(),
                                         "nginx_said": output[-400:]}).encode())
        return modules if status == 0 else None

    def _main_config(self, balancer: Balancer | None, app_includes: list[Path] | None = None) -> str:
        return render_main_config(self.settings, worker_user=worker_user(self.router_dir), app_includes=app_includes,
                                  tls=self.tls(), temp_dir=self.temp_dir, balancer=balancer)

    def _unbalance_apps(self) -> None:
        """Without the Lua module, files with a balancer would stop nginx loading: make their
        backends nginx ``server`` lines again."""
        for path in (self.router_dir / "apps").glob("*.conf"):
            text = path.read_text(encoding="utf-8")
            plain = unbalanced(text)
            if plain != text:
                self._unconfirmed()
                write_atomic(path, plain.encode())

    def _write_main_config(self, balancer: Balancer | None) -> bool:
        """Write nginx.conf (and a first generation.conf) if missing or outdated; True if written."""
        generation = self.router_dir / "generation.conf"
        if not generation.exists():
            write_atomic(generation, _generation_config("0").encode())
        text = self._main_config(balancer)
        try:
            if self.main_config_path.read_text(encoding="utf-8") == text:
                return False
        except FileNotFoundError:
            pass  # no config yet: write the first one
        if balancer is None:
            self._unbalance_apps()
        candidate = self.router_dir / ".nginx.conf.candidate"
        write_atomic(candidate, text.encode())
        try:
            self._test(candidate)
            self._unconfirmed()
            os.replace(candidate, self.main_config_path)
        finally:
            candidate.unlink(missing_ok=True)
        return True

    def _install_app_config(self, target: Path, text: str, balancer: Balancer | None) -> None:
        """Replace ``target`` with ``text`` only if nginx accepts the whole configuration with it.

        The candidate is tested through a candidate main config that includes it in place of
        ``target``; the names of both end in ".candidate", so ``apps/*.conf`` never picks them up.
        """
        candidate = target.with_name(f".{target.name}.candidate")
        main_candidate = self.router_dir / ".nginx.conf.candidate"
        others = sorted(
            path for path in target.parent.glob("*.conf") if path != target and not path.name.startswith(".")
        )
        includes = sorted([*others, candidate], key=lambda path: path.name.lstrip(".").removesuffix(".candidate"))
        main = self._main_config(balancer, app_includes=includes)
        try:
            write_atomic(candidate, text.encode())
            write_atomic(main_candidate, main.encode())
            self._test(main_candidate)
            self._unconfirmed()
            os.replace(candidate, target)
        finally:
            candidate.unlink(missing_ok=True)
            main_candidate.unlink(missing_ok=True)

    def _next_number(self, current: str | None) -> int:
        """The number of an app file's next version: above every number this home gave before
        (``lua/number``) and above the file it replaces, and near the clock's microseconds, so
        that a lost ``lua/number`` still starts above the numbers before it."""
        mark = self.lua_dir / "number"
        found = balanced_backends(current) if current else None
        try:
            last = int((_read(mark) or "0").strip() or 0)
        except ValueError:
            last = 0
        number = max(time.time_ns() // 1000, last + 1, found.number + 1 if found else 0)
        write_atomic(mark, f"{number}\n".encode())
        return number

    def _unconfirmed(self) -> None:
        if not self.unconfirmed_path.exists():
            write_atomic(self.unconfirmed_path, b"an app file changed; a reload or start has not confirmed it yet\n")

    # --- nginx processes ----------------------------------------------------------------

    def _command(self, *args: str, config: Path | None = None) -> list[str]:
        return [
            self.nginx_binary,
            "-p", f"{self.router_dir}/",
            "-e", str(self.error_log_path),
            *args,
            "-c", str(config or self.main_config_path),
        ]  # fmt: skip

    def _run(self, command: list[str]) -> tuple[int, str]:
        # stderr goes to a file, not a pipe: a daemonizing nginx could hold a pipe open.
        log = self.router_dir / "logs" / "nginx-command.log"
        try:
            with open(log, "w+b") as output:
                result = subprocess.run(
                    command,
                    cwd=self.router_dir,  # nginx's and Lua's relative paths: the router's own folder
                    check=False,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    timeout=NGINX_COMMAND_TIMEOUT,
                )
                output.seek(0)
                return result.returncode, output.read().decode(errors="replace").strip()
        except FileNotFoundError:
            raise EnvironmentProblem(f"nginx not found: {self.nginx_binary!r} (install nginx-light)") from None
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(f"`{' '.join(command)}` did not finish in {NGINX_COMMAND_TIMEOUT:.0f}s") from None

    def _test(self, config: Path) -> None:
        """``nginx -t``: the configuration must be valid, and no host name may be claimed twice
        (nginx only warns about a "conflicting server name" and lets one of them win silently)."""
        status, output = self._run(self._command("-t", config=config))
        if status != 0:
            raise EnvironmentProblem(f"nginx refused the router configuration:\n{output}")
        conflict = re.search(r'conflicting server name "([^"]*)"', output)
        if conflict:
            raise UsageError(f"{conflict.group(1)} would be routed to two apps; the router keeps its configuration")

    def _master_pid(self) -> int | None:
        """The pid of this home's nginx master, if one runs (a stale pid file gives None)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        title = process_title(pid)
        if title.startswith("nginx: master process") and title.endswith(f" -c {self.main_config_path}"):
            return pid
        return None

    def _start(self) -> None:
        self.pid_path.unlink(missing_ok=True)
        self._test(self.main_config_path)
        status, output = self._run(self._command())
        if status != 0:
            raise EnvironmentProblem(
                f"nginx could not start on port {self.settings.http_port}:\n{output or self._error_log_tail()}"
            )
        if not self._wait(lambda: self._master_pid() is not None and self._accepts_connections(), START_TIMEOUT):
            raise EnvironmentProblem(
                f"nginx did not answer on port {self.settings.http_port} within {START_TIMEOUT:.0f}s:\n"
                f"{self._error_log_tail()}"
            )
        self.unconfirmed_path.unlink(missing_ok=True)

    def _reload_or_start(self, tested: bool = False) -> None:
        if self._master_pid() is None:
            self._start()
        else:
            self._reload(tested)

    def _reload(self, tested: bool = False) -> None:
        """SIGHUP, then wait until nginx serves the new configuration. ``tested``: the configuration
        on disk is the candidate ``nginx -t`` just accepted (``_install_app_config``), so it is not
        parsed a second time; only the generation token differs, and that file is always valid."""
        master = self._master_pid()
        if master is None:
            raise EnvironmentProblem(f"nginx of {self.router_dir} is not running")
        token = secrets.token_hex(8)
        write_atomic(self.router_dir / "generation.conf", _generation_config(token).encode())
        if not tested:
            self._test(self.main_config_path)
        old_workers = children(master)
        os.kill(master, signal.SIGHUP)

        def live() -> bool:
            return self._served_generation() == token and not any(is_accepting_worker(pid) for pid in old_workers)

        if not self._wait(live, RELOAD_TIMEOUT, interval=0.01):
            raise EnvironmentProblem(
                f"nginx did not load the new configuration within {RELOAD_TIMEOUT:.0f}s:\n{self._error_log_tail()}"
            )
        self.unconfirmed_path.unlink(missing_ok=True)

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.settings.http_port), timeout=1):
                return True
        except OSError:
            return False

    def _served_generation(self) -> str | None:
        connection = http.client.HTTPConnection("127.0.0.1", self.settings.http_port, timeout=2)
        try:
            connection.request("GET", GENERATION_PATH, headers={"Host": GENERATION_HOST})
            response = connection.getresponse()
            body = response.read().decode(errors="replace").strip()
            return body if response.status == 200 else None
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()

    def _error_log_tail(self, lines: int = 20) -> str:
        try:
            text = self.error_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no error log)"
        return "\n".join(text.splitlines()[-lines:])

    @staticmethod
    def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)


def _generation_config(token: str) -> str:
    return f'return 200 "{token}\\n";\n'


def _lua_modules() -> tuple[str, ...] | None:
    """The NDK and Lua module files, loaded in that order, if nginx has both in one folder."""
    for folder in MODULE_DIRS:
        paths = tuple(f"{folder}/{name}" for name in LUA_MODULES)
        if all(os.path.isfile(path) for path in paths):
            return paths
    return None


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _same_route(current: str, text: str) -> bool:
    """Whether two app files route the same (balanced files differ in their number anyway)."""
    old, new = balanced_backends(current), balanced_backends(text)
    if old is None or new is None:
        return current == text
    return old.structure == new.structure and old.backends == new.backends


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
