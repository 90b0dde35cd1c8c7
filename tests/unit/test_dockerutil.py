"""How gitpaas's Docker client picks the Engine API version: from an unversioned ``/_ping``'s
``Api-Version`` header, as Docker's own command line does, never docker-py's ``/version`` (which
the engine answers by running ``runc --version``). A small HTTP server stands in for the engine and
says what was asked of it; tests/integration/test_push_to_live.py asks the real engine."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from docker.constants import DEFAULT_DOCKER_API_VERSION
from docker.errors import APIError

from gitpaas.dockerutil import docker_client, negotiated_client
from gitpaas.errors import EnvironmentProblem


class FakeEngine:
    """Answers ``/_ping`` (with ``ping_version`` in its header, or none; ``ping_status``), ``/version``
    (``ApiVersion``: ``version``) and ``/vX/info``; ``asked`` lists the paths requested, in order."""

    def __init__(self, ping_version: str | None, ping_status: int = 200, version: str = "1.40") -> None:
        self.asked: list[str] = []
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 — http.server's name
                engine.asked.append(self.path)
                ping = self.path.endswith("/_ping")
                body = b"OK" if ping else json.dumps({"ApiVersion": version, "Swarm": {}}).encode()
                self.send_response(ping_status if ping else 200)
                if ping and ping_version:
                    self.send_header("Api-Version", ping_version)
                self.send_header("Content-Type", "text/plain" if ping else "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"tcp://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine(request, monkeypatch):
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    fake = FakeEngine(*request.param) if isinstance(request.param, tuple) else FakeEngine(request.param)
    yield fake
    fake.close()


@pytest.mark.parametrize("engine", ["1.41"], indirect=True)
def test_the_version_comes_from_one_unversioned_ping_and_is_used_from_the_next_request_on(engine):
    client = negotiated_client(engine.url)
    try:
        assert client.api.api_version == "1.41"
        assert engine.asked == ["/_ping"]  # (no /version)
        client.info()
        assert engine.asked == ["/_ping", "/v1.41/info"]
    finally:
        client.close()


@pytest.mark.parametrize("engine", ["1.41"], indirect=True)
def test_the_environments_engine_is_found_the_same_way(engine, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", engine.url)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    client = docker_client()
    try:
        assert client.api.api_version == "1.41" and engine.asked == ["/_ping"]
    finally:
        client.close()


@pytest.mark.parametrize("engine", ["9.99"], indirect=True)
def test_an_engine_newer_than_the_client_is_spoken_to_in_the_clients_newest_version(engine):
    client = negotiated_client(engine.url)
    try:
        assert client.api.api_version == DEFAULT_DOCKER_API_VERSION
    finally:
        client.close()


@pytest.mark.parametrize("engine", [None, "1.41-beta"], indirect=True, ids=["no-header", "not-a-version"])
def test_an_engine_whose_ping_names_no_version_is_asked_the_usual_way(engine):
    client = negotiated_client(engine.url)
    try:
        assert client.api.api_version == "1.40"
        assert engine.asked == ["/_ping", "/version"]
    finally:
        client.close()


@pytest.mark.parametrize("engine", ["1.12", (None, 200, "1.12")], indirect=True, ids=["in-the-ping", "asked"])
def test_an_engine_too_old_for_the_client_is_said_so_in_one_line(engine):
    with pytest.raises(EnvironmentProblem, match=r"^the Docker engine is too old for gitpaas's Docker client "
                                                 r"\(.*1\.24.*\): upgrade Docker$"):
        negotiated_client(engine.url)


@pytest.mark.parametrize("engine", [("1.41", 500)], indirect=True)
def test_a_ping_the_engine_refuses_is_dockers_api_error_and_one_line_for_the_user(engine, monkeypatch):
    with pytest.raises(APIError):
        negotiated_client(engine.url)
    monkeypatch.setenv("DOCKER_HOST", engine.url)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    with pytest.raises(EnvironmentProblem, match=r"^cannot reach the Docker engine \(APIError\); run scripts/setup.sh"):
        docker_client()
