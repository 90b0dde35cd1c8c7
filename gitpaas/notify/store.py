"""An app's notification settings and deliveries, as plain 0600 files in its folder.

``webhooks.json`` and ``notify-email.json`` hold what the user configured (secrets included);
``deliveries/ID.json`` is one event and every attempt to deliver it. Settings are validated here,
when they are written, so the deliverer can trust what it reads — except where a webhook's host
points, which can change: ``private_target`` is asked again at every delivery.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import asdict, dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gitpaas.errors import GitpaasError, UsageError
from gitpaas.netpolicy import Resolver, check_host, system_resolver, url_host
from gitpaas.release import now_iso
from gitpaas.settings import Settings
from gitpaas.store.files import PRIVATE, read_json, write_json

DEFAULT_SMTP = "smtp://localhost:25"
KEEP_DELIVERIES = 100

# A delivery's status, and each target's: PENDING until DELIVERED or FAILED.
PENDING = "pending"
DELIVERED = "delivered"
# FAILED ("failed") is shared with releases: gitpaas.release.FAILED.


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


def validate_webhook_url(url: str, private_targets: bool = False, resolver: Resolver = system_resolver) -> str:
    """``url`` if it is an http(s) URL with a host that may be targeted (see ``private_target``)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"webhook URL must be http:// or https:// with a host, not {url!r}")
    refusal = None if private_targets else private_target(url, resolver)
    if refusal:
        raise UsageError(f"webhook {url}: {refusal}")
    return url


def private_target(url: str, resolver: Resolver = system_resolver) -> str | None:
    """Why ``url``'s host may not receive webhooks (it is, or resolves to, a loopback, link-local,
    private or otherwise non-public address), or None. A host that does not resolve now is not
    refused: nothing private is reached, and delivery asks again."""
    host = url_host(url)
    verdict = check_host(host, resolver) if host else None
    if verdict is None or verdict.refused is None:
        return None
    return (f"{verdict.refused}; webhooks may only go to public addresses "
            "(the operator can allow private ones: GITPAAS_WEBHOOK_PRIVATE_TARGETS=1)")


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

    def __init__(self, app_dir: Path, private_targets: bool = False, resolver: Resolver = system_resolver) -> None:
        self.app_dir = app_dir
        #: Settings.webhook_private_targets: whether a webhook may go to a loopback or private address
        self.private_targets = private_targets
        self.resolver = resolver
        self.webhooks_path = app_dir / "webhooks.json"
        self.email_path = app_dir / "notify-email.json"
        self.deliveries_dir = app_dir / "deliveries"

    @classmethod
    def for_app(cls, settings: Settings, app_name: str) -> "Notifications":
        return cls(settings.app_dir(app_name), private_targets=settings.webhook_private_targets)

    # webhooks
    def webhooks(self) -> list[Webhook]:
        return [Webhook(**entry) for entry in _read(self.webhooks_path, [])]

    def add_webhook(self, url: str, secret: str | None = None) -> Webhook:
        """Register ``url``; without ``secret`` one is generated (show it to the user once)."""
        validate_webhook_url(url, self.private_targets, self.resolver)
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
        write_json(self.webhooks_path, [asdict(hook) for hook in hooks], mode=PRIVATE)

    # e-mail
    def email(self) -> EmailSettings | None:
        data = _read(self.email_path, None)
        return EmailSettings(**data) if data else None

    def set_email(self, to: list[str], smtp: str = DEFAULT_SMTP, private_targets: bool = False,
                  resolver: Resolver = system_resolver) -> EmailSettings:
        """E-mail ``to`` about failed releases through ``smtp``: this machine's own mail server (the
        default), a public one, or — if the operator allows private targets — any."""
        if not to:
            raise UsageError("give at least one e-mail address")
        host, _port = smtp_address(smtp)
        if smtp != DEFAULT_SMTP and not private_targets:
            verdict = check_host(host, resolver)
            if not verdict.public:
                raise UsageError(f"the mail server {host} is not a public host"
                                 f"{f' ({verdict.refused})' if verdict.refused else ''}: use {DEFAULT_SMTP}, a public "
                                 "one, or ask the operator to allow private targets (GITPAAS_WEBHOOK_PRIVATE_TARGETS=1)")
        settings = EmailSettings(to=[validate_address(address) for address in to], smtp=smtp)
        write_json(self.email_path, asdict(settings), mode=PRIVATE)
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
                continue  # being rewritten by its deliverer, or pruned meanwhile: skip it this time
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
        raise GitpaasError(f"the app's {path.name} is not valid JSON ({exc}); fix or remove it") from None
