"""Telling the world about releases: signed webhooks (Heroku's app-webhook shape) and e-mail.

An app's settings are plain files in its folder, written 0600 because they hold secrets::

    apps/NAME/webhooks.json          [{id, url, secret, created_at}]
    apps/NAME/notify-email.json      {to: [addresses], smtp: "smtp://host:port"}
    apps/NAME/deliveries/ID.json     one event, and every attempt to deliver it (``cat`` it)

``announce_release`` is what the pipeline calls when a release succeeds or fails. It only writes
the delivery file and starts a detached deliverer (``python -m gitpaas.notify deliver FILE``),
which retries with exponential backoff; a failing receiver can neither fail nor slow a deploy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import smtplib
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from gitpaas.errors import GitpaasError, UsageError
from gitpaas.release import FAILED, Release, now_iso
from gitpaas.settings import Settings
from gitpaas.store.files import read_json, write_json

DEFAULT_SMTP = "smtp://localhost:25"
OUTPUT_TAIL_LINES = 20
SEND_TIMEOUT = 10.0
KEEP_DELIVERIES = 100
SIGNATURE_HEADER = "Heroku-Webhook-Hmac-SHA256"
API_VERSION = "application/vnd.heroku+json; version=3"

PENDING = "pending"
DELIVERED = "delivered"
# FAILED ("failed") is shared with releases.


# --- settings: webhooks and e-mail ---------------------------------------------------------

@dataclass
class Webhook:
    url: str
    secret: str
    id: str = ""
    created_at: str = ""

    def __post_init__(self) -> None:
        self.id = self.id or str(uuid.uuid4())
        self.created_at = self.created_at or now_iso()

    def public(self) -> dict[str, str]:
        """What may be shown: everything but the secret."""
        return {"id": self.id, "url": self.url, "created_at": self.created_at}


@dataclass
class EmailSettings:
    to: list[str]
    smtp: str = DEFAULT_SMTP


def validate_webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"webhook URL must be http:// or https:// with a host, not {url!r}")
    return url


def smtp_address(url: str) -> tuple[str, int]:
    """``smtp://host:port`` → (host, port); the port defaults to 25."""
    try:
        parts = urlsplit(url)
        port = parts.port or 25
    except ValueError:
        parts, port = None, 0
    if parts is None or parts.scheme != "smtp" or not parts.hostname:
        raise UsageError(f"SMTP server must be written smtp://host:port, not {url!r}")
    return parts.hostname, port


def validate_address(address: str) -> str:
    _, parsed = parseaddr(address)
    if not parsed or "@" not in parsed or parsed != address.strip():
        raise UsageError(f"{address!r} is not an e-mail address")
    return parsed


class Notifications:
    """One app's webhooks, e-mail settings and deliveries, kept in the app's folder."""

    def __init__(self, app_dir: Path) -> None:
        self.app_dir = app_dir
        self.webhooks_path = app_dir / "webhooks.json"
        self.email_path = app_dir / "notify-email.json"
        self.deliveries_dir = app_dir / "deliveries"

    @classmethod
    def for_app(cls, settings: Settings, app_name: str) -> "Notifications":
        return cls(settings.app_dir(app_name))

    # webhooks
    def webhooks(self) -> list[Webhook]:
        return [Webhook(**entry) for entry in _read(self.webhooks_path, [])]

    def add_webhook(self, url: str, secret: str | None = None) -> Webhook:
        """Register ``url``; without ``secret`` one is generated (show it to the user once)."""
        validate_webhook_url(url)
        if secret is not None and not secret.strip():
            raise UsageError("the webhook secret must not be empty")
        hooks = self.webhooks()
        for hook in hooks:
            if hook.url == url:
                raise UsageError(f"{url} is already a webhook of this app (id {hook.id})")
        hook = Webhook(url=url, secret=secret or secrets.token_hex(32))
        self._save_webhooks(hooks + [hook])
        return hook

    def remove_webhook(self, id_or_url: str) -> Webhook:
        hooks = self.webhooks()
        for hook in hooks:
            if id_or_url in (hook.id, hook.url):
                self._save_webhooks([other for other in hooks if other is not hook])
                return hook
        raise UsageError(f"no webhook {id_or_url!r} (see `gitpaas webhooks -a APP`)")

    def _save_webhooks(self, hooks: list[Webhook]) -> None:
        write_json(self.webhooks_path, [asdict(hook) for hook in hooks], mode=0o600)

    # e-mail
    def email(self) -> EmailSettings | None:
        data = _read(self.email_path, None)
        return EmailSettings(**data) if data else None

    def set_email(self, to: list[str], smtp: str = DEFAULT_SMTP) -> EmailSettings:
        if not to:
            raise UsageError("give at least one e-mail address")
        smtp_address(smtp)
        settings = EmailSettings(to=[validate_address(address) for address in to], smtp=smtp)
        write_json(self.email_path, asdict(settings), mode=0o600)
        return settings

    def clear_email(self) -> bool:
        """Stop e-mailing; False if it was not configured."""
        try:
            self.email_path.unlink()
        except FileNotFoundError:
            return False
        return True

    # deliveries
    def deliveries(self, limit: int | None = 20) -> list[dict[str, Any]]:
        """Delivery records, newest first."""
        try:
            paths = list(self.deliveries_dir.glob("*.json"))
        except OSError:
            return []
        records = []
        for path in paths:
            try:
                records.append(read_json(path))
            except (OSError, ValueError):
                continue
        records.sort(key=lambda record: (record.get("created_at", ""), record.get("release", 0)), reverse=True)
        return records[:limit] if limit is not None else records

    def prune_deliveries(self, keep: int = KEEP_DELIVERIES) -> None:
        """Remove the oldest finished delivery files beyond ``keep``."""
        finished = [record for record in self.deliveries(limit=None) if record.get("status") != PENDING]
        for record in finished[keep:]:
            (self.deliveries_dir / f"{record['id']}.json").unlink(missing_ok=True)


