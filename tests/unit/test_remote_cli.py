"""The gitpaas CLI on another machine, in pieces: the login file, git's credential helper, the
server's errors as exit codes, what runs on the server only, the rendezvous of one-off dynos (a real
TLS socket on loopback, a scripted dyno) and the frames its gitpaas client speaks."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import threading

import pytest
from click.testing import CliRunner
from fakes import deploy, make_platform

from gitpaas import operations
from gitpaas.api.rendezvous import Rendezvous, certificate, fingerprint
from gitpaas.cli.main import cli
from gitpaas.client import credentials
from gitpaas.client.api import RemoteError
from gitpaas.client.credentials import Login
from gitpaas.client.remote import RendezvousChannel
from gitpaas.errors import EnvironmentProblem, UsageError
from gitpaas.frames import EOF, EXIT, RESIZE, STDIN, STDOUT, frame, read_frame

# --- the login file ----------------------------------------------------------------------------


def test_a_login_is_kept_readable_by_its_owner_only(tmp_path):
    env = {"HOME": str(tmp_path)}
    path = credentials.save(Login("https://paas.example.com", "ada@example.com", "gp_secret"), env)
    assert path == tmp_path / ".config" / "gitpaas" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credentials.load(env) == Login("https://paas.example.com", "ada@example.com", "gp_secret")
    assert credentials.forget(env).email == "ada@example.com"
    assert credentials.load(env) is None and credentials.forget(env) is None


def test_the_environment_stands_in_for_a_login_and_a_damaged_file_is_one_line(tmp_path):
    env = {"HOME": str(tmp_path), "GITPAAS_SERVER": "paas.example.com:8443", "GITPAAS_API_KEY": "gp_x"}
    assert credentials.load(env) == Login("https://paas.example.com:8443", "", "gp_x")
    with pytest.raises(UsageError, match="GITPAAS_SERVER is not"):
        credentials.load({"HOME": str(tmp_path), "GITPAAS_API_KEY": "gp_x"})
    path = credentials.credentials_path({"HOME": str(tmp_path)})
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(UsageError) as caught:
        credentials.load({"HOME": str(tmp_path)})
    assert caught.value.message.startswith("~/.config/gitpaas/credentials.json cannot be read")


@pytest.mark.parametrize("given, server", [
    ("paas.example.com", "https://paas.example.com"), ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
    ("https://api.example.com/gitpaas/", "https://api.example.com/gitpaas")])
def test_server_urls_are_normalized(given, server):
    assert credentials.normalize_server(given) == server


@pytest.mark.parametrize("bad", ["ftp://x", "https://", "https://user:pw@host", "http://host:99999", "https://h/?q=1"])
def test_what_is_not_a_server_url_is_refused(bad):
    with pytest.raises(UsageError):
        credentials.normalize_server(bad)


# --- the CLI logged in: what it refuses, and git's credential helper --------------------------

@pytest.fixture
def logged_in(tmp_path, monkeypatch):
    """A machine logged in to a server (that nothing here contacts), with no home of its own."""
    monkeypatch.delenv("GITPAAS_HOME", raising=False)
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": ""}
    credentials.save(Login("https://paas.example.com:8443", "ada@example.com", "gp_secret"), env)
    runner = CliRunner()
    return lambda *args, stdin=None: runner.invoke(cli, list(args), env=env, input=stdin)


@pytest.mark.parametrize("command", [["backup", "x.tar"], ["users"], ["tokens:create", "--user", "b@example.com"],
                                     ["keys"], ["stack:build"], ["sshd:config"], ["boot"], ["server"]])
def test_commands_for_the_servers_home_say_they_run_there(logged_in, command):
    result = logged_in(*command)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "runs on the server only" in result.stderr and "https://paas.example.com:8443" in result.stderr


def test_git_asks_the_helper_and_gets_the_token_for_that_server_only(logged_in):
    asked = logged_in("git:credential", "get", stdin="protocol=https\nhost=paas.example.com:8443\npath=blog.git\n\n")
    assert asked.stdout == "username=ada@example.com\npassword=gp_secret\n"
    other = logged_in("git:credential", "get", stdin="protocol=https\nhost=elsewhere.example.com\n\n")
    assert other.stdout == ""
    plain = logged_in("git:credential", "get", stdin="protocol=http\nhost=paas.example.com:8443\n\n")
    assert plain.stdout == "", "a token for https is not given to plain http"
    for operation in ("store", "erase"):
        assert logged_in("git:credential", operation, stdin="protocol=https\nhost=x\npassword=p\n\n").stdout == ""


def test_an_unreachable_server_is_one_line(logged_in):
    result = logged_in("apps")
    assert result.exit_code == 8 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(" !    cannot reach the gitpaas server at https://paas.example.com:8443")


def test_logout_forgets_and_says_so(logged_in):
    assert logged_in("logout").stdout == "Logged out of https://paas.example.com:8443.\n"
    assert logged_in("logout").stdout == "Not logged in to a gitpaas server.\n"


@pytest.mark.parametrize("error_id, status, code", [
    ("not_found", 404, 3), ("release_failed", 422, 7), ("invalid_params", 422, 2), ("conflict", 409, 4),
    ("forbidden", 403, 9), ("unavailable", 503, 8), ("something_new", 404, 3), ("", 500, 1)])
def test_a_servers_error_keeps_the_exit_code_it_has_on_the_server(error_id, status, code):
    assert RemoteError("message", error_id, status).exit_code == code


# --- one-off dynos: operations and the API ---------------------------------------------------

def deployed(tmp_path, **config: str):
    """A platform on the fakes with app ``shop`` released once (with ``config``)."""
    platform = make_platform(tmp_path)
    operations.create_app(platform, "shop")
    platform.apps.config("shop").replace(config)
    deploy(platform)
    return platform


def test_a_one_off_runs_the_current_release_with_its_config_and_extra_env(tmp_path):
    platform = deployed(tmp_path, GREETING="hi")
    name, session = operations.start_run(platform, "shop", "rake db:migrate", env=operations.run_env("A=1;B=x=y"),
                                         size="standard-2x", tty=True)
    job, tty, attach, env = platform.scheduler.one_offs[-1]
    assert name == job.name and name.startswith("run.") and (tty, attach) == (True, True)
    assert job.command == "rake db:migrate" and job.size == "standard-2x" and env == {"A": "1", "B": "x=y"}
    assert job.release.version == platform.apps.get("shop").current_release and job.release.env["GREETING"] == "hi"
    assert session is not None and name in [p.name for p in platform.scheduler.processes("shop")]


@pytest.mark.parametrize("kwargs, words", [
    ({"command": "  "}, "what should it run?"), ({"command": "env", "env": {"PORT": "1"}}, "PORT is set by gitpaas"),
    ({"command": "env", "size": "huge"}, "no dyno size 'huge'")])
def test_what_a_one_off_cannot_be_is_refused_before_anything_starts(tmp_path, kwargs, words):
    platform = deployed(tmp_path)
    command = kwargs.pop("command")
    with pytest.raises(UsageError, match=words):
        operations.start_run(platform, "shop", command, **kwargs)
    assert platform.scheduler.one_offs == []


@pytest.mark.parametrize("text", ["A", "=1", "1A=2", "A-B=1"])
def test_env_pairs_that_cannot_be_read_are_refused(text):
    with pytest.raises(UsageError, match="KEY=VALUE pairs separated by ';'"):
        operations.run_env(text)


def test_an_app_without_a_release_has_nothing_to_run(tmp_path):
    platform = make_platform(tmp_path)
    operations.create_app(platform, "empty")
    with pytest.raises(UsageError, match="no release yet"):
        operations.start_run(platform, "empty", "bash")


# --- the rendezvous ------------------------------------------------------------------------------

@pytest.fixture
def rendezvous(tmp_path):
    cert, key = certificate(tmp_path / "rendezvous", ["localhost", "127.0.0.1"])
    meeting = Rendezvous("127.0.0.1", 0, cert, key)
    meeting.serve()
    yield meeting
    meeting.listener.close()


def _attached(tmp_path, rendezvous, tty: bool = False):
    platform = deployed(tmp_path)
    name, session = operations.start_run(platform, "shop", "cat", tty=tty)
    return platform, session, rendezvous.register(session, "shop")


def test_the_rendezvous_certificate_is_made_once_and_its_key_is_private(tmp_path):
    cert, key = certificate(tmp_path / "r", ["localhost", "127.0.0.1", "api.example.com"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = certificate(tmp_path / "r", ["other"])
    assert again == (cert, key) and fingerprint(cert) == fingerprint(again[0])


def test_the_gitpaas_client_gets_framed_streams_and_the_exit_status(tmp_path, rendezvous):
    platform, session, secret = _attached(tmp_path, rendezvous)
    platform.scheduler.session_status = 5
    channel = RendezvousChannel.connect(f"rendezvous://127.0.0.1:{rendezvous.port}/{secret}", rendezvous.fingerprint)
    assert channel.read() == (STDOUT, b"hello\n")
    channel.write(b"typed\n")
    assert channel.read() == (STDOUT, b"typed\n")
    channel.resize(40, 120)
    channel.close_stdin()
    assert channel.read() is None and channel.finish() == 5
    assert session.started and wait_until(lambda: session.sizes == [(40, 120)])
    assert wait_until(lambda: session.closed), "the dyno is removed once its session ends"


def test_a_certificate_other_than_the_announced_one_is_not_trusted(tmp_path, rendezvous):
    _, session, secret = _attached(tmp_path, rendezvous)
    with pytest.raises(EnvironmentProblem, match="presented another certificate"):
        RendezvousChannel.connect(f"rendezvous://127.0.0.1:{rendezvous.port}/{secret}", "0" * 64)


def test_a_heroku_cli_style_client_gets_raw_bytes_and_ends_input_with_ctrl_d(tmp_path, rendezvous):
    """The Heroku CLI's protocol: TLS, the secret and CRLF, a first line to discard, then raw bytes;
    without a TTY a ^D (0x04) ends the dyno's input."""
    _, session, secret = _attached(tmp_path, rendezvous)
    context = ssl.create_default_context(cafile=str(rendezvous.certificate_path))
    with context.wrap_socket(socket.create_connection(("127.0.0.1", rendezvous.port)),
                             server_hostname="localhost") as connection:
        connection.sendall(secret.encode() + b"\r\n")
        received = b""
        connection.sendall(b"piped input\n\x04")
        while True:
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
    assert received == b"rendezvous\r\nhello\npiped input\n"


