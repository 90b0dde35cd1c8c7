"""The Platform API's defences (issue 11's security review), driven in-process through ASGI.

A small ASGI client (``Client``) plays the HTTP server: it hands the app the request body chunk by
chunk and counts what the app took, so "refused before any of the body was read" is something a
test can see. The API runs on a real home; streams that would reach Docker get the shared fakes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest

from fakes import deploy, make_platform
from gitpaas import operations
from gitpaas.accounts import Accounts
from gitpaas.api import git_http, streams
from gitpaas.api.application import MAX_BODY, BodyLimit, create_app
from gitpaas.api.core import BODY_ALLOWED
from gitpaas.signing import Signer
from gitpaas.platform import Platform

OWNER = "owner@example.com"
FRIEND = "friend@example.com"
MiB = 1024 * 1024


# --- an in-process HTTP server, for ASGI -----------------------------------------------------------

@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    #: how many bytes of the request body the app took
    read: int

    def json(self):
        return json.loads(self.body)


@dataclass
class Client:
    app: object
    tokens: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, *, user: str | None = None, json_body: object = None,
                body: bytes | None = None, chunks: Iterable[bytes] | None = None,
                headers: dict[str, str] | None = None, on_body=None, timeout: float = 20) -> Answer:
        """One request. ``chunks`` is sent without a Content-Length (chunked); ``body`` and
        ``json_body`` with one. ``on_body(chunk)`` is called as response body arrives; when it
        returns True the client disconnects."""
        sent_headers = {"host": "testserver", **(headers or {})}
        if user:
            sent_headers["authorization"] = f"Bearer {self.tokens[user]}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent_headers.setdefault("content-type", "application/json")
        if body is not None:
            sent_headers.setdefault("content-length", str(len(body)))
            chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)] or [b""]
        elif chunks is not None:
            sent_headers["transfer-encoding"] = "chunked"
        return asyncio.run(asyncio.wait_for(self._run(method, path, sent_headers, list(chunks or [b""]), on_body),
                                            timeout))

    async def _run(self, method, path, headers, chunks, on_body) -> Answer:
        read, status, answer_headers, received = 0, 0, {}, []
        pending = list(chunks)
        disconnected = asyncio.Event()

        async def receive() -> dict:
            nonlocal read
            if pending:
                chunk = pending.pop(0)
                read += len(chunk)
                return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal status, answer_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                answer_headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            elif message["type"] == "http.response.body":
                received.append(message.get("body", b""))
                if on_body is not None and on_body(message.get("body", b"")):
                    disconnected.set()
        path, _, query = path.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
                 "query_string": query.encode(), "headers": [(k.lower().encode(), _raw(v)) for k, v in headers.items()],
                 "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {}}
        await self.app(scope, receive, send)
        return Answer(status, answer_headers, b"".join(received), read)


def _raw(value: str) -> bytes:
    """A header value as a client sends it: one byte per character where it can (curl sends "²"
    as the one byte 0xB2, which the server reads back as "²"), else UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def megabytes(count: int) -> Iterable[bytes]:
    for _ in range(count):
        yield b"0" * MiB


@pytest.fixture
def platform(tmp_path) -> Platform:
    """A home on the fakes with an app "shop" owned by OWNER, FRIEND a collaborator."""
    made = make_platform(tmp_path)
    operations.create_app(made, "shop", owner=OWNER)
    operations.add_collaborator(made, "shop", FRIEND)
    return made


def signed_in_client(platform, emails) -> Client:
    """The API of ``platform``'s home, each of ``emails`` an account with a token."""
    accounts = Accounts(platform.settings)
    tokens = {}
    for email in emails:
        accounts.add_user(email)
        tokens[email] = accounts.create_token(email)[1]
    return Client(create_app(platform.settings), tokens)


@pytest.fixture
def client(platform, monkeypatch) -> Client:
    """The API of ``platform``'s home, with a token for OWNER, FRIEND and a stranger."""
    # The routes make their own Platform of the home; streams of logs need the fake scheduler.
    monkeypatch.setattr(streams, "platform_of", lambda request: platform)
    return signed_in_client(platform, (OWNER, FRIEND, "stranger@example.com"))


# --- 1. bodies are not read before the sender is known ----------------------------------------------

@pytest.mark.parametrize("path", ["/shop.git/git-receive-pack", "/nope.git/git-receive-pack",
                                  "/shop.git/git-upload-pack", "/shop.git/info/refs"])
def test_an_unauthenticated_git_request_is_refused_before_its_body_is_read(client, path):
    for send in ({"body": b"0" * (3 * MiB)}, {"chunks": megabytes(3)}):
        answer = client.request("POST", path, headers={"content-type": "application/x-git-receive-pack-request"},
                                **send)
        assert answer.status == 401 and answer.read == 0, (path, answer)
        assert answer.headers["www-authenticate"] == 'Basic realm="gitpaas"', "so git asks for credentials"


