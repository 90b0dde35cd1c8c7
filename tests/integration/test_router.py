"""The router against a real nginx: each test runs its own nginx in a temporary home."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from gitpaas.errors import EnvironmentProblem, UsageError
from gitpaas.router import nginx
from gitpaas.router.nginx import NginxRouter, _lua_modules
from gitpaas.router.render import balanced_backends
from gitpaas.router.processes import children, process_title
from gitpaas.settings import Settings

pytestmark = pytest.mark.integration

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


class Backend:
    """A tiny app: answers every GET with its name and the headers the router sent."""

    def __init__(self, name: str, host: str = "127.0.0.1") -> None:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = json.dumps({"backend": backend.name, "headers": dict(self.headers)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                received = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.dumps({"backend": backend.name, "received": len(received),
                                   "sha256": hashlib.sha256(received).hexdigest()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.name = name
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": socket.getaddrinfo(host, 0)[0][0]})
        self.server = server_class((host, 0), Handler)
        self.server.daemon_threads = True
        self.address = (host, self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        # Bounded: a CI run's teardown once waited in shutdown() for minutes, the serving loop's
        # thread alive (the cause not found). Shutting the listening socket down wakes a thread
        # blocked on it (Linux), and the loop then sees the request; if even that fails, say so.
        stopping = threading.Thread(target=self.server.shutdown, daemon=True)
        stopping.start()
        stopping.join(5)
        if stopping.is_alive():
            stop_listening(self.server.socket)
            stopping.join(5)
        self.server.server_close()
        assert not stopping.is_alive(), f"backend {self.name!r} did not stop serving within 10 s"


def stop_listening(listener: socket.socket) -> None:
    """Wake a thread blocked in ``accept`` on it (a close alone leaves it blocked and listening)."""
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@pytest.fixture
def make_router():
    routers: list[NginxRouter] = []
    homes: list[str] = []

    def make(router_lua: bool = True) -> NginxRouter:
        # Not tmp_path: nginx's workers (nobody, when root) must be able to reach the home.
        home = tempfile.mkdtemp(prefix="gitpaas-router-")
        Path(home).chmod(0o755)
        homes.append(home)
        router = NginxRouter(Settings(home=Path(home), http_port=free_port(), router_lua=router_lua),
                             nginx_binary=NGINX)
        routers.append(router)
        return router

    yield make
    for router in routers:
        router.stop(timeout=5)
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def backends():
    started = [Backend("one"), Backend("two")]
    yield started
    for backend in started:
        backend.close()


def get(router: NginxRouter, host: str, path: str = "/", **headers: str) -> requests.Response:
    return requests.get(
        f"http://127.0.0.1:{router.settings.http_port}{path}", headers={"Host": host, **headers}, timeout=5
    )


def answering_backends(router: NginxRouter, host: str, times: int = 10) -> set[str]:
    names = set()
    for _ in range(times):
        response = get(router, host)
        assert response.status_code == 200, response.text
        names.add(response.json()["backend"])
    return names


def test_unknown_host_gets_the_gitpaas_404_page(make_router):
    router = make_router()
    router.ensure_running()

    response = get(router, "nothing.localhost")

    assert response.status_code == 404
    assert "No app is deployed at this address" in response.text
    assert "gitpaas apps" in response.text
    assert response.headers["Content-Type"].startswith("text/html")


def test_requests_are_balanced_and_follow_set_app_at_once(make_router, backends):
    router = make_router()
    one, two = backends

    router.set_app("web", ["web.localhost"], [one.address, two.address])
    assert router.is_running()
    assert answering_backends(router, "web.localhost") == {"one", "two"}

    router.set_app("web", ["web.localhost"], [two.address])
    assert answering_backends(router, "web.localhost") == {"two"}


def test_backends_get_forwarding_headers(make_router, backends):
    router = make_router()
    router.set_app("web", ["web.localhost"], [backends[0].address])

    sent = get(router, "web.localhost", **{"X-Request-Id": "abc-123"}).json()["headers"]
    made = get(router, "web.localhost").json()["headers"]

    assert sent["Host"] == "web.localhost"
    assert sent["X-Forwarded-For"] == "127.0.0.1"
    assert sent["X-Forwarded-Proto"] == "http"
    assert sent["X-Request-Id"] == "abc-123"
    assert len(made["X-Request-Id"]) == 32


def test_large_bodies_pass_through_the_workers_buffers(make_router, backends):
    """nginx buffers a large request body in a temp file its workers write (as nobody, when root)."""
    router = make_router()
    router.set_app("web", ["web.localhost"], [backends[0].address])
    body = os.urandom(300_000)
    answer = requests.post(f"http://127.0.0.1:{router.settings.http_port}/", data=body,
                           headers={"Host": "web.localhost"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"backend": "one", "received": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_app_without_backends_answers_503(make_router):
    router = make_router()
    router.set_app("idle", ["idle.localhost"], [])

    response = get(router, "idle.localhost")

    assert response.status_code == 503
    assert "no web process" in response.text


def test_invalid_change_is_refused_and_the_old_config_keeps_serving(make_router, backends):
    router = make_router()
    router.set_app("web", ["web.localhost"], [backends[0].address])

    with pytest.raises(UsageError):
        router.set_app("web", ["web.localhost;", "evil { }"], [backends[1].address])
    assert answering_backends(router, "web.localhost") == {"one"}

    # A file nginx cannot parse (say, edited by hand) makes the whole configuration invalid: a
    # change that needs a reload (here a new host name) is refused. (A change of backends alone
    # takes no reload, so the running nginx never reads that file: see the balancer's tests.)
    broken = router.app_config_path("web").with_name("broken.conf")
    broken.write_text("server { listen ")
    with pytest.raises(EnvironmentProblem, match=r"unexpected end of file"):
        router.set_app("web", ["web.localhost", "www.web.localhost"], [backends[1].address])
    assert answering_backends(router, "web.localhost") == {"one"}
    assert sorted(path.name for path in router.app_config_path("web").parent.iterdir()) == ["broken.conf", "web.conf"]

    broken.unlink()
    router.set_app("web", ["web.localhost"], [backends[1].address])
    assert answering_backends(router, "web.localhost") == {"two"}


def test_a_host_name_claimed_by_two_apps_is_refused_not_silently_given_to_one(make_router, backends):
    """nginx only warns about a "conflicting server name" and lets the first one win: gitpaas refuses."""
    router = make_router()
    router.set_app("acme", ["acme.localhost"], [backends[0].address])
    with pytest.raises(UsageError, match="acme.localhost would be routed to two apps"):
        router.set_app("thief", ["thief.localhost", "acme.localhost"], [backends[1].address])
    assert not router.app_config_path("thief").exists()
    assert answering_backends(router, "acme.localhost") == {"one"}


def generation(router: NginxRouter) -> str:
    return (router.router_dir / "generation.conf").read_text()


def test_setting_the_same_route_again_does_not_reload(make_router, backends):
    router = make_router()
    router.set_app("web", ["web.localhost"], [backends[0].address])
    before = generation(router)
    router.set_app("web", ["web.localhost"], [backends[0].address])
    assert generation(router) == before
    router.set_app("web", ["web.localhost", "www.web.localhost"], [backends[0].address])
    assert generation(router) != before


def test_nginx_has_the_lua_module_here_and_loads_it(make_router):
    """The balancer's tests below are only worth their name where the module is: setup installs it."""
    assert _lua_modules() is not None, "libnginx-mod-http-lua is not installed (scripts/setup.sh installs it)"
    router = make_router()
    router.ensure_running()
    assert router._balancer() is not None
    assert json.loads((router.lua_dir / "modules.json").read_text())["loads"] is True
    assert not list(router.lua_dir.glob(".probe*"))  # its configuration and pid file are gone