def test_a_secret_is_good_once_and_a_dropped_client_stops_the_dyno(tmp_path, rendezvous):
    _, session, secret = _attached(tmp_path, rendezvous)
    raw = socket.create_connection(("127.0.0.1", rendezvous.port))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    connection = context.wrap_socket(raw)
    connection.sendall(f"{secret}?frames=1\r\n".encode())
    assert connection.recv(12) == b"rendezvous\r\n"
    connection.close()
    assert wait_until(lambda: session.stopped and session.closed), "dropping the connection stops the dyno"
    again = context.wrap_socket(socket.create_connection(("127.0.0.1", rendezvous.port)))
    again.sendall(f"{secret}\r\n".encode())
    assert again.recv(64) == b"", "a used secret meets nobody"


def test_frames_round_trip_and_a_broken_stream_ends(tmp_path):
    left, right = socket.socketpair()
    left.sendall(frame(STDIN, b"abc") + frame(EOF) + frame(RESIZE, b"24 80") + frame(EXIT, b"0"))
    assert [read_frame(right) for _ in range(4)] == [(STDIN, b"abc"), (EOF, b""), (RESIZE, b"24 80"), (EXIT, b"0")]
    left.sendall(frame(STDOUT, b"x")[:5])
    left.close()
    assert read_frame(right) is None


