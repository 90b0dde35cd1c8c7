"""The Platform API against a real `gitpaas server`, real deploys and real streams."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from harness import ApiServer, wait_for
from schema import validate

WEB = "web: python3 /app/server.py\n"




@pytest.fixture
def api(home):
    server = ApiServer(home)
    yield server
    server.stop()


def deploy(home, api, app: str, **files) -> None:
    push = home.push(app, "web", files=files or None, url=api.git_url(app))
    assert push.returncode == 0, push.stderr


def snapshot(home) -> str:
    """A digest of every file in the home, to show a refused request changed nothing."""
    digest = hashlib.sha256()
    for path in sorted(p for p in home.path.rglob("*") if p.is_file() and "router" not in p.parts
                       and "logs" not in p.parts):
        digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


def test_apps_and_git_push_over_http(home, api):
    created = api.call("POST", "/apps", json={"name": "viahttp"})
    assert created.status_code == 201
    app = created.json()
    validate("app", app)
    assert app["git_url"] == f"{api.url}/viahttp.git" and app["owner"]["email"] == api.email
    push = home.push("viahttp", "web", url=api.git_url("viahttp"))
    assert push.returncode == 0, push.stderr
    assert "remote: -----> Release v1 created" in push.stderr and "release phase for hello v1" in push.stderr
    assert home.get("viahttp").text == "hello v1 from web.1\n"
    assert home.release("viahttp", 1)["user"]["email"] == api.email, "the pushing account is recorded"
    assert [a["name"] for a in api.call("GET", "/apps").json()] == ["viahttp"]
    info = api.call("GET", "/apps/viahttp").json()
    assert info["released_at"] and api.call("GET", f"/apps/{info['id']}").json()["name"] == "viahttp"

    failing = home.push("viahttp", "web", files={"Procfile": WEB + "release: echo boom; exit 2\n"},
                        url=api.git_url("viahttp"))
    assert failing.returncode != 0 and "release v2 failed: release command exited with status 2" in failing.stderr
    assert home.get("viahttp").text == "hello v1 from web.1\n"

    assert api.call("DELETE", "/apps/viahttp").status_code == 200
    assert api.call("GET", "/apps/viahttp").status_code == 404


def test_who_may_do_what(home, api):
    api.call("POST", "/apps", json={"name": "mine"})
    deploy(home, api, "mine")
    home.gitpaas("users:add", "other@example.com")
    other = api.create_token("other@example.com")
    for method, path in (("GET", "/apps/mine"), ("GET", "/apps/mine/config-vars"), ("GET", "/apps/mine/releases"),
                         ("GET", "/apps/nope")):
        refused = api.call(method, path, token=other)
        assert refused.status_code == 404 and refused.json() == {"id": "not_found", "message": "Couldn't find that app."}
    assert api.call("GET", "/apps", token=other).json() == []
    before = home.remote_ref("mine")
    push = home.push("mine", "web", files={"BODY": "intruder"}, url=api.git_url("mine", token=other))
    assert push.returncode != 0 and home.remote_ref("mine") == before, "refused before anything was received"
    anonymous = home.push("mine", "web", url=api.git_url("mine", token=None), env={"GIT_TERMINAL_PROMPT": "0"})
    assert anonymous.returncode != 0

    assert api.call("GET", "/apps/mine", token=None).status_code == 401
    assert api.call("GET", "/apps/mine", token="gp_not-a-token").status_code == 401
    in_query = requests.get(f"{api.url}/apps/mine?token={api.token}", timeout=10)
    assert in_query.status_code == 401 and in_query.json()["id"] == "unauthorized"

    home.gitpaas("access:add", "other@example.com", "-a", "mine")
    assert api.call("GET", "/apps/mine", token=other).status_code == 200
    assert api.call("DELETE", "/apps/mine", token=other).status_code == 403, "only the owner destroys"
    token_id = next(t["id"] for t in json.loads(
        home.gitpaas("tokens", "--user", "other@example.com", "--json").stdout))
    home.gitpaas("tokens:revoke", token_id)
    assert api.call("GET", "/apps/mine", token=other).status_code == 401


def test_releases_range_rollback_and_slug_release(home, api):
    api.call("POST", "/apps", json={"name": "ranged"})
    for body in ("one", "two", "three"):
        deploy(home, api, "ranged", BODY=body)
    page = api.call("GET", "/apps/ranged/releases", headers={"Range": "version ..; max=2, order=desc"})
    assert page.status_code == 206 and [r["version"] for r in page.json()] == [3, 2]
    assert page.headers["Next-Range"] == "version ]2..; max=2, order=desc"
    rest = api.call("GET", "/apps/ranged/releases", headers={"Range": page.headers["Next-Range"]})
    assert rest.status_code == 200 and [r["version"] for r in rest.json()] == [1]
    for release in page.json() + rest.json():
        validate("release", release)
    v1 = rest.json()[0]
    assert api.call("GET", f"/apps/ranged/releases/{v1['id']}").json()["version"] == 1
    assert api.call("GET", "/apps/ranged/releases/2").json()["description"].startswith("Deploy ")

    rollback = api.call("POST", "/apps/ranged/releases", json={"release": v1["id"]})
    assert rollback.status_code == 201
    validate("release", rollback.json())
    assert rollback.json()["description"] == "Rollback to v1"
    wait_for(lambda: api.call("GET", "/apps/ranged/releases/4").json()["status"] == "succeeded", "the rollback")
    assert home.get("ranged").text == "one from web.1\n"

    again = api.call("POST", "/apps/ranged/releases", json={"slug": page.json()[0]["slug"]["id"],
                                                           "description": "Back to three"})
    assert again.status_code == 201 and again.json()["description"] == "Back to three"
    wait_for(lambda: home.get("ranged").text == "three from web.1\n", "the slug release")


def test_config_vars_return_at_once_and_the_release_streams_its_output(home, api):
    api.call("POST", "/apps", json={"name": "cfg"})
    deploy(home, api, "cfg", Procfile=WEB + "release: echo start; sleep 3; echo done $COLOR\n")
    started = api.call("PATCH", "/apps/cfg/config-vars", json={"COLOR": "blue", "EMPTY": ""})
    assert started.status_code == 200 and started.json() == {"COLOR": "blue", "EMPTY": ""}
    pending = api.call("GET", "/apps/cfg/releases/2").json()
    assert pending["status"] == "pending" and pending["description"] == "Set COLOR, EMPTY config vars"
    validate("release", pending)

    received: list[tuple[float, bytes]] = []
    with requests.get(pending["output_stream_url"], stream=True, timeout=60) as stream:
        for chunk in stream.iter_content(chunk_size=None):
            received.append((time.monotonic(), chunk))
    text = b"".join(chunk for _, chunk in received).decode()
    assert text == "start\ndone blue\n"
    assert len(received) >= 2, "output arrived while the release was running, not all at the end"
    assert api.call("GET", "/apps/cfg/releases/2").json()["status"] == "succeeded"
    assert api.call("GET", "/apps/cfg/releases/2/config-vars").json() == {"COLOR": "blue", "EMPTY": ""}
    removed = api.call("PATCH", "/apps/cfg/config-vars", json={"EMPTY": None})
    assert removed.json() == {"COLOR": "blue"}
    wait_for(lambda: api.call("GET", "/apps/cfg/releases/3").json()["status"] == "succeeded", "the unset release")


def test_formation_and_dynos(home, api):
    api.call("POST", "/apps", json={"name": "dynos"})
    deploy(home, api, "dynos", Procfile=WEB + "worker: sleep infinity\n")
    formation = api.call("GET", "/apps/dynos/formation").json()
    assert {(f["type"], f["quantity"]) for f in formation} == {("web", 1), ("worker", 0)}
    for entry in formation:
        validate("formation", entry)
    batch = api.call("PATCH", "/apps/dynos/formation", json={"updates": [{"type": "web", "quantity": 2}]})
    assert {(f["type"], f["quantity"]) for f in batch.json()} == {("web", 2), ("worker", 0)}
    single = api.call("PATCH", "/apps/dynos/formation/worker", json={"quantity": 1})
    assert single.json()["quantity"] == 1
    dynos = [d for d in api.call("GET", "/apps/dynos/dynos").json() if d["state"] == "up"]
    assert sorted(d["name"] for d in dynos) == ["web.1", "web.2", "worker.1"]
    for dyno in dynos:
        validate("dyno", dyno)
    assert api.call("DELETE", "/apps/dynos/dynos/web.1").status_code == 202
    assert api.call("DELETE", "/apps/dynos/dynos").status_code == 202
    assert {home.get("dynos").text for _ in range(8)} == {"hello v1 from web.1\n", "hello v1 from web.2\n"}
    assert api.call("PATCH", "/apps/dynos/formation/nope", json={"quantity": 1}).status_code == 400


def test_stopping_a_release_command_through_the_api(home, api):
    api.call("POST", "/apps", json={"name": "stopper"})
    deploy(home, api, "stopper", Procfile=WEB + 'release: test -z "$SLOW" || sleep 120\n')
    assert api.call("PATCH", "/apps/stopper/config-vars", json={"SLOW": "1"}).status_code == 200
    dyno = wait_for(lambda: next((d for d in api.call("GET", "/apps/stopper/dynos").json()
                                  if d["type"] == "release"), None), "release.NNNN in the dyno list")
    assert dyno["name"].startswith("release.") and dyno["release"]["version"] == 2
    assert api.call("POST", f"/apps/stopper/dynos/{dyno['name']}/actions/stop").status_code == 202
    wait_for(lambda: api.call("GET", "/apps/stopper/releases/2").json()["status"] == "failed", "v2 to fail")
    assert home.release("stopper", 2)["failure"]["reason"] == "release command stopped"
    assert home.get("stopper").text == "hello v1 from web.1\n"


def test_log_sessions_stream_the_apps_output(home, api):
    api.call("POST", "/apps", json={"name": "logs"})
    deploy(home, api, "logs")
    home.get("logs", "/hello-logs")
    session = api.call("POST", "/apps/logs/log-sessions", json={"lines": 50, "tail": False})
    assert session.status_code == 201
    lines = requests.get(session.json()["logplex_url"], timeout=30).text.splitlines()
    assert any("app[web.1]:" in line and "/hello-logs" in line for line in lines), lines

    tail = api.call("POST", "/apps/logs/log-sessions", json={"tail": True, "lines": 1}).json()["logplex_url"]
    seen: list[str] = []

    def follow() -> None:
        with requests.get(tail, stream=True, timeout=60) as stream:
            for line in stream.iter_lines(decode_unicode=True):
                seen.append(line)
                if "/later-request" in line:
                    return
    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    # A tail starts with the last line already written: once that arrives, the stream is following.
    wait_for(lambda: any("app[web.1]:" in line for line in seen), "the tail to start with the last line")
    home.get("logs", "/later-request")
    follower.join(timeout=30)
    assert any("/later-request" in line for line in seen), "the tail received a line written after it started"


def test_bad_input_gets_a_json_4xx_and_changes_nothing(home, api):
    api.call("POST", "/apps", json={"name": "solid"})
    before = snapshot(home)
    cases = [
        ("PATCH", "/apps/solid/config-vars", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("PATCH", "/apps/solid/config-vars", {"json": {"GOOD": 3}}),
        ("PATCH", "/apps/solid/config-vars", {"json": {"1BAD": "x"}}),
        ("PATCH", "/apps/solid/formation", {"json": {"updates": [{"type": "web", "quantity": "many"}]}}),
        ("PATCH", "/apps/solid/formation", {"json": {"updates": [], "surprise": True}}),
        ("POST", "/apps", {"json": {"name": "Bad Name!"}}),
        ("POST", "/apps", {"json": {"name": "x" * 5000}}),
        ("POST", "/apps/solid/releases", {"json": {"release": "v999"}}),
        ("POST", "/apps/solid/releases", {"json": {}}),
        ("PATCH", "/apps/solid/config-vars", {"data": b'{"A": "' + b"x" * 2_000_000 + b'"}',
                                              "headers": {"Content-Type": "application/json"}}),
        ("GET", "/apps/..%2F..%2Fetc%2Fpasswd", {}),
        ("GET", "/apps/%2e%2e", {}),
        ("GET", "/apps/" + "a" * 300, {}),
        ("GET", "/apps/solid/releases", {"headers": {"Range": "version nonsense"}}),
        ("GET", "/apps/solid/releases", {"headers": {"Range": "version ..; max=0"}}),
        ("GET", "/apps/solid/releases", {"headers": {"Range": "version ..; order=sideways"}}),
    ]
    for method, path, kwargs in cases:
        response = api.call(method, path, **kwargs)
        assert 400 <= response.status_code < 500, (method, path, response.status_code, response.text[:200])
        body = response.json()
        assert set(body) == {"id", "message"} and body["message"], (path, body)
    assert snapshot(home) == before


def test_values_and_numbers_that_used_to_crash_get_one_line_4xx(home, api):
    """Issue 11: a NUL, a 200 kB value or a lone surrogate in a config var, and "²" where a number
    goes, were 500s. Now: 422 (the rules `config:set` has) or 400/404, one line, nothing stored."""
    api.call("POST", "/apps", json={"name": "strict"})
    before = snapshot(home)
    json_type = {"Content-Type": "application/json"}
    cases = [
        ("PATCH", "/apps/strict/config-vars", {"json": {"NUL": "a\x00b"}}, 422),
        ("PATCH", "/apps/strict/config-vars", {"json": {"BIG": "x" * 200_000}}, 422),
        ("PATCH", "/apps/strict/config-vars", {"data": b'{"LONE": "\\ud800"}', "headers": json_type}, 422),
        ("GET", "/apps/strict/releases/v\u00b2", {}, 404),
        ("GET", "/apps/strict/releases", {"headers": {"Range": "version \u00b2.."}}, 400),
    ]
    for method, path, kwargs, status in cases:
        response = api.call(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.status_code, response.text[:200])
        assert set(response.json()) == {"id", "message"} and "\n" not in response.json()["message"]
    assert api.call("GET", "/apps/strict/config-vars").json() == {}
    assert snapshot(home) == before


def rss_kib(pid: int) -> int:
    """The resident memory of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def post_big_body(api: ApiServer, path: str, size: int, chunked: bool, token: str | None = None) -> int:
    """POST ``size`` bytes to ``path`` the way a client that does not wait for an answer does
    (Content-Length or chunked), reading the answer meanwhile; returns its status."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    status: list[int] = []
    with socket.create_connection(("127.0.0.1", api.port), timeout=120) as connection:
        def read_status() -> None:
            first = connection.makefile("rb").readline()
            if first.startswith(b"HTTP/1.1 "):
                status.append(int(first.split()[1]))
        reader = threading.Thread(target=read_status, daemon=True)
        reader.start()
        connection.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{framing}\r\n"
                           "Content-Type: application/x-git-receive-pack-request\r\n\r\n".encode())
        piece = b"0" * (1024 * 1024)
        try:
            for _ in range(size // len(piece)):
                connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                connection.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may close once it answered: what matters is that it answered
        reader.join(timeout=60)
    assert status, f"no answer to POST {path}"
    return status[0]


def test_large_bodies_are_not_read_before_the_sender_is_known(home, api):
    """Issue 11: a 50 MB request without a token grew the server by hundreds of MB. Now git's
    endpoints read nothing before the token and the app are checked, everything else needs a token
    for a body and keeps the 1 MiB limit — and a real push larger than that limit still works."""
    api.call("POST", "/apps", json={"name": "big"})
    api.call("GET", "/apps")
    before = rss_kib(api.process.pid)
    size = 50 * 1024 * 1024
    assert post_big_body(api, "/big.git/git-receive-pack", size, chunked=False) == 401
    assert post_big_body(api, "/big.git/git-receive-pack", size, chunked=True) == 401
    assert post_big_body(api, "/x.git/git-receive-pack", size, chunked=True) == 401
    assert post_big_body(api, "/apps", size, chunked=False) == 413
    assert post_big_body(api, "/apps", size, chunked=True) == 401
    assert post_big_body(api, "/apps/big.git/config-vars", size, chunked=True) == 401
    assert post_big_body(api, "/apps", size, chunked=True, token=api.token) == 413
    grown = rss_kib(api.process.pid) - before
    assert grown < 8 * 1024, f"the server grew by {grown} KiB"
    anonymous = requests.post(f"{api.url}/big.git/git-receive-pack", data=b"0" * 1000, timeout=30)
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="gitpaas"', "git still asks for credentials"

    noise = base64.b64encode(os.urandom(3 * 1024 * 1024)).decode()  # packs to well over 1 MiB
    push = home.push("big", "web", files={"noise.txt": noise}, url=api.git_url("big"))
    assert push.returncode == 0, push.stderr
    assert home.get("big").text == "hello v1 from web.1\n"


def test_stream_urls_are_bound_to_the_app_and_the_user_who_got_them(home, api):
    """Issue 11: a removed collaborator kept streaming an app's logs, and an old log URL streamed a
    new app that reused the name. Stream URLs now name the app's id and the account, and opening
    one (and a tail, every few seconds) checks both again."""
    api.call("POST", "/apps", json={"name": "watched"})
    deploy(home, api, "watched", Procfile=WEB + "release: echo migrating\n")
    home.get("watched", "/seen-by-the-friend")
    home.gitpaas("users:add", "friend@example.com")
    friend = api.create_token("friend@example.com")
    home.gitpaas("access:add", "friend@example.com", "-a", "watched")

    output = api.call("GET", "/apps/watched/releases/1", token=friend).json()["output_stream_url"]
    logs = api.call("POST", "/apps/watched/log-sessions", token=friend, json={"lines": 50}).json()["logplex_url"]
    tail = api.call("POST", "/apps/watched/log-sessions", token=friend, json={"tail": True}).json()["logplex_url"]
    assert requests.get(output, timeout=30).text == "migrating\n"
    assert "/seen-by-the-friend" in requests.get(logs, timeout=30).text

    opened, ended = threading.Event(), threading.Event()

    def follow() -> None:
        with requests.get(tail, stream=True, timeout=60) as stream:
            opened.set()  # the server answered: the tail is open and streaming
            for _ in stream.iter_lines():
                pass
        ended.set()
    threading.Thread(target=follow, daemon=True).start()
    assert opened.wait(30) and not ended.is_set(), "the tail is open"
    home.gitpaas("access:remove", "friend@example.com", "-a", "watched")
    for url in (output, logs, tail):
        refused = requests.get(url, timeout=30)
        assert refused.status_code == 404, url
        assert refused.json() == {"id": "not_found", "message": "Couldn't find that stream."}
    assert ended.wait(30), "the open tail ended once its user lost access"

    mine = api.call("GET", "/apps/watched/releases/1").json()["output_stream_url"]
    my_logs = api.call("POST", "/apps/watched/log-sessions", json={"lines": 5}).json()["logplex_url"]
    assert api.call("DELETE", "/apps/watched").status_code == 200
    api.call("POST", "/apps", json={"name": "watched"})
    deploy(home, api, "watched", Procfile=WEB + "release: echo migrating\n")
    for url in (mine, my_logs):
        assert requests.get(url, timeout=30).status_code == 404, "an old URL does not stream the new app"
    fresh = api.call("GET", "/apps/watched/releases/1").json()["output_stream_url"]
    assert requests.get(fresh, timeout=30).text == "migrating\n"


def make_certificate(folder, *names: str) -> tuple[str, str]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=gitpaas test", "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in names)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_https_with_the_operators_certificate_for_apps_the_api_and_git(tmp_path_factory, docker_client):
    from harness import Home, free_port

    home = Home.make(tmp_path_factory.mktemp("tls"), GITPAAS_HTTPS_PORT=str(free_port()))
    https = int(home.env["GITPAAS_HTTPS_PORT"])
    try:
        home.gitpaas("apps:info", "-a", "nothing", check=False)  # first use records the ports
        cert, key = make_certificate(tmp_path_factory.mktemp("certs"), "api.localhost", "secure.localhost")
        other_cert, other_key = make_certificate(tmp_path_factory.mktemp("other"), "x.localhost")
        mismatch = home.gitpaas("certs:add", cert, other_key, check=False)
        assert mismatch.returncode == 2 and "is not the private key of" in mismatch.stderr
        assert "No certificate" in home.gitpaas("certs").stdout
        added = home.gitpaas("certs:add", cert, key)
        assert f"Serving HTTPS on port {https}" in added.stdout
        reserved = home.gitpaas("apps:create", "api", check=False)
        assert reserved.returncode == 2 and "reserved" in reserved.stderr

        api = ApiServer(home, publish=True)
        try:
            assert api.call("POST", "/apps", json={"name": "secure"}).status_code == 201
            env = {"GIT_SSL_CAINFO": cert}
            push = home.push("secure", "web", url=f"https://git:{api.token}@api.localhost:{https}/secure.git", env=env)
            assert push.returncode == 0, push.stderr
            assert "remote: -----> Release v1 created" in push.stderr
            def curl(url: str, *headers: str) -> str:  # verifies the certificate against the test CA
                return subprocess.run(["curl", "-sS", "--fail", "--cacert", cert, *[x for h in headers for x in ("-H", h)],
                                       url], capture_output=True, text=True, check=True, timeout=30).stdout
            assert curl(f"https://secure.localhost:{https}/") == "hello v1 from web.1\n"
            info = json.loads(curl(f"https://api.localhost:{https}/apps/secure", f"Authorization: Bearer {api.token}"))
            assert info["name"] == "secure"
        finally:
            api.stop()
    finally:
        home.purge()


def test_schemathesis_finds_no_server_error(home, api):
    """Property-based requests generated from /openapi.json (valid and invalid): never a 5xx."""
    api.call("POST", "/apps", json={"name": "fuzzed"})
    schemathesis = str(Path(sys.executable).with_name("schemathesis"))
    result = subprocess.run(
        [schemathesis, "run", f"{api.url}/openapi.json", "-H", f"Authorization: Bearer {api.token}",
         "--checks", "not_a_server_error", "--max-examples", "40", "--no-color", "--seed", "1"],
        capture_output=True, text=True, timeout=900, cwd=home.path.parent)  # its .schemathesis cache goes there
    assert result.returncode == 0, result.stdout[-4000:]
    assert "generated" in result.stdout
