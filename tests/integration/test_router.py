"""The router against a real nginx: each test runs its own nginx in a temporary home."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from gitpaas.errors import EnvironmentProblem, UsageError
from gitpaas.router.nginx import NginxRouter
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

    def __init__(self, name: str) -> None:
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
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = ("127.0.0.1", self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make_router():
    routers: list[NginxRouter] = []
    homes: list[str] = []

    def make() -> NginxRouter:
        # Not tmp_path: nginx's workers (nobody, when root) must be able to reach the home.
        home = tempfile.mkdtemp(prefix="gitpaas-router-")
        Path(home).chmod(0o755)
        homes.append(home)
        router = NginxRouter(Settings(home=Path(home), http_port=free_port()), nginx_binary=NGINX)
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

    # A file nginx cannot parse (say, edited by hand) makes the whole configuration invalid.
    broken = router.app_config_path("web").with_name("broken.conf")
    broken.write_text("server { listen ")
    with pytest.raises(EnvironmentProblem, match=r"unexpected end of file"):
        router.set_app("web", ["web.localhost"], [backends[1].address])
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


def test_setting_the_same_route_again_does_not_reload(make_router, backends):
    router = make_router()
    router.set_app("web", ["web.localhost"], [backends[0].address])
    generation = (router.router_dir / "generation.conf").read_text()
    router.set_app("web", ["web.localhost"], [backends[0].address])
    assert (router.router_dir / "generation.conf").read_text() == generation
    router.set_app("web", ["web.localhost"], [backends[1].address])
    assert (router.router_dir / "generation.conf").read_text() != generation


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
