"""Webhooks and e-mail settings, the event and its signature, and announce_release's promises."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from gitpaas.cli.main import cli
from gitpaas.errors import UsageError
from gitpaas.notify import announce, deliver
from gitpaas.notify.announce import announce_release
from gitpaas.notify.event import HIDDEN_PATH, failure_email, release_event, sign, webhook_headers, webhook_payload
from gitpaas.notify.store import Notifications
from gitpaas.release import FAILED, SUCCEEDED, Release
from gitpaas.settings import Settings


def made_up_release(status: str = SUCCEEDED) -> Release:
    release = Release(version=3, description="Deploy abc1234", app={"id": "app-id", "name": "shop"},
                      user={"email": "dev@example.com", "id": "user-id"}, slug={"id": "slug-id"},
                      config_vars={"DATABASE_URL": "postgres://secret"})
    release.mark(status, **({"reason": "release command exited with status 3", "exit_status": 3}
                            if status == FAILED else {}))
    return release


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")


def public(host: str) -> list[str]:
    """A resolver for tests: every name is one public address (no network needed)."""
    return ["93.184.216.34"]


def resolving_to(*addresses: str):
    return lambda host: list(addresses)


@pytest.fixture
def notes(settings) -> Notifications:
    settings.app_dir("shop").mkdir(parents=True)
    return Notifications(settings.app_dir("shop"), resolver=public)


@pytest.fixture
def spawned(monkeypatch) -> list:
    """Every process announce_release would start (none is started)."""
    calls = []

    class NoProcess:
        def __init__(self, *args, **kwargs) -> None:
            calls.append((args, kwargs))

        def wait(self) -> int:
            return 0
    monkeypatch.setattr(announce.subprocess, "Popen", NoProcess)
    return calls


# --- the event -----------------------------------------------------------------------------

def test_event_has_heroku_app_webhook_shape():
    release = made_up_release()
    output = "".join(f"line {n}\n" for n in range(1, 31))
    payload = webhook_payload(release_event(release, output), "hook-id", "delivery-id", "attempt-id")
    assert set(payload) == {"id", "created_at", "published_at", "resource", "action", "actor", "previous_data",
                            "data", "version", "webhook_metadata", "output_tail"}
    assert payload["resource"] == "release" and payload["action"] == "update"
    assert payload["actor"] == {"email": "dev@example.com", "id": "user-id"}
    assert payload["previous_data"] == {}
    assert payload["version"] == "application/vnd.heroku+json; version=3"
    assert payload["data"] == release.to_api()
    assert payload["data"]["status"] == "succeeded" and "config_vars" not in payload["data"]
    assert payload["webhook_metadata"] == {
        "attempt": {"id": "attempt-id"}, "delivery": {"id": "delivery-id"},
        "event": {"id": payload["id"], "include": "api:release"}, "webhook": {"id": "hook-id"},
    }
    assert payload["output_tail"] == "".join(f"line {n}\n" for n in range(11, 31))


def test_signature_header_verifies_with_the_secret():
    body = json.dumps({"hello": "world"}).encode()
    headers = webhook_headers("s3cret", "event-id", body)
    expected = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert headers["Heroku-Webhook-Hmac-SHA256"] == expected == sign("s3cret", body)
    assert headers["Heroku-Webhook-Id"] == "event-id"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "gitpaas-webhooks"
    assert sign("other", body) != expected


# --- webhooks and e-mail settings ------------------------------------------------------------

@pytest.mark.parametrize("url", ["ftp://example.com/hook", "example.com/hook", "http://", "https:///path", "", "file:///etc/passwd"])
def test_webhook_url_must_be_http_with_a_host(notes, url):
    with pytest.raises(UsageError) as caught:
        notes.add_webhook(url)
    assert "\n" not in str(caught.value) and "http" in str(caught.value)
    assert notes.webhooks() == []


def test_add_list_remove(notes):
    first = notes.add_webhook("https://example.com/hook")
    second = notes.add_webhook("http://hooks.example.test:9000/x", secret="chosen")
    assert len(first.secret) == 64 and int(first.secret, 16) >= 0
    assert second.secret == "chosen"
    assert [hook.url for hook in notes.webhooks()] == ["https://example.com/hook", "http://hooks.example.test:9000/x"]
    assert notes.webhooks()[0].secret == first.secret
    with pytest.raises(UsageError):
        notes.add_webhook("https://example.com/hook")
    assert notes.remove_webhook(first.id).url == "https://example.com/hook"
    assert notes.remove_webhook("http://hooks.example.test:9000/x").id == second.id
    assert notes.webhooks() == []
    with pytest.raises(UsageError, match="no webhook"):
        notes.remove_webhook("nope")


def test_secret_files_are_0600(notes):
    notes.add_webhook("https://example.com/hook")
    notes.set_email(["ops@example.com"])
    for path in (notes.webhooks_path, notes.email_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_email_settings(notes):
    assert notes.email() is None
    assert notes.set_email(["ops@example.com"]).smtp == "smtp://localhost:25"
    assert notes.set_email(["a@example.com", "b@example.com"], "smtp://mail.example.com:2525",
                           resolver=public).to == ["a@example.com", "b@example.com"]
    assert notes.email().smtp == "smtp://mail.example.com:2525"
    for bad in (["not-an-address"], []):
        with pytest.raises(UsageError):
            notes.set_email(bad)
    with pytest.raises(UsageError, match="smtp://"):
        notes.set_email(["ops@example.com"], "http://mail.example.com")
    assert notes.clear_email() is True and notes.email() is None and notes.clear_email() is False


# --- announce_release ----------------------------------------------------------------------

def test_announce_without_webhooks_does_nothing(settings, notes, spawned):
    announce_release(settings, "shop", made_up_release(), "output\n")
    announce_release(settings, "shop", made_up_release(FAILED), "output\n")
    assert spawned == []
    assert not notes.deliveries_dir.exists()
    assert not (settings.home / "logs").exists()


def test_email_alone_is_only_for_failed_releases(settings, notes, spawned):
    notes.set_email(["ops@example.com"])
    announce_release(settings, "shop", made_up_release(SUCCEEDED), "")
    assert spawned == [] and not notes.deliveries_dir.exists()
    announce_release(settings, "shop", made_up_release(FAILED), "boom\n")
    assert len(spawned) == 1
    [record] = notes.deliveries()
    assert record["webhooks"] == [] and record["email"]["to"] == ["ops@example.com"]
    assert record["failure"] == {"reason": "release command exited with status 3", "exit_status": 3}


def test_announce_queues_the_event_and_spawns_a_detached_deliverer(settings, notes, spawned):
    hook = notes.add_webhook("https://example.com/hook")
    announce_release(settings, "shop", made_up_release(), "migrated\n")
    [record] = notes.deliveries()
    path = notes.deliveries_dir / f"{record['id']}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert record["status"] == "pending" and record["email"] is None
    assert record["event"]["data"]["version"] == 3 and record["event"]["output_tail"] == "migrated\n"
    assert [(w["webhook_id"], w["status"], w["attempts"]) for w in record["webhooks"]] == [(hook.id, "pending", [])]
    assert hook.secret not in path.read_text()
    [(args, kwargs)] = spawned
    assert args[0][1:] == ["-m", "gitpaas.notify", "deliver", str(path)]
    assert kwargs["start_new_session"] is True
    assert kwargs["stdin"] == kwargs["stdout"] == kwargs["stderr"] == subprocess.DEVNULL
    assert kwargs["env"]["GITPAAS_HOME"] == str(settings.home)
    assert kwargs["env"]["GITPAAS_WEBHOOK_PRIVATE_TARGETS"] == "0"  # the deliverer's Settings see this deploy's


def test_announce_never_raises(settings, notes, monkeypatch):
    notes.add_webhook("https://example.com/hook")

    def unwritable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(announce, "write_json", unwritable)
    announce_release(settings, "shop", made_up_release(), "")
    assert "Permission denied" in (settings.home / "logs" / "notify.log").read_text()

    monkeypatch.setattr("builtins.open", unwritable)  # not even the log can be written
    announce_release(settings, "shop", made_up_release(), "")
    announce_release(settings, "no-such-app", made_up_release(), "")


# --- the deliverer's bookkeeping, without a network ----------------------------------------

def test_deliverer_retries_with_backoff_and_records_attempts(settings, notes, spawned, monkeypatch):
    notes.add_webhook("https://example.com/hook")
    announce_release(settings, "shop", made_up_release(), "")
    [record] = notes.deliveries()
    outcomes = iter([{"at": "t1", "error": "Connection refused"}, {"at": "t2", "status_code": 503},
                     {"at": "t3", "status_code": 204}])
    monkeypatch.setattr(deliver, "post_webhook", lambda *args, **kwargs: next(outcomes))
    delays = []
    done = deliver.deliver(notes.deliveries_dir / f"{record['id']}.json",
                           environ={"GITPAAS_WEBHOOK_RETRY_BASE": "0.5"}, sleep=delays.append, resolver=public)
    assert delays == [0.5, 1.0]
    assert done["status"] == "delivered" and done["webhooks"][0]["status"] == "delivered"
    assert [a.get("status_code") or a.get("error") for a in done["webhooks"][0]["attempts"]] == [
        "Connection refused", 503, 204]
    assert notes.deliveries()[0] == done


def test_deliverer_gives_up_after_the_last_attempt(settings, notes, spawned, monkeypatch):
    notes.add_webhook("https://example.com/hook")
    announce_release(settings, "shop", made_up_release(), "")
    monkeypatch.setattr(deliver, "post_webhook", lambda *args, **kwargs: {"at": "t", "status_code": 500})
    delays = []
    [record] = notes.deliveries()
    done = deliver.deliver(notes.deliveries_dir / f"{record['id']}.json",
                           environ={"GITPAAS_WEBHOOK_ATTEMPTS": "3"}, sleep=delays.append, resolver=public)
    assert delays == [2.0, 4.0]
    assert done["status"] == "failed" and len(done["webhooks"][0]["attempts"]) == 3


# --- the commands --------------------------------------------------------------------------

def test_cli_add_list_remove_never_shows_the_secret_twice(tmp_path):
    runner = CliRunner()
    env = {"GITPAAS_HOME": str(tmp_path / "home")}
    assert runner.invoke(cli, ["apps:create", "shop"], env=env).exit_code == 0

    added = runner.invoke(cli, ["webhooks:add", "https://example.com/hook", "-a", "shop"], env=env)
    assert added.exit_code == 0, added.output
    secret = Notifications(tmp_path / "home" / "apps" / "shop").webhooks()[0].secret
    assert secret in added.output
    chosen = runner.invoke(cli, ["webhooks:add", "http://h.example/x", "--secret", "mine", "-a", "shop"], env=env)
    assert chosen.exit_code == 0 and "mine" not in chosen.output

    for args in (["webhooks", "-a", "shop"], ["webhooks", "-a", "shop", "--json"]):
        listed = runner.invoke(cli, args, env=env)
        assert listed.exit_code == 0 and "https://example.com/hook" in listed.output
        assert secret not in listed.output and "mine" not in listed.output
    assert [h["url"] for h in json.loads(listed.output)] == ["https://example.com/hook", "http://h.example/x"]

    bad = runner.invoke(cli, ["webhooks:add", "ftp://x", "-a", "shop"], env=env)
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1
    assert runner.invoke(cli, ["webhooks:remove", "http://h.example/x", "-a", "shop"], env=env).exit_code == 0
    assert runner.invoke(cli, ["webhooks:remove", "http://h.example/x", "-a", "shop"], env=env).exit_code == 2
    assert runner.invoke(cli, ["webhooks", "-a", "nope"], env=env).exit_code == 3
    assert "no deliveries" in runner.invoke(cli, ["webhooks:deliveries", "-a", "shop"], env=env).output


def test_cli_notify_email(tmp_path):
    runner = CliRunner()
    env = {"GITPAAS_HOME": str(tmp_path / "home")}
    runner.invoke(cli, ["apps:create", "shop"], env=env)
    refused = runner.invoke(cli, ["notify:email", "ops@example.com", "--smtp", "smtp://127.0.0.1:2525", "-a", "shop"],
                            env=env)
    assert refused.exit_code == 2 and "127.0.0.1 is not a public host" in refused.output
    env["GITPAAS_WEBHOOK_PRIVATE_TARGETS"] = "1"  # a mail server on this network, allowed by the operator
    on = runner.invoke(cli, ["notify:email", "ops@example.com", "--smtp", "smtp://127.0.0.1:2525", "-a", "shop"], env=env)
    assert on.exit_code == 0 and "ops@example.com via smtp://127.0.0.1:2525" in on.output
    assert "ops@example.com" in runner.invoke(cli, ["notify:email", "-a", "shop"], env=env).output
    assert runner.invoke(cli, ["notify:email", "--off", "-a", "shop"], env=env).exit_code == 0
    assert "off" in runner.invoke(cli, ["notify:email", "-a", "shop"], env=env).output
    assert runner.invoke(cli, ["notify:email", "nobody", "-a", "shop"], env=env).exit_code == 2


# --- private targets ------------------------------------------------------------------------

PRIVATE_TARGETS = [
    ("http://169.254.169.254/latest/meta-data/", public, "169.254.169.254 is a link-local address"),
    ("http://127.0.0.1:8000/hook", public, "127.0.0.1 is a loopback address"),
    ("http://2130706433/hook", public, "127.0.0.1 is a loopback address"),
    ("http://[::1]:8000/", public, "::1 is a loopback address"),
    ("https://10.1.2.3/hook", public, "10.1.2.3 is a private address"),
    ("http://[::ffff:192.168.1.1]/", public, "(192.168.1.1) is a private address"),
    ("http://localhost:9000/", resolving_to("127.0.0.1"), "localhost resolves to 127.0.0.1, a loopback address"),
    ("https://hooks.example.test/x", resolving_to("93.184.216.34", "172.16.0.9"),
     "hooks.example.test resolves to 172.16.0.9, a private address"),
]


@pytest.mark.parametrize("url, resolver, reason", PRIVATE_TARGETS)
def test_private_targets_are_refused_when_added_unless_the_operator_allows_them(settings, url, resolver, reason):
    app_dir = settings.app_dir("shop")
    app_dir.mkdir(parents=True)
    with pytest.raises(UsageError) as caught:
        Notifications(app_dir, resolver=resolver).add_webhook(url)
    message = str(caught.value)
    assert message.startswith(f"webhook {url}: ") and reason in message and "\n" not in message
    assert "GITPAAS_WEBHOOK_PRIVATE_TARGETS=1" in message
    assert Notifications(app_dir).webhooks() == []
    allowed = Settings(home=settings.home, webhook_private_targets=True)
    assert Notifications.for_app(allowed, "shop").private_targets is True
    assert Notifications(app_dir, private_targets=True, resolver=resolver).add_webhook(url).url == url


def test_a_host_that_does_not_resolve_yet_is_accepted_and_checked_again_when_delivered(notes):
    def unresolvable(host: str) -> list[str]:
        raise OSError("Name or service not known")
    assert Notifications(notes.app_dir, resolver=unresolvable).add_webhook("https://hooks.example.test/x")


def test_delivery_checks_the_host_again_and_never_sends_to_a_private_address(settings, notes, spawned, monkeypatch):
    notes.add_webhook("https://hooks.example.test/x")  # public when added
    announce_release(settings, "shop", made_up_release(), "")
    [record] = notes.deliveries()
    path = notes.deliveries_dir / f"{record['id']}.json"
    sent = []
    monkeypatch.setattr(deliver, "post_webhook", lambda *args, **kwargs: sent.append(args) or {"status_code": 200})
    delays = []
    # ...and now its name points at the metadata service
    done = deliver.deliver(path, sleep=delays.append, resolver=resolving_to("169.254.169.254"))
    assert sent == [] and delays == []
    [target] = done["webhooks"]
    assert target["status"] == done["status"] == "failed" and len(target["attempts"]) == 1
    assert target["attempts"][0]["error"].startswith(
        "not sent: hooks.example.test resolves to 169.254.169.254, a link-local address")

    later = made_up_release()
    later.version = 4
    announce_release(settings, "shop", later, "")
    [newest, _] = notes.deliveries()
    done = deliver.deliver(notes.deliveries_dir / f"{newest['id']}.json", sleep=delays.append,
                           private_targets=True, resolver=resolving_to("169.254.169.254"))
    assert len(sent) == 1 and done["status"] == "delivered"


def test_the_deliverer_builds_its_settings_from_the_environment(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(deliver, "deliver", lambda path, **kwargs: seen.append(kwargs))
    monkeypatch.setenv("GITPAAS_HOME", str(tmp_path))
    monkeypatch.setenv("GITPAAS_WEBHOOK_PRIVATE_TARGETS", "1")
    assert deliver.main(["deliver", str(tmp_path / "x.json")]) == 0
    monkeypatch.setenv("GITPAAS_WEBHOOK_PRIVATE_TARGETS", "0")
    assert deliver.main(["deliver", str(tmp_path / "x.json")]) == 0
    assert [kwargs["private_targets"] for kwargs in seen] == [True, False]


@pytest.fixture
def loopback_receiver():
    """An HTTP server on 127.0.0.1 that counts the requests it gets."""
    requests = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            requests.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], requests
    server.shutdown()
    server.server_close()


def test_the_connection_goes_only_to_the_addresses_checked_as_it_is_made(loopback_receiver):
    """A name that was public when checked but resolves to 127.0.0.1 when connecting (DNS
    rebinding) reaches nothing: the connection checks what it dials."""
    port, requests = loopback_receiver
    event = release_event(made_up_release(), "")
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # the check, then the connection
    rebinding = lambda host: next(answers)  # noqa: E731
    assert deliver.private_target(f"http://rebind.example.test:{port}/", rebinding) is None
    attempt = deliver.post_webhook(f"http://rebind.example.test:{port}/", "s", event, "w", "d", resolver=rebinding)
    assert attempt["error"] == "refused: rebind.example.test resolves to 127.0.0.1, a loopback address"
    literal = deliver.post_webhook(f"http://127.0.0.1:{port}/", "s", event, "w", "d")
    assert literal["error"] == "refused: 127.0.0.1 is a loopback address"
    assert requests == []
    allowed = deliver.post_webhook(f"http://127.0.0.1:{port}/", "s", event, "w", "d", private_targets=True)
    assert allowed["status_code"] == 204 and len(requests) == 1


def test_cli_refuses_private_targets_in_one_line_unless_the_operator_allows_them(tmp_path):
    runner = CliRunner()
    env = {"GITPAAS_HOME": str(tmp_path / "home")}
    assert runner.invoke(cli, ["apps:create", "shop"], env=env).exit_code == 0
    for url in ("http://169.254.169.254/x", "http://127.0.0.1:9000/hook"):
        refused = runner.invoke(cli, ["webhooks:add", url, "-a", "shop"], env=env)
        assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, refused.output
        assert "GITPAAS_WEBHOOK_PRIVATE_TARGETS=1" in refused.stderr
    assert Notifications(tmp_path / "home" / "apps" / "shop").webhooks() == []
    allowed = runner.invoke(cli, ["webhooks:add", "http://127.0.0.1:9000/hook", "-a", "shop"],
                            env={**env, "GITPAAS_WEBHOOK_PRIVATE_TARGETS": "1"})
    assert allowed.exit_code == 0, allowed.output


# --- no server paths leave the server ----------------------------------------------------------

def test_events_and_emails_carry_no_server_path(settings, notes, spawned):
    notes.add_webhook("https://hooks.example.test/x")
    notes.set_email(["ops@example.com"])
    output_log = settings.app_dir("shop") / "releases" / "v3" / "output.log"
    release = made_up_release(FAILED)
    release.output_stream_url = output_log.as_uri()
    release.failure = {"reason": f"nginx refused {settings.home}/router/apps/shop.conf: bad", "exit_status": None}
    assert release_event(release, "")["data"]["output_stream_url"] is None

    announce_release(settings, "shop", release, f"wrote {output_log}\nmigrated\n")
    [record] = notes.deliveries()
    text = (notes.deliveries_dir / f"{record['id']}.json").read_text()
    assert str(settings.home) not in text and "file://" not in text
    assert record["event"]["data"]["output_stream_url"] is None
    assert record["event"]["output_tail"] == f"wrote {HIDDEN_PATH}\nmigrated\n"
    assert record["failure"]["reason"] == f"nginx refused {HIDDEN_PATH}: bad"
    payload = webhook_payload(record["event"], "w", "d", "a")
    assert str(settings.home) not in json.dumps(payload)
    mail = failure_email(record, "gitpaas@test").as_string()
    assert str(settings.home) not in mail and "migrated" in mail and HIDDEN_PATH in mail


# --- files only the server's user reads ------------------------------------------------------

def test_deliveries_and_the_notify_log_are_private(settings, notes, spawned):
    notes.add_webhook("https://hooks.example.test/x")
    announce_release(settings, "shop", made_up_release(), "")
    assert stat.S_IMODE(notes.deliveries_dir.stat().st_mode) == 0o700
    [record] = notes.deliveries()
    assert stat.S_IMODE((notes.deliveries_dir / f"{record['id']}.json").stat().st_mode) == 0o600
    announce.log_problem(settings.home, "something went wrong")
    assert stat.S_IMODE((settings.home / "logs" / "notify.log").stat().st_mode) == 0o600


def test_a_private_mail_server_is_refused_unless_the_operator_allows_it(notes):
    with pytest.raises(UsageError, match="the mail server 10.0.0.25 is not a public host"):
        notes.set_email(["ops@example.com"], "smtp://10.0.0.25:25")
    assert notes.email() is None
    assert notes.set_email(["ops@example.com"]).smtp == "smtp://localhost:25", "the machine's own: the default"
    assert notes.set_email(["ops@example.com"], "smtp://10.0.0.25:25", private_targets=True).smtp == "smtp://10.0.0.25:25"
    record = {"email": {"smtp": "smtp://10.0.0.25:25", "to": ["ops@example.com"]}}
    assert "not a public host" in deliver.send_email(record)["error"]