def test_the_api_answers_an_attach_url_and_without_a_rendezvous_says_run_detached_works(tmp_path, rendezvous):
    from test_api_security import Client, signed_in_client

    from gitpaas.api.application import create_app

    platform = deployed(tmp_path)
    owner = "owner@example.com"
    app = platform.apps.get("shop")
    app.owner = owner
    platform.apps.save(app)
    without = signed_in_client(platform, [owner])
    refused = without.request("POST", "/apps/shop/dynos", user=owner, json_body={"command": "bash", "attach": True})
    assert refused.status == 503 and "run:detached works" in refused.json()["message"]
    client = Client(create_app(platform.settings, rendezvous), without.tokens)
    # the routes build their own Platform: theirs must be this one's fakes
    import gitpaas.api.routes as routes
    original = routes.platform_of
    routes.platform_of = lambda request: platform
    try:
        made = client.request("POST", "/apps/shop/dynos", user=owner, json_body={
            "command": "bash", "attach": True, "env": {"COLUMNS": 80, "TERM": "xterm"}}).json()
        detached = client.request("POST", "/apps/shop/dynos", user=owner, json_body={"command": "sleep 1"}).json()
    finally:
        routes.platform_of = original
    assert made["name"].startswith("run.") and made["attach_url"].startswith(f"rendezvous://testserver:{rendezvous.port}/")
    assert "rendezvous_fingerprint" not in made, "Heroku's shape; the fingerprint is gitpaas's variant"
    assert detached["attach_url"] is None and detached["state"] == "up"
    assert platform.scheduler.one_offs[0][3] == {"COLUMNS": "80", "TERM": "xterm"}


def wait_until(predicate, timeout: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_credentials_never_print_a_server_path(tmp_path):
    env = {"HOME": str(tmp_path / "home")}
    path = credentials.credentials_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"server": 1}))
    with pytest.raises(UsageError) as caught:
        credentials.load(env)
    assert str(tmp_path) not in caught.value.message and os.sep + "tmp" not in caught.value.message


