"""The detached deliverer: ``python -m gitpaas.notify deliver FILE``.

Sends the event in one delivery file to every webhook (signed POST) and, for a failed release, to
the e-mail recipients; retries each target with exponential backoff and rewrites the file after
every attempt, so ``cat`` shows where it stands. Runs outside the deploy, in its own session.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from gitpaas.notify.announce import log_problem
from gitpaas.notify.event import failure_email, webhook_headers, webhook_payload
from gitpaas.notify.store import DELIVERED, PENDING, Notifications, smtp_address
from gitpaas.release import FAILED, now_iso
from gitpaas.store.files import read_json, write_json

SEND_TIMEOUT = 10.0


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