def test_a_push_to_someone_elses_app_is_refused_before_its_body_is_read(client):
    answer = client.request("POST", "/shop.git/git-receive-pack", user="stranger@example.com",
                            body=b"0" * (3 * MiB))
    assert answer.status == 404 and answer.read == 0
    assert answer.json() == {"id": "not_found", "message": "Couldn't find that app."}


@pytest.mark.parametrize("path", ["/apps", "/apps/shop.git/config-vars", "/shop.git/not-git", "/Shop.git/info/refs",
                                  "/x/shop.git/git-receive-pack", "/streams/logs/x.git/y"])
def test_other_requests_with_a_body_need_a_token_before_any_of_it_is_read(client, path):
    for send in ({"body": b"{}" + b" " * (MAX_BODY - 2)}, {"chunks": megabytes(3)}, {"json_body": {"name": "ok"}}):
        answer = client.request("POST", path, **send)
        assert answer.status == 401 and answer.read == 0, (path, answer)
        assert answer.json()["id"] == "unauthorized"


@pytest.mark.parametrize("method, path", [("POST", "/apps"), ("PATCH", "/apps/shop/config-vars"),
                                          ("POST", "/apps/shop/log-sessions"), ("PATCH", "/apps/shop.git/config-vars"),
                                          ("POST", "/shop.git/not-git"), ("POST", "/shop.git/info/refs/x")])
def test_every_other_path_keeps_the_1_mib_limit(client, method, path):
    too_large = {"id": "request_too_large", "message": f"Request bodies are limited to {MAX_BODY} bytes."}
    declared = client.request(method, path, user=OWNER, body=b"0" * (MAX_BODY + 1))
    assert declared.status == 413 and declared.read == 0 and declared.json() == too_large, declared
    chunked = client.request(method, path, user=OWNER, chunks=megabytes(3),
                             headers={"content-type": "application/json"})
    assert chunked.read <= MAX_BODY + MiB, chunked
    if path.startswith("/apps"):  # routes that read a body: FastAPI's own answer (400) is replaced
        assert chunked.status == 413 and chunked.json() == too_large, chunked


def test_a_content_length_that_is_not_ascii_digits_is_refused(client):
    answer = client.request("PATCH", "/apps/shop/config-vars", user=OWNER, body=b"{}",
                            headers={"content-length": "²"})
    assert answer.status == 413 and answer.read == 0


def test_a_checked_push_may_send_more_than_the_limit(client, tmp_path, monkeypatch):
    """Through the whole application: once the token and the access are checked, a push's body
    goes to git whole and in order (here a stand-in for ``git http-backend`` that, like it, answers
    with its headers at once, then reads the request and answers with its size and digest)."""
    counter = tmp_path / "git"
    counter.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nsha256sum\n")
    counter.chmod(0o755)
    monkeypatch.setattr(git_http.shutil, "which", lambda name: str(counter))
    push = bytes(range(256)) * (3 * MiB // 256)
    digest = hashlib.sha256(push).hexdigest()
    for send in ({"body": push}, {"chunks": [push[i:i + MiB] for i in range(0, len(push), MiB)]}):
        answer = client.request("POST", "/shop.git/git-receive-pack", user=FRIEND, **send)
        assert answer.status == 200 and answer.body.split()[0].decode() == digest, answer
        assert answer.read == len(push)


def test_only_a_checked_git_request_may_send_more_than_the_limit():
    """BodyLimit's contract with git_http: a body over MAX_BODY passes only on a git route, and
    only once the request is marked BODY_ALLOWED (git_http does so after the token and access check)."""
    def reader(mark: bool):
        async def app(scope, receive, send):
            if mark:
                scope[BODY_ALLOWED] = True
            total, more = 0, True
            while more:
                message = await receive()
                total += len(message.get("body", b""))
                more = message.get("more_body", False)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(total).encode()})
        return BodyLimit(app)
    body = b"0" * (3 * MiB)
    headers = {"authorization": "Basic x"}
    marked = Client(reader(mark=True)).request("POST", "/shop.git/git-receive-pack", body=body, headers=headers)
    assert marked.status == 200 and marked.body == str(len(body)).encode()
    unmarked = Client(reader(mark=False)).request("POST", "/shop.git/git-receive-pack", body=body, headers=headers)
    assert unmarked.status == 413 and unmarked.read == 0
    elsewhere = Client(reader(mark=True)).request("POST", "/shop.git/info/refs/x", body=body, headers=headers)
    assert elsewhere.status == 413 and elsewhere.read == 0, "the mark counts on git's own endpoints only"