def _read(path: Path, default: Any) -> Any:
    try:
        return read_json(path)
    except FileNotFoundError:
        return default
    except ValueError as exc:
        raise GitpaasError(f"{path} is not valid JSON ({exc}); fix or remove it") from None


# --- the event and its signature -----------------------------------------------------------

def tail_lines(text: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) + ("\n" if kept else "")


def release_event(release: Release, output_tail: str, *, event_id: str | None = None) -> dict[str, Any]:
    """The app-webhook event for ``release``, without the per-delivery ``webhook_metadata``."""
    created = now_iso()
    return {
        "id": event_id or str(uuid.uuid4()),
        "created_at": created,
        "published_at": created,
        "resource": "release",
        "action": "update",
        "actor": dict(release.user),
        "previous_data": {},
        "data": release.to_api(),
        "version": API_VERSION,
        "output_tail": tail_lines(output_tail),
    }


def webhook_payload(event: dict[str, Any], webhook_id: str, delivery_id: str, attempt_id: str) -> dict[str, Any]:
    """``event`` as one attempt of one delivery to one webhook sends it."""
    payload = dict(event, published_at=now_iso())
    payload["webhook_metadata"] = {
        "attempt": {"id": attempt_id},
        "delivery": {"id": delivery_id},
        "event": {"id": event["id"], "include": "api:release"},
        "webhook": {"id": webhook_id},
    }
    return payload


def sign(secret: str, body: bytes) -> str:
    """Heroku's webhook signature: base64 of the HMAC-SHA256 of the body, keyed by the secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def webhook_headers(secret: str, event_id: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "gitpaas-webhooks",
        "Heroku-Webhook-Id": event_id,
        SIGNATURE_HEADER: sign(secret, body),
    }


def failure_email(record: dict[str, Any], sender: str) -> EmailMessage:
    """The plain-text message about a failed release, from its delivery record."""
    app, data, version = record["app"], record["event"]["data"], record["release"]
    failure = record.get("failure") or {}
    reason = failure.get("reason") or "unknown reason"
    exit_status = failure.get("exit_status")
    tail = record["event"].get("output_tail") or "(no output)\n"
    message = EmailMessage()
    message["Subject"] = f"gitpaas: {app} v{version} failed: {reason}"
    message["From"] = sender
    message["To"] = ", ".join(record["email"]["to"])
    message.set_content(
        f"Release v{version} of {app} failed; the previous release keeps running.\n\n"
        f"Release:      v{version} ({data.get('description')})\n"
        f"By:           {(data.get('user') or {}).get('email', '-')}\n"
        f"Reason:       {reason}\n"
        f"Exit status:  {'-' if exit_status is None else exit_status}\n\n"
        f"Last {OUTPUT_TAIL_LINES} lines of the release command's output:\n\n"
        + "".join(f"    {line}\n" for line in tail.splitlines())
        + f"\nThe whole output: gitpaas releases:output v{version} -a {app}\n"
    )
    return message


# --- announcing (in the deploy) ------------------------------------------------------------

def announce_release(settings: Settings, app_name: str, release: Release, output_tail: str) -> None:
    """Queue the event for ``release`` and start a detached deliverer. Never raises, never waits."""
    try:
        notes = Notifications.for_app(settings, app_name)
        hooks = notes.webhooks()
        email = notes.email() if release.status == FAILED else None
        if not hooks and email is None:
            return
        event = release_event(release, output_tail)
        record = {
            "id": event["id"], "app": app_name, "release": release.version, "release_status": release.status,
            "created_at": event["created_at"], "status": PENDING, "deliverer_pid": None,
            "failure": release.failure,
            "webhooks": [{"webhook_id": hook.id, "url": hook.url, "delivery_id": str(uuid.uuid4()),
                          "status": PENDING, "attempts": []} for hook in hooks],
            "email": None if email is None else {"to": email.to, "smtp": email.smtp, "status": PENDING, "attempts": []},
            "event": event,
        }
        path = notes.deliveries_dir / f"{event['id']}.json"
        write_json(path, record, mode=0o600)
        deliverer = subprocess.Popen(
            [sys.executable, "-m", "gitpaas.notify", "deliver", str(path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, env={**os.environ, "GITPAAS_HOME": str(settings.home)},
        )
        # Reap it when it ends, so a long-lived caller (the API) collects no zombies; a caller that
        # exits first (the git hook) leaves it running on its own.
        threading.Thread(target=deliverer.wait, name="gitpaas-deliverer-reaper", daemon=True).start()
    except Exception as exc:  # a notification problem must never fail a deploy
        version = getattr(release, "version", "?")
        log_problem(settings.home, f"{app_name} v{version}: could not announce the release: {exc!r}")


def log_problem(home: Path, message: str) -> None:
    """Append one line to ``$GITPAAS_HOME/logs/notify.log``; silently give up if that fails too."""
    try:
        path = Path(home) / "logs" / "notify.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{now_iso()} {message}\n")
    except Exception:
        pass


# --- delivering (in the detached process) --------------------------------------------------

class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # a 3xx is not a delivery
        return None


def post_webhook(url: str, secret: str, event: dict[str, Any], webhook_id: str, delivery_id: str,
                 timeout: float = SEND_TIMEOUT) -> dict[str, Any]:
    """One attempt: POST the signed event; returns the attempt's record."""
    attempt: dict[str, Any] = {"id": str(uuid.uuid4()), "at": now_iso()}
    body = json.dumps(webhook_payload(event, webhook_id, delivery_id, attempt["id"])).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers=webhook_headers(secret, event["id"], body))
    try:
        with urllib.request.build_opener(_RefuseRedirects).open(request, timeout=timeout) as response:
            attempt["status_code"] = response.status
    except urllib.error.HTTPError as exc:
        attempt["status_code"] = exc.code
    except urllib.error.URLError as exc:
        attempt["error"] = str(exc.reason)
    except Exception as exc:
        attempt["error"] = str(exc) or type(exc).__name__
    return attempt