def test_an_add_on_session_runs_its_client_only_with_the_password_in_the_environment(tmp_path):
    from gitpaas.addons import lifecycle
    from gitpaas.identity import OPERATOR
    from gitpaas.output import NullOutput

    platform = deployed(tmp_path)
    redis = lifecycle.create(platform, "shop", OPERATOR, NullOutput(), "redis").addon
    postgres = lifecycle.create(platform, "shop", OPERATOR, NullOutput(), "postgresql").addon
    name, _ = operations.open_addon_session(platform, "shop", "redis", None, "SET k 'two words'", tty=False)
    assert name == redis.name
    assert platform.scheduler.addons[redis.name]["sessions"] == [(["redis-cli", "SET", "k", "two words"], False)]
    operations.open_addon_session(platform, "shop", "postgresql", None, None, tty=True)
    argv, tty = platform.scheduler.addons[postgres.name]["sessions"][0]
    assert argv[0] == "psql" and tty and postgres.credentials["password"] not in " ".join(argv)
    with pytest.raises(UsageError, match="cannot read the command"):
        operations.open_addon_session(platform, "shop", "redis", None, "GET 'unclosed", tty=False)


def test_a_web_page_where_the_api_should_be_is_one_line(tmp_path, monkeypatch):
    """`gitpaas login --server` pointed at some web site: no traceback, one line, nothing kept."""
    import http.server

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>not an API</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.delenv("GITPAAS_HOME", raising=False)
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": ""}
    try:
        result = CliRunner().invoke(cli, ["login", "--server", f"http://127.0.0.1:{server.server_address[1]}"],
                                    env=env, input="gp_token\n")
    finally:
        server.shutdown()
    assert result.exit_code == 8 and "Traceback" not in result.output
    assert "is not gitpaas's API (not JSON)" in result.stderr and result.stderr.count("\n") == 1
    assert credentials.load(env) is None


def test_a_drain_connects_only_to_the_addresses_its_check_saw():
    from gitpaas.notify.drains import _connect

    with pytest.raises(OSError, match="not sent: rebinding.example.com resolves to 127.0.0.1"):
        _connect("rebinding.example.com", 514, False, resolver=lambda host: ["127.0.0.1"])
    with pytest.raises(OSError, match="cannot resolve"):
        _connect("nowhere.example.com", 514, False, resolver=lambda host: [])


@pytest.mark.parametrize("host, shown", [("api.example.com:5000", "api.example.com"), ("[::1]:5000", "[::1]"),
                                         ("127.0.0.1", "127.0.0.1")])
def test_a_rendezvous_url_names_the_host_the_client_used(host, shown):
    from starlette.requests import Request

    from gitpaas.api.core import attach_host

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": [(b"host", host.encode())],
                       "scheme": "http", "query_string": b"", "server": ("127.0.0.1", 5000)})
    assert attach_host(request) == shown


def test_a_dyno_that_cannot_start_says_why_at_the_rendezvous(tmp_path, rendezvous):
    from gitpaas.errors import BootFailed

    _, session, secret = _attached(tmp_path, rendezvous)

    def cannot() -> None:
        raise BootFailed(session.name, "could not start: no such image")
    session.start = cannot
    channel = RendezvousChannel.connect(f"rendezvous://127.0.0.1:{rendezvous.port}/{secret}", rendezvous.fingerprint)
    assert channel.read() == (2, f" !    {session.name} could not start: no such image\r\n".encode())
    assert channel.read() is None and channel.finish() == 1


def test_backups_of_an_earlier_app_of_the_same_name_are_not_the_new_apps(tmp_path):
    from gitpaas.addons.store import Backup

    earlier = Backup("f001", "shop", "db", "postgresql", "final", created_at="2026-01-01T00:00:00Z", app_id="old-id")
    legacy = Backup("b002", "shop", "db", "postgresql", "manual", created_at="2026-01-01T00:00:00Z")
    assert not earlier.of_app("new-id", "2026-06-01T00:00:00Z") and earlier.of_app("old-id", "2025-12-01T00:00:00Z")
    assert not legacy.of_app("new-id", "2026-06-01T00:00:00Z"), "a record without an id: not from before the app"
    assert legacy.of_app("new-id", "2025-06-01T00:00:00Z")


def test_log_stamps_compare_as_text_whatever_their_precision():
    from gitpaas.scheduler.docker_local import _sortable, _unix_time_precise

    assert _sortable("2026-12-01T20:00:00.1Z") == "2026-12-01T20:00:00.100000000Z"
    assert _sortable("2026-12-01T20:00:00.1Z") < _sortable("2026-12-01T20:00:00.123456789Z")
    assert abs(_unix_time_precise(_sortable("1970-01-01T00:00:10.5Z")) - 10.5) < 1e-6
