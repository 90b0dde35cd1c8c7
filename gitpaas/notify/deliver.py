"""The detached deliverer: ``python -m gitpaas.notify deliver FILE``.

Sends the event in one delivery file to every webhook (signed POST) and, for a failed release, to
the e-mail recipients; retries each target with exponential backoff and rewrites the file after
every attempt, so ``cat`` shows where it stands. Runs outside the deploy, in its own session.

Unless the operator allows private targets, a webhook whose host now is (or resolves to) a
loopback, link-local or private address fails at once, unsent; and the connection itself goes only
to addresses checked as it is made, so a DNS answer that changes in between reaches nothing private.
"""

from __future__ import annotations

import http.client
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

from gitpaas.netpolicy import Resolver, check_host, system_resolver
from gitpaas.notify.announce import log_problem
from gitpaas.notify.event import failure_email, webhook_headers, webhook_payload
from gitpaas.errors import UsageError
from gitpaas.notify.store import (
    DEFAULT_SMTP,
    DELIVERED,
    PENDING,
    Notifications,
    private_target,
    smtp_address,
)
from gitpaas.release import FAILED, now_iso
from gitpaas.settings import Settings
from gitpaas.store.files import PRIVATE, read_json, write_json

SEND_TIMEOUT = 10.0


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # a 3xx is not a delivery
        return None


class _PublicOnly:
    """Makes urllib's HTTP(S) connections resolve their host, check every address (``netpolicy``)
    and connect only to those — the check and the connection see the same DNS answer. A proxy
    the operator configured is dialled as it is; the webhook's host was checked before sending."""

    resolver: Resolver = staticmethod(system_resolver)

    def do_open(self, http_class, req, **kwargs):  # urllib's one seam for the connection class
        if req.has_proxy() or getattr(req, "_tunnel_host", None):
            return super().do_open(http_class, req, **kwargs)

        def connection(host: str, **options: Any) -> http.client.HTTPConnection:
            made = http_class(host, **options)
            made._create_connection = self._connect  # http.client's hook for making the socket
            return made
        return super().do_open(connection, req, **kwargs)

    def _connect(self, address: tuple[str, int], timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,
                 source_address: Any = None) -> socket.socket:
        host, port = address
        verdict = check_host(host, self.resolver)
        if not verdict.resolved:
            raise OSError(f"cannot resolve {host}")
        if verdict.refused:
            raise OSError(f"refused: {verdict.refused}")  # urllib reports it as the attempt's error
        failure: OSError = OSError(f"cannot connect to {host}")
        for checked in verdict.addresses:
            try:
                return socket.create_connection((checked, port), timeout, source_address)
            except OSError as exc:
                failure = exc
        raise failure


class _PublicHTTPHandler(_PublicOnly, urllib.request.HTTPHandler):
    pass


class _PublicHTTPSHandler(_PublicOnly, urllib.request.HTTPSHandler):
    pass


def http_opener(private_targets: bool, resolver: Resolver) -> urllib.request.OpenerDirector:
    """urllib, refusing redirects and — unless ``private_targets`` — connecting only to the public
    addresses its check saw (webhooks, log drains)."""
    if private_targets:
        return urllib.request.build_opener(_RefuseRedirects)
    handlers = [_PublicHTTPHandler(), _PublicHTTPSHandler()]
    for handler in handlers:
        handler.resolver = resolver
    return urllib.request.build_opener(_RefuseRedirects, *handlers)


def post_webhook(url: str, secret: str, event: dict[str, Any], webhook_id: str, delivery_id: str,
                 timeout: float = SEND_TIMEOUT, private_targets: bool = False,
                 resolver: Resolver = system_resolver) -> dict[str, Any]:
    """One attempt: POST the signed event (to public addresses only, unless ``private_targets``);
    returns the attempt's record."""
    attempt: dict[str, Any] = {"id": str(uuid.uuid4()), "at": now_iso()}
    body = json.dumps(webhook_payload(event, webhook_id, delivery_id, attempt["id"])).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers=webhook_headers(secret, event["id"], body))
    try:
        with http_opener(private_targets, resolver).open(request, timeout=timeout) as response:
            attempt["status_code"] = response.status
    except urllib.error.HTTPError as exc:
        attempt["status_code"] = exc.code
    except urllib.error.URLError as exc:
        attempt["error"] = str(exc.reason)
    except Exception as exc:
        attempt["error"] = str(exc) or type(exc).__name__
    return attempt


def send_email(record: dict[str, Any], timeout: float = SEND_TIMEOUT, private_targets: bool = False,
               resolver: Resolver = system_resolver) -> dict[str, Any]:
    """One attempt; to the machine's own mail server (the default), or a host checked as public at
    this very moment (connecting to the address checked, so DNS cannot change it meanwhile)."""
    attempt: dict[str, Any] = {"at": now_iso()}
    try:
        host, port = smtp_address(record["email"]["smtp"])
        if record["email"]["smtp"] != DEFAULT_SMTP and not private_targets:
            verdict = check_host(host, resolver)
            if not verdict.public:
                raise UsageError(f"the mail server {host} is not a public host")
            host = verdict.addresses[0]
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
            sleep: Callable[[float], None] = time.sleep, private_targets: bool = False,
            resolver: Resolver = system_resolver) -> dict[str, Any]:
    """Deliver the event in ``path`` to every target, retrying with backoff; rewrite the file as it goes.

    ``private_targets`` is Settings.webhook_private_targets: without it, a webhook whose host is
    not public now fails at once, without a request (and without retries).
    """
    base, max_attempts = retry_policy(os.environ if environ is None else environ)
    notes = Notifications(path.parent.parent)
    record = read_json(path)
    record["deliverer_pid"] = os.getpid()
    secrets_by_id = {hook.id: hook.secret for hook in notes.webhooks()}

    def attempt(target: dict[str, Any]) -> bool:
        if target is record["email"]:
            outcome = send_email(record, private_targets=private_targets, resolver=resolver)
            target["attempts"].append(outcome)
            return bool(outcome.get("sent"))
        secret = secrets_by_id.get(target["webhook_id"])
        if secret is None:
            target["attempts"].append({"at": now_iso(), "error": "the webhook was removed"})
            target["status"] = FAILED
            return False
        refusal = None if private_targets else private_target(target["url"], resolver)
        if refusal:
            target["attempts"].append({"at": now_iso(), "error": f"not sent: {refusal}"})
            target["status"] = FAILED
            return False
        outcome = post_webhook(target["url"], secret, record["event"], target["webhook_id"], target["delivery_id"],
                               private_targets=private_targets, resolver=resolver)
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
            write_json(path, record, mode=PRIVATE)
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
        # announce_release passes GITPAAS_HOME and the deploy's settings in the environment
        settings = Settings.from_env()
        deliver(path, private_targets=settings.webhook_private_targets)
    except Exception as exc:
        log_problem(Path(os.environ.get("GITPAAS_HOME") or path.parents[3]), f"delivering {path}: {exc!r}")
        return 1
    return 0