def send_email(record: dict[str, Any], timeout: float = SEND_TIMEOUT) -> dict[str, Any]:
    attempt: dict[str, Any] = {"at": now_iso()}
    try:
        host, port = smtp_address(record["email"]["smtp"])
        # The host name, not getfqdn(): a reverse DNS lookup can stall for seconds.
        local = socket.gethostname() or "localhost"
        with smtplib.SMTP(host, port, local_hostname=local, timeout=timeout) as smtp:
            smtp.send_message(failure_email(record, f"gitpaas@{local}"))
        attempt["sent"] = True
    except Exception as exc:
        attempt["error"] = str(exc) or type(exc).__name__
    return attempt


def retry_policy(environ: Mapping[str, str]) -> tuple[float, int]:
    """(base delay in seconds, attempts) from GITPAAS_WEBHOOK_RETRY_BASE and GITPAAS_WEBHOOK_ATTEMPTS."""
    def positive(key: str, default: float, kind: Callable[[str], float]) -> float:
        try:
            value = kind(environ.get(key) or "")
        except ValueError:
            return default
        return value if value > 0 else default
    return positive("GITPAAS_WEBHOOK_RETRY_BASE", 2.0, float), int(positive("GITPAAS_WEBHOOK_ATTEMPTS", 8, int))


def deliver(path: Path, environ: Mapping[str, str] | None = None,
            sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Deliver the event in ``path`` to every target, retrying with backoff; rewrite the file as it goes."""
    base, max_attempts = retry_policy(os.environ if environ is None else environ)
    notes = Notifications(path.parent.parent)
    record = read_json(path)
    record["deliverer_pid"] = os.getpid()
    secrets_by_id = {hook.id: hook.secret for hook in notes.webhooks()}

    def attempt(target: dict[str, Any]) -> bool:
        if target is record["email"]:
            outcome = send_email(record)
            target["attempts"].append(outcome)
            return bool(outcome.get("sent"))
        secret = secrets_by_id.get(target["webhook_id"])
        if secret is None:
            target["attempts"].append({"at": now_iso(), "error": "the webhook was removed"})
            target["status"] = FAILED
            return False
        outcome = post_webhook(target["url"], secret, record["event"], target["webhook_id"], target["delivery_id"])
        target["attempts"].append(outcome)
        return 200 <= outcome.get("status_code", 0) < 300

    targets = record["webhooks"] + ([record["email"]] if record["email"] else [])
    for number in range(max_attempts):
        for target in targets:
            if target["status"] != PENDING:
                continue
            if attempt(target):
                target["status"] = DELIVERED
            elif number + 1 == max_attempts:
                target["status"] = FAILED
            _settle(record, targets)
            write_json(path, record, mode=0o600)
        if all(target["status"] != PENDING for target in targets):
            break
        sleep(base * 2 ** number)
    notes.prune_deliveries()
    return record


def _settle(record: dict[str, Any], targets: list[dict[str, Any]]) -> None:
    statuses = {target["status"] for target in targets}
    record["status"] = PENDING if PENDING in statuses else (FAILED if FAILED in statuses else DELIVERED)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "deliver":
        print("usage: python -m gitpaas.notify deliver FILE", file=sys.stderr)
        return 2
    path = Path(argv[1]).absolute()
    try:
        deliver(path)
    except Exception as exc:
        log_problem(Path(os.environ.get("GITPAAS_HOME") or path.parents[3]), f"delivering {path}: {exc!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