# --- 2. stream URLs: bound to the app's id and the account, expiring, re-checked --------------------

def stream_path(url: str) -> str:
    return url.split("testserver", 1)[1]


def output_url_of(client: Client, user: str, version: int = 1) -> str:
    answer = client.request("GET", f"/apps/shop/releases/{version}", user=user)
    assert answer.status == 200, answer
    return stream_path(answer.json()["output_stream_url"])


def log_url_of(client: Client, user: str, **body) -> str:
    answer = client.request("POST", "/apps/shop/log-sessions", user=user, json_body=body or {"lines": 10})
    assert answer.status == 201, answer
    return stream_path(answer.json()["logplex_url"])


def assert_no_stream(answer: Answer, message: str = "Couldn't find that stream.") -> None:
    assert answer.status == 404, answer
    assert answer.json() == {"id": "not_found", "message": message}


def test_a_stream_url_serves_the_user_it_was_issued_to(client, platform):
    deploy(platform)
    platform.scheduler.logs = lambda app, lines, follow: iter([f"app[web.1]: hello from {app}"])
    output = client.request("GET", output_url_of(client, FRIEND))
    assert output.status == 200 and output.body == b"Migrating\xe2\x80\xa6\ndone\n"
    logs = client.request("GET", log_url_of(client, FRIEND))
    assert logs.status == 200 and logs.body == b"data: app[web.1]: hello from shop\n\n"


def test_a_stream_url_stops_working_when_its_user_loses_access(client, platform):
    deploy(platform)
    output, logs = output_url_of(client, FRIEND), log_url_of(client, FRIEND)
    operations.remove_collaborator(platform, "shop", FRIEND)
    assert_no_stream(client.request("GET", output))
    assert_no_stream(client.request("GET", logs))


def test_a_stream_url_does_not_follow_the_name_to_a_new_app(client, platform):
    deploy(platform)
    output, logs = output_url_of(client, OWNER), log_url_of(client, OWNER)
    operations.destroy_app(platform, "shop")
    assert_no_stream(client.request("GET", output))
    operations.create_app(platform, "shop", owner=OWNER)
    deploy(platform)
    assert_no_stream(client.request("GET", output))
    assert_no_stream(client.request("GET", logs))


def test_stream_urls_expire(client, platform, monkeypatch):
    deploy(platform)
    output, logs = output_url_of(client, OWNER), log_url_of(client, OWNER, tail=True)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 3601)
    expired = "This stream's URL has expired: ask the API for a new one."
    assert_no_stream(client.request("GET", logs), expired)
    assert client.request("GET", output).status == 200, "release output URLs last a day"
    monkeypatch.setattr(time, "time", lambda: now + 24 * 3600 + 1)
    assert_no_stream(client.request("GET", output), expired)


def test_forged_foreign_and_old_tokens_find_no_stream(client, platform):
    deploy(platform)
    output, logs = output_url_of(client, OWNER), log_url_of(client, OWNER)
    token = output.rsplit("/", 1)[1]
    key = Signer(platform.settings).key

    def signed(payload: dict) -> str:  # what an older gitpaas signed: no kind, no id, no user, no expiry
        body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        return f"{body}.{hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]}"
    for path in (f"/streams/release-output/{signed({'app': 'shop', 'v': 1})}",
                 f"/streams/logs/{signed({'app': 'shop', 'lines': 10, 'tail': True, 't': int(time.time())})}",
                 f"/streams/release-output/{signed([1, 2])}", f"/streams/release-output/{signed({'kind': 'x'})}",
                 f"/streams/logs/{token}", "/streams/release-output/" + logs.rsplit("/", 1)[1],
                 f"/streams/release-output/{token[:-1]}{'1' if token.endswith('0') else '0'}", f"/streams/release-output/{token}x",
                 "/streams/release-output/%C3%A9.%C3%A9", "/streams/release-output/é.é",
                 "/streams/release-output/.", "/streams/logs/a.b",
                 "/streams/release-output/!!!." + hmac.new(key, b"!!!", hashlib.sha256).hexdigest()[:32]):
        assert_no_stream(client.request("GET", path))


def test_an_open_tail_ends_when_its_user_loses_access(client, platform, monkeypatch):
    monkeypatch.setattr(streams, "ACCESS_RECHECK", 0.2)

    def forever(app, lines, follow):
        while True:
            yield "app[web.1]: still here"
            time.sleep(0.05)
    platform.scheduler.logs = forever
    url = log_url_of(client, FRIEND, tail=True)
    seen = []

    def on_body(chunk: bytes) -> bool:
        seen.append(chunk)
        if len(seen) == 3:
            operations.remove_collaborator(platform, "shop", FRIEND)
        return len(seen) > 500  # a client that gives up: the test fails below
    answer = client.request("GET", url, on_body=on_body)
    assert answer.status == 200 and 3 <= len(seen) < 100, len(seen)


