"""A release event in Heroku's app-webhook shape, its signature, and the failure e-mail.

Pure: records in, dicts, headers and messages out. The deliverer sends them; nothing here
touches the disk or the network. What leaves the server names no path on it: the release's
``output_stream_url`` (a ``file://`` path in the record) is sent as the signed URL of the output on
the published API, or null where the API is not published — the output tail is in the event either
way — and anything else that mentions a path in the home is rewritten (``hide_server_paths``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from gitpaas.release import Release, now_iso

OUTPUT_TAIL_LINES = 20
SIGNATURE_HEADER = "Heroku-Webhook-Hmac-SHA256"
API_VERSION = "application/vnd.heroku+json; version=3"
#: what a path in the home becomes in anything sent out
HIDDEN_PATH = "(a path on the server)"


def tail_lines(text: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) + ("\n" if kept else "")


def release_event(release: Release, output_tail: str, output_url: str | None = None, *,
                  event_id: str | None = None) -> dict[str, Any]:
    """The app-webhook event for ``release``, without the per-delivery ``webhook_metadata``.
    ``output_url`` is the release output's signed URL on the published API, if there is one."""
    created = now_iso()
    return {
        "id": event_id or str(uuid.uuid4()),
        "created_at": created,
        "published_at": created,
        "resource": "release",
        "action": "update",
        "actor": dict(release.user),
        "previous_data": {},
        # The record's output_stream_url is a file:// path on the server: never sent.
        "data": {**release.to_api(), "output_stream_url": output_url},
        "version": API_VERSION,
        "output_tail": tail_lines(output_tail),
    }


def hide_server_paths(value: Any, home: Path | str) -> Any:
    """``value`` (strings, lists and dicts, nested) with every path in ``home`` — as a path or a
    ``file://`` URL — replaced by HIDDEN_PATH, so a failure reason or an output line that mentions
    one does not tell receivers where the server keeps things."""
    pattern = re.compile(r"(?:file://)?" + re.escape(str(home).rstrip("/")) + r"(?![\w.-])[^\s'\"():,;]*")

    def hidden(item: Any) -> Any:
        if isinstance(item, str):
            return pattern.sub(HIDDEN_PATH, item)
        if isinstance(item, list):
            return [hidden(each) for each in item]
        if isinstance(item, dict):
            return {key: hidden(each) for key, each in item.items()}
        return item
    return hidden(value)


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