def test_a_change_of_backends_alone_takes_no_reload_and_holds_across_reloads_and_restarts(make_router, backends):
    router = make_router()
    one, two = backends
    router.set_app("web", ["web.localhost"], [one.address])
    assert "balancer_by_lua_block" in router.app_config_path("web").read_text()
    before, workers = generation(router), children(router._master_pid())

    router.set_app("web", ["web.localhost"], [two.address])

    # answered by the new backend from the first request on, by the same worker, not reloaded
    assert answering_backends(router, "web.localhost") == {"two"}
    assert generation(router) == before
    assert children(router._master_pid()) == workers
    assert f"127.0.0.1:{two.address[1]}" in router.app_config_path("web").read_text()  # the file says so too

    router.set_app("web", ["web.localhost", "www.web.localhost"], [one.address, two.address])  # a reload
    assert generation(router) != before
    assert answering_backends(router, "www.web.localhost") == {"one", "two"}
    router.set_app("web", ["web.localhost", "www.web.localhost"], [one.address])
    router.stop(timeout=5)
    router.ensure_running()
    assert answering_backends(router, "web.localhost") == {"one"}


def number_of(router: NginxRouter, app: str) -> int:
    return balanced_backends(router.app_config_path(app).read_text()).number


def test_the_newer_of_the_file_and_the_pushed_list_wins(make_router, backends, monkeypatch):
    router = make_router()
    one, two = backends
    router.set_app("web", ["web.localhost"], [one.address])
    number = number_of(router, "web")

    assert push(router, f"web\n{number - 1}\n127.0.0.1:{two.address[1]}").status_code == 200
    assert answering_backends(router, "web.localhost") == {"one"}  # older than the file nginx loaded
    assert push(router, f"web\n{number + 1}\n127.0.0.1:{two.address[1]}").status_code == 200
    assert answering_backends(router, "web.localhost") == {"two"}

    # a push that does not arrive: a tested reload loads the file, which is newer than the memory
    before = generation(router)
    monkeypatch.setattr(router, "_push_backends", lambda app, balanced, balancer: False)
    router.set_app("web", ["web.localhost"], [one.address, two.address])
    assert generation(router) != before
    assert answering_backends(router, "web.localhost") == {"one", "two"}


