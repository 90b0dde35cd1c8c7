"""Release events delivered for real: a detached deliverer process, HTTP and SMTP on 127.0.0.1.

No Docker: the app is created on disk and the releases are made up; what is real is the deliverer
``announce_release`` starts, the receiver it POSTs to and the mail server it talks to.
"""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
import os
import signal
import subprocess
import threading
import time
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from gitpaas.notify.announce import announce_release
from gitpaas.notify.store import Notifications
from gitpaas.operations import create_app
from gitpaas.platform import Platform
from gitpaas.release import FAILED, SUCCEEDED, Release
from gitpaas.settings import Settings
from harness import GITPAAS, free_port

OUTPUT = "".join(f"migrating step {n}\n" for n in range(1, 26))


class Receiver:
    """An HTTP server in a thread that records every request; ``delay`` holds each response back."""

    def __init__(self, port: int, delay: float = 0.0) -> None:
        self.requests: list[dict] = []
        self.log: list[str] = []  # shared with the test, to check what happened first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.log.append("request received")
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": self.headers, "body": body})
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailSink:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    # The receivers here listen on 127.0.0.1: the operator allows private targets.
    made = Settings(home=tmp_path / "home", webhook_private_targets=True)
    create_app(Platform(made), "hooked")
    monkeypatch.setenv("GITPAAS_WEBHOOK_RETRY_BASE", "0.5")
    yield made
    # Kill whatever deliverer this home still has running.
    pids = set()
    for record in Notifications.for_app(made, "hooked").deliveries(limit=None):
        if record.get("deliverer_pid"):
            pids.add(record["deliverer_pid"])
    found = subprocess.run(["pgrep", "-f", f"gitpaas.notify deliver {made.home}"], capture_output=True, text=True, check=False)
    pids.update(int(pid) for pid in found.stdout.split())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def notes(settings) -> Notifications:
    return Notifications.for_app(settings, "hooked")


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(port: int, delay: float = 0.0) -> Receiver:
        started.append(Receiver(port, delay))
        return started[-1]
    yield start
    for receiver in started:
        receiver.stop()


def made_up_release(status: str, version: int = 3) -> Release:
    release = Release(version=version, description="Deploy abc1234", app={"id": "app-id", "name": "hooked"},
                      user={"email": "dev@example.com", "id": "user-id"}, slug={"id": "slug-id"})
    release.mark(status, **({"reason": "release command exited with status 3", "exit_status": 3}
                            if status == FAILED else {}))
    return release