# --- 3. config values: the CLI's rules, answered 422 ------------------------------------------------

@pytest.mark.parametrize("values, words", [
    ({"NUL": "a\x00b"}, "the value of NUL contains a NUL byte"),
    ({"BIG": "x" * 200_000}, "the value of BIG is larger than 32 KiB"),
    ({"1BAD": "x"}, "invalid config var name '1BAD'"),
    ({"K" * 300: "x"}, "config var names are limited to 256 characters"),
])
def test_config_values_the_cli_refuses_are_refused_with_422(client, platform, values, words):
    answer = client.request("PATCH", "/apps/shop/config-vars", user=OWNER, json_body=values)
    assert answer.status == 422, answer
    assert answer.json()["id"] == "invalid_params" and words in answer.json()["message"]
    assert "\n" not in answer.json()["message"]
    assert platform.apps.config("shop").get() == {}


@pytest.mark.parametrize("raw", [b'{"A": "\\ud800"}', b'{"A": "x\\udfffy"}', b'{"\\udcff": "x"}',
                                 b'{"A": "ok", "B": "\\ud83d"}'])
def test_lone_surrogates_are_refused_not_a_crash(client, platform, raw):
    answer = client.request("PATCH", "/apps/shop/config-vars", user=OWNER, body=raw,
                            headers={"content-type": "application/json"})
    assert answer.status == 422 and answer.json()["id"] == "invalid_params", answer
    assert platform.apps.config("shop").get() == {}
    description = client.request("POST", "/apps/shop/releases", user=OWNER,
                                 body=b'{"slug": "x", "description": "\\ud800"}',
                                 headers={"content-type": "application/json"})
    assert description.status == 422 and description.json()["id"] == "invalid_params"
    fine = client.request("PATCH", "/apps/shop/config-vars", user=OWNER, body=b'{"A": "\\ud83d\\ude00"}',
                          headers={"content-type": "application/json"})
    assert fine.status == 200 and fine.json() == {"A": "\N{GRINNING FACE}"}, "a surrogate pair is a character"


# --- 4. numbers are ASCII digits -----------------------------------------------------------------------

@pytest.mark.parametrize("path, headers, status", [
    ("/apps/shop/releases/v²", {}, 404), ("/apps/shop/releases/²", {}, 404), ("/apps/shop/releases/v١", {}, 404),
    ("/apps/shop/releases/v" + "9" * 5000, {}, 404),
    ("/apps/shop/releases", {"range": "version ².."}, 400), ("/apps/shop/releases", {"range": "version ..²"}, 400),
    ("/apps/shop/releases", {"range": "version ..; max=²"}, 400),
    ("/apps/shop/releases", {"range": "version ..; max=١٠"}, 400),
    ("/apps/shop/releases", {"range": "version " + "9" * 5000 + ".."}, 400),
])
def test_numbers_that_are_not_ascii_digits_are_refused(client, platform, path, headers, status):
    deploy(platform)
    answer = client.request("GET", path, user=OWNER, headers=headers)
    assert answer.status == status, answer
    assert set(answer.json()) == {"id", "message"}


def test_a_formation_quantity_is_ascii_digits(client, platform):
    deploy(platform)
    before = platform.apps.get("shop").formation
    for quantity in ("٣", "²", "+٣"):
        answer = client.request("PATCH", "/apps/shop/formation/web", user=OWNER, json_body={"quantity": quantity})
        assert answer.status == 422, (quantity, answer)
    assert platform.apps.get("shop").formation == before


def test_a_webhook_event_links_to_the_release_output_while_the_webhook_is_the_apps(platform, monkeypatch):
    """Receivers get a signed URL of the output on the published API (never a server path), which
    opens for as long as the webhook is still one of the app's."""
    from gitpaas.notify import announce
    from gitpaas.notify.store import Notifications

    monkeypatch.setattr(announce.subprocess, "Popen", lambda *args, **kwargs: type("P", (), {"wait": lambda self: 0})())
    hooks = Notifications.for_app(platform.settings, "shop")
    hook = hooks.add_webhook("https://hooks.example.com/x")
    operations.record_api_url(platform, "https://api.example.com:8443")
    deploy(platform)
    [delivery] = hooks.deliveries()
    url = delivery["event"]["data"]["output_stream_url"]
    assert url.startswith("https://api.example.com:8443/streams/release-output/")
    client = Client(create_app(platform.settings))
    path = url.removeprefix("https://api.example.com:8443")
    assert client.request("GET", path).body == "Migrating…\ndone\n".encode()
    hooks.remove_webhook(hook.id)
    assert client.request("GET", path).status == 404