def test_no_request_reaches_a_retired_backend_during_a_reload_or_after_a_worker_crash(make_router, backends):
    """A reload's old worker serves on for 100 ms beside the new one, and a crashed worker comes
    back with the configuration loaded last: both know only the older file, and must still
    follow the list pushed since."""
    router = make_router()
    one, two = backends
    router.set_app("web", ["web.localhost"], [one.address])
    router.set_app("other", ["other.localhost"], [one.address])
    router.set_app("web", ["web.localhost"], [two.address])  # pushed: nginx loaded "one"
    one.close()  # retired: a request that still went there would fail
    answers: list[int | str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            response = get(router, "web.localhost")
            answers.append(response.json()["backend"] if response.status_code == 200 else response.status_code)

    # a crashed worker first: nginx loaded "one" for web, and its new worker gets that
    worker = children(router._master_pid())[0]
    os.kill(worker, signal.SIGKILL)
    assert wait_for(lambda: children(router._master_pid()) not in ([], [worker]))
    assert answering_backends(router, "web.localhost") == {"two"}

    loader = threading.Thread(target=load)
    loader.start()
    try:
        for _ in range(3):
            router.set_app("other", ["other.localhost", f"www{len(answers)}.other.localhost"], [two.address])  # reloads
    finally:
        stop.set()
        loader.join()
    assert answers and set(answers) == {"two"}, answers


def test_a_switch_that_fails_leaves_the_old_backends_in_the_file_and_in_nginx(make_router, backends, monkeypatch):
    """The push reached nginx but its answer was lost, and the tested reload that follows fails:
    the caller stops the new backends next, so nginx must be back on the old ones, by a push."""
    router = make_router()
    one, two = backends
    router.set_app("web", ["web.localhost"], [one.address])
    before = generation(router)
    real_push, pushed = router._push_backends, []

    def answer_lost_once(app, balanced, balancer):
        landed = real_push(app, balanced, balancer)
        pushed.append(balanced.number)
        return landed and len(pushed) > 1

    def refused(target, text, balancer):
        raise EnvironmentProblem("nginx refused the router configuration")

    monkeypatch.setattr(router, "_push_backends", answer_lost_once)
    monkeypatch.setattr(router, "_install_app_config", refused)
    with pytest.raises(EnvironmentProblem):
        router.set_app("web", ["web.localhost"], [two.address])
    monkeypatch.undo()

    restored = balanced_backends(router.app_config_path("web").read_text())
    assert restored.backends == f"127.0.0.1:{one.address[1]}" and restored.number > pushed[0]
    assert answering_backends(router, "web.localhost") == {"one"}  # pushed back, not reloaded
    assert generation(router) == before
    assert not router.unconfirmed_path.exists()


def test_a_removed_app_leaves_no_list_behind(make_router, backends):
    router = make_router()
    one, two = backends
    router.set_app("web", ["web.localhost"], [one.address])
    assert push(router, f"web\n{10**15}\n127.0.0.1:{two.address[1]}").status_code == 200  # far ahead of any file

    router.remove_app("web")
    router.set_app("web", ["web.localhost"], [one.address])

    assert answering_backends(router, "web.localhost") == {"one"}


def test_a_late_push_does_not_undo_a_newer_one(make_router, backends):
    router = make_router()
    one, two = backends
    router.set_app("web", ["web.localhost"], [one.address])
    router.set_app("web", ["web.localhost"], [two.address])
    number = number_of(router, "web")

    assert push(router, f"web\n{number - 1}\n127.0.0.1:{one.address[1]}").status_code == 409
    assert answering_backends(router, "web.localhost") == {"two"}


def test_after_a_reload_that_did_not_confirm_the_next_switch_reloads(make_router, backends):
    """nginx may run another version of a file than the one on disk until a reload is confirmed
    (one timed out, or gitpaas was killed before it): a list pushed then might reach no upstream."""
    router = make_router()
    one, two = backends
    router.set_app("web", ["web.localhost"], [one.address])
    assert not router.unconfirmed_path.exists()
    router._unconfirmed()  # what an install leaves until its reload is confirmed
    before = generation(router)

    router.set_app("web", ["web.localhost"], [two.address])

    assert generation(router) != before and not router.unconfirmed_path.exists()
    assert answering_backends(router, "web.localhost") == {"two"}
    after = generation(router)
    router.set_app("web", ["web.localhost"], [one.address])
    assert generation(router) == after  # confirmed: pushed again, no reload
    assert answering_backends(router, "web.localhost") == {"one"}

    # killed between writing a file and pushing it: the file already says what set_app asks for
    router._unconfirmed()
    router.app_config_path("web").write_text(router.app_config_path("web").read_text()
                                             .replace(f":{one.address[1]}", f":{two.address[1]}"))
    router.set_app("web", ["web.localhost"], [two.address])
    assert generation(router) != after
    assert answering_backends(router, "web.localhost") == {"two"}


def test_only_gitpaas_may_set_backends(make_router, backends):
    router = make_router()
    router.set_app("web", ["web.localhost"], [backends[0].address])
    url = f"http://127.0.0.1:{router.settings.http_port}/__gitpaas/backends"
    body = f"web\n{number_of(router, 'web') + 1}\n127.0.0.1:{backends[1].address[1]}"

    assert push(router, body, token="0" * 32).status_code == 403
    assert requests.post(url, data=body, headers={"Host": "__gitpaas_router"}, timeout=5).status_code == 403
    assert requests.get(url, headers={"Host": "__gitpaas_router"}, timeout=5).status_code == 405
    assert push(router, "web\n1\n127.0.0.1:1; rm -rf /").status_code == 400
    assert push(router, "web\n1\n   ").status_code == 400
    assert push(router, "web\n1\n127.0.0.1").status_code == 400
    # what the HTTPS server passes on comes from 127.0.0.1 too, with X-Forwarded-Proto: refused
    assert push(router, body, **{"X-Forwarded-Proto": "https"}).status_code == 404
    assert get(router, "__gitpaas_router", "/__gitpaas/generation", **{"X-Forwarded-Proto": "https"}).status_code == 404
    # from another address (127.0.0.2 is loopback too, but not the one allowed): neither endpoint answers
    router.reload()  # a generation token of its own, not the first "0"
    for method, path in (("POST", "/__gitpaas/backends"), ("GET", "/__gitpaas/generation")):
        connection = http.client.HTTPConnection("127.0.0.1", router.settings.http_port, timeout=5,
                                                source_address=("127.0.0.2", 0))
        connection.request(method, path, body=body if method == "POST" else None,
                           headers={"Host": "__gitpaas_router",
                                    "X-Gitpaas-Router-Token": (router.lua_dir / "balancer.token").read_text()})
        response = connection.getresponse()
        assert response.status in (403, 404) and generation(router).split('"')[1].removesuffix("\\n") not in response.read().decode()
        connection.close()
    # an app's own host cannot reach it either: the path belongs to the default server only
    assert requests.post(url, data=body, headers={"Host": "web.localhost"}, timeout=5).json()["backend"] == "one"
    assert answering_backends(router, "web.localhost") == {"one"}
    assert (router.lua_dir / "balancer.token").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("lua", [True, False], ids=["balancer", "nginx-servers"])
def test_a_backend_that_cannot_be_reached_is_skipped(make_router, backends, lua):
    """As nginx's own max_fails=1: the request goes on to the next backend, and the dead one is
    left out for a while (only one request tried it). The same with the balancer and without it."""
    router = make_router(router_lua=lua)
    dead = ("127.0.0.1", free_port())
    router.set_app("web", ["web.localhost"], [dead, backends[0].address])
    assert ("balancer_by_lua_block" in router.app_config_path("web").read_text()) == lua

    assert answering_backends(router, "web.localhost", times=6) == {"one"}
    tried = [line.split('"')[5] for line in (router.router_dir / "logs" / "access.log").read_text().splitlines()]
    assert tried.count(f"127.0.0.1:{dead[1]}, 127.0.0.1:{backends[0].address[1]}") == 1, tried  # then left out

    router.set_app("web", ["web.localhost"], [dead])
    assert get(router, "web.localhost").status_code == 502


@pytest.mark.parametrize("lua", [True, False], ids=["balancer", "nginx-servers"])
def test_a_kept_alive_connection_the_backend_closed_is_retried_on_a_new_one(make_router, lua):
    """The one backend closes a connection nginx kept (as an app server ending an idle one does,
    at the moment nginx reuses it): nginx tries that backend again on a new connection."""
    router = make_router(router_lua=lua)
    closing = ClosingBackend()
    try:
        router.set_app("web", ["web.localhost"], [closing.address])
        statuses = [get(router, "web.localhost").status_code for _ in range(4)]
    finally:
        closing.close()
    assert statuses == [200] * 4
    assert closing.dropped >= 1  # the case happened


def test_an_ipv6_backend_is_balanced(make_router):
    router = make_router()
    backend = Backend("six", host="::1")
    try:
        router.set_app("web", ["web.localhost"], [backend.address])
        assert '"[::1]:' in router.app_config_path("web").read_text()
        assert answering_backends(router, "web.localhost") == {"six"}
    finally:
        backend.close()


def test_turning_the_balancer_off_or_losing_the_module_keeps_the_router_working(make_router, backends, monkeypatch):
    router = make_router()
    one, two = backends
    router.set_app("web", ["web.localhost"], [one.address])
    router.set_app("shop", ["shop.localhost"], [one.address])

    off = NginxRouter(replace(router.settings, router_lua=False), nginx_binary=NGINX)
    off.set_app("web", ["web.localhost"], [two.address])  # a reload; "shop" keeps its balancer
    assert "balancer_by_lua_block" not in off.app_config_path("web").read_text()
    assert answering_backends(router, "web.localhost") == {"two"}

    monkeypatch.setattr(nginx, "_lua_modules", lambda: None)  # the module was removed
    router.set_app("web", ["web.localhost"], [one.address])
    assert "load_module" not in router.main_config_path.read_text()
    assert "balancer_by_lua_block" not in router.app_config_path("shop").read_text()  # made nginx servers
    assert answering_backends(router, "web.localhost") == {"one"}
    assert answering_backends(router, "shop.localhost") == {"one"}


def test_without_lua_a_change_of_backends_reloads(make_router, backends):
    router = make_router(router_lua=False)
    router.set_app("web", ["web.localhost"], [backends[0].address])
    before = generation(router)
    assert "balancer_by_lua_block" not in router.app_config_path("web").read_text()

    router.set_app("web", ["web.localhost"], [backends[1].address])

    assert generation(router) != before
    assert answering_backends(router, "web.localhost") == {"two"}


def push(router: NginxRouter, body: str, token: str | None = None, **headers: str) -> requests.Response:
    token = token or (router.lua_dir / "balancer.token").read_text()
    return requests.post(f"http://127.0.0.1:{router.settings.http_port}/__gitpaas/backends", data=body,
                         headers={"Host": "__gitpaas_router", "X-Gitpaas-Router-Token": token, **headers}, timeout=5)


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


class ClosingBackend:
    """Answers the first request of each connection (keeping it open) and closes the connection
    at the second without a word."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = ("127.0.0.1", self.listener.getsockname()[1])
        self.dropped = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                data += chunk
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
            if connection.recv(65536):
                self.dropped += 1  # the second request: closed unanswered

    def close(self) -> None:
        stop_listening(self.listener)
        self.listener.close()


def test_two_homes_run_side_by_side(make_router, backends):
    first, second = make_router(), make_router()
    first.set_app("alpha", ["alpha.localhost"], [backends[0].address])
    second.set_app("beta", ["beta.localhost"], [backends[1].address])

    assert answering_backends(first, "alpha.localhost") == {"one"}
    assert answering_backends(second, "beta.localhost") == {"two"}
    assert get(first, "beta.localhost").status_code == 404
    assert get(second, "alpha.localhost").status_code == 404


def test_remove_app_brings_back_the_404(make_router, backends):
    router = make_router()
    router.set_app("web", ["web.localhost"], [backends[0].address])

    router.remove_app("web")

    assert not router.app_config_path("web").exists()
    response = get(router, "web.localhost")
    assert response.status_code == 404
    assert "No app is deployed at this address" in response.text


def test_stale_pid_file_does_not_stop_a_start(make_router):
    router = make_router()
    router.settings.router_dir.mkdir(parents=True)
    # A live process that is not this home's nginx: the test process itself.
    (router.settings.router_dir / "nginx.pid").write_text(f"{os.getpid()}\n")

    assert not router.is_running()
    router.ensure_running()

    assert router.is_running()
    assert get(router, "x.localhost").status_code == 404


def test_start_on_a_busy_port_explains_why(make_router):
    router = make_router()
    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", router.settings.http_port))
        squatter.listen()
        with pytest.raises(EnvironmentProblem, match="Address already in use"):
            router.ensure_running()
    assert not router.is_running()


def test_stop_leaves_no_nginx_of_that_home(make_router):
    router, other = make_router(), make_router()
    router.ensure_running()
    other.ensure_running()
    master = router._master_pid()
    processes = [master, *children(master)]
    assert len(processes) == 2

    router.stop()

    assert not router.is_running()
    assert not any(process_title(pid) for pid in processes)
    assert other.is_running()
    with pytest.raises(requests.ConnectionError):
        get(router, "x.localhost")