def wait_for_delivery(notes: Notifications, event_count: int, done, timeout: float = 30.0) -> list[dict]:
    """Poll the delivery files until ``done(records)`` (newest first) holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    records: list[dict] = []
    while time.monotonic() < deadline:
        records = notes.deliveries(limit=None)
        if len(records) == event_count and done(records):
            return records
        time.sleep(0.1)
    pytest.fail(f"deliveries did not settle in {timeout} s: {json.dumps(records, indent=2)}")


def test_event_is_delivered_signed_without_holding_up_the_release(settings, notes, receivers):
    port = free_port()
    receiver = receivers(port, delay=2.0)
    hook = notes.add_webhook(f"http://127.0.0.1:{port}/hooks")
    release = made_up_release(SUCCEEDED)

    announce_release(settings, "hooked", release, OUTPUT)
    receiver.log.append("announce returned")

    [record] = wait_for_delivery(notes, 1, lambda records: records[0]["status"] != "pending")
    assert receiver.log[0] == "announce returned"  # the deploy did not wait for the receiver
    assert record["status"] == "delivered"
    [target] = record["webhooks"]
    assert target["status"] == "delivered" and [a["status_code"] for a in target["attempts"]] == [200]

    [request] = receiver.requests
    assert request["path"] == "/hooks"
    headers, body = request["headers"], request["body"]
    expected = base64.b64encode(hmac.new(hook.secret.encode(), body, hashlib.sha256).digest()).decode()
    assert headers["Heroku-Webhook-Hmac-SHA256"] == expected
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "gitpaas-webhooks"
    event = json.loads(body)
    assert headers["Heroku-Webhook-Id"] == event["id"] == record["id"]
    assert (event["resource"], event["action"], event["actor"]) == ("release", "update", release.user)
    assert event["data"] == release.to_api()
    assert event["webhook_metadata"]["webhook"] == {"id": hook.id}
    assert event["webhook_metadata"]["event"] == {"id": event["id"], "include": "api:release"}
    assert event["webhook_metadata"]["attempt"]["id"] == target["attempts"][0]["id"]
    assert event["output_tail"] == "".join(f"migrating step {n}\n" for n in range(6, 26))


def test_a_receiver_that_is_down_gets_the_event_on_a_later_attempt(settings, notes, receivers):
    port = free_port()  # nothing listens here yet
    hook = notes.add_webhook(f"http://127.0.0.1:{port}/", secret="shared-secret")

    announce_release(settings, "hooked", made_up_release(SUCCEEDED), OUTPUT)
    # Down for the first attempt and the first retry too: the deliverer keeps trying.
    wait_for_delivery(notes, 1, lambda records: len(records[0]["webhooks"][0]["attempts"]) >= 2)
    receiver = receivers(port)

    [record] = wait_for_delivery(notes, 1, lambda records: records[0]["status"] != "pending")
    [target] = record["webhooks"]
    assert target["status"] == "delivered" and record["status"] == "delivered"
    assert len(target["attempts"]) >= 3
    assert all("refused" in attempt["error"].lower() for attempt in target["attempts"][:2])
    assert target["attempts"][-1]["status_code"] == 200
    [request] = receiver.requests
    assert request["headers"]["Heroku-Webhook-Hmac-SHA256"] == base64.b64encode(
        hmac.new(b"shared-secret", request["body"], hashlib.sha256).digest()).decode()
    assert json.loads(request["body"])["webhook_metadata"]["webhook"]["id"] == hook.id


def test_failed_release_is_emailed_and_a_succeeded_one_is_not(settings, notes, receivers):
    sink = MailSink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        http_port = free_port()
        receiver = receivers(http_port)
        notes.add_webhook(f"http://127.0.0.1:{http_port}/")
        notes.set_email(["ops@example.com"], f"smtp://127.0.0.1:{smtp_port}", private_targets=True)

        announce_release(settings, "hooked", made_up_release(FAILED, version=3), OUTPUT)
        [failed] = wait_for_delivery(notes, 1, lambda records: records[0]["status"] != "pending")
        assert failed["status"] == "delivered" and failed["email"]["status"] == "delivered"
        [(recipients, message)] = sink.messages
        assert recipients == ["ops@example.com"]
        assert message["Subject"] == "gitpaas: hooked v3 failed: release command exited with status 3"
        text = message.get_content()
        for expected in ("Deploy abc1234", "release command exited with status 3", "Exit status:  3",
                         "migrating step 25", "gitpaas releases:output v3 -a hooked"):
            assert expected in text
        assert "migrating step 5\n" not in text

        announce_release(settings, "hooked", made_up_release(SUCCEEDED, version=4), OUTPUT)
        records = wait_for_delivery(notes, 2, lambda records: all(r["status"] != "pending" for r in records))
        succeeded = next(record for record in records if record["release"] == 4)
        assert succeeded["email"] is None and succeeded["webhooks"][0]["status"] == "delivered"
        assert len(sink.messages) == 1 and len(receiver.requests) == 2
    finally:
        controller.stop()


def test_nothing_to_deliver_starts_nothing(settings, notes):
    announce_release(settings, "hooked", made_up_release(FAILED), OUTPUT)
    assert not notes.deliveries_dir.exists()
    found = subprocess.run(["pgrep", "-f", f"gitpaas.notify deliver {settings.home}"], capture_output=True, check=False)
    assert found.returncode == 1


def test_the_cli_refuses_private_targets_in_one_line(settings, notes):
    env = {**os.environ, "GITPAAS_HOME": str(settings.home), "GITPAAS_WEBHOOK_PRIVATE_TARGETS": "0"}
    for url, reason in (("http://169.254.169.254/x", "169.254.169.254 is a link-local address"),
                        (f"http://127.0.0.1:{free_port()}/hooks", "127.0.0.1 is a loopback address")):
        added = subprocess.run([GITPAAS, "webhooks:add", url, "-a", "hooked"], capture_output=True, text=True,
                               env=env, timeout=60)
        assert added.returncode == 2, added.stderr
        assert added.stdout == "" and added.stderr.count("\n") == 1
        assert f"webhook {url}: {reason}" in added.stderr and "GITPAAS_WEBHOOK_PRIVATE_TARGETS=1" in added.stderr
        assert "Traceback" not in added.stderr
    assert notes.webhooks() == []
    allowed = subprocess.run([GITPAAS, "webhooks:add", "http://127.0.0.1:9/hooks", "-a", "hooked"],
                             capture_output=True, text=True, env={**env, "GITPAAS_WEBHOOK_PRIVATE_TARGETS": "1"}, timeout=60)
    assert allowed.returncode == 0, allowed.stderr


def test_the_deliverer_refuses_a_private_target_when_private_targets_are_not_allowed(settings, notes, receivers):
    """A webhook added while the operator allowed private targets, delivered after they stopped: the
    real deliverer process checks again and sends nothing."""
    port = free_port()
    receiver = receivers(port)
    notes.add_webhook(f"http://127.0.0.1:{port}/hooks")
    strict = Settings(home=settings.home, webhook_private_targets=False)

    announce_release(strict, "hooked", made_up_release(SUCCEEDED), OUTPUT)
    [record] = wait_for_delivery(notes, 1, lambda records: records[0]["status"] != "pending")
    [target] = record["webhooks"]
    assert record["status"] == target["status"] == "failed" and len(target["attempts"]) == 1
    assert target["attempts"][0]["error"].startswith("not sent: 127.0.0.1 is a loopback address")
    assert receiver.requests == []


def test_the_event_names_no_path_on_the_server(settings, notes, receivers):
    port = free_port()
    receiver = receivers(port)
    notes.add_webhook(f"http://127.0.0.1:{port}/hooks")
    release = made_up_release(SUCCEEDED)
    release.output_stream_url = (settings.app_dir("hooked") / "releases" / "v3" / "output.log").as_uri()

    announce_release(settings, "hooked", release, OUTPUT)
    wait_for_delivery(notes, 1, lambda records: records[0]["status"] != "pending")
    [request] = receiver.requests
    assert str(settings.home) not in request["body"].decode() and b"file://" not in request["body"]
    assert json.loads(request["body"])["data"]["output_stream_url"] is None
