"""Webhooks and e-mail settings, the event and its signature, and announce_release's promises."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import subprocess

import pytest
from click.testing import CliRunner

from gitpaas.cli.main import cli
from gitpaas.errors import UsageError
from gitpaas.notify import announce, deliver
from gitpaas.notify.announce import announce_release
from gitpaas.notify.event import release_event, sign, webhook_headers, webhook_payload
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


@pytest.fixture
def notes(settings) -> Notifications:
    settings.app_dir("shop").mkdir(parents=True)
    return Notifications.for_app(settings, "shop")


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
    second = notes.add_webhook("http://127.0.0.1:9000/x", secret="chosen")
    assert len(first.secret) == 64 and int(first.secret, 16) >= 0
    assert second.secret == "chosen"
    assert [hook.url for hook in notes.webhooks()] == ["https://example.com/hook", "http://127.0.0.1:9000/x"]
    assert notes.webhooks()[0].secret == first.secret
    with pytest.raises(UsageError):
        notes.add_webhook("https://example.com/hook")
    assert notes.remove_webhook(first.id).url == "https://example.com/hook"
    assert notes.remove_webhook("http://127.0.0.1:9000/x").id == second.id
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
    assert notes.set_email(["a@example.com", "b@example.com"], "smtp://mail.example.com:2525").to == [
        "a@example.com", "b@example.com"]
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
                           environ={"GITPAAS_WEBHOOK_RETRY_BASE": "0.5"}, sleep=delays.append)
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
                           environ={"GITPAAS_WEBHOOK_ATTEMPTS": "3"}, sleep=delays.append)
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
    on = runner.invoke(cli, ["notify:email", "ops@example.com", "--smtp", "smtp://127.0.0.1:2525", "-a", "shop"], env=env)
    assert on.exit_code == 0 and "ops@example.com via smtp://127.0.0.1:2525" in on.output
    assert "ops@example.com" in runner.invoke(cli, ["notify:email", "-a", "shop"], env=env).output
    assert runner.invoke(cli, ["notify:email", "--off", "-a", "shop"], env=env).exit_code == 0
    assert "off" in runner.invoke(cli, ["notify:email", "-a", "shop"], env=env).output
    assert runner.invoke(cli, ["notify:email", "nobody", "-a", "shop"], env=env).exit_code == 2
