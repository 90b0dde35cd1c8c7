"""App webhooks and their deliveries in the Platform API's shapes (``heroku webhooks:*``).

gitpaas sends one kind of event, ``api:release`` (a release succeeded or failed), signed with the
webhook's secret (``Heroku-Webhook-Hmac-SHA256``); a webhook asking for another kind is refused
with one line rather than created to stay silent. The secret is shown once, in the creating
response's ``Heroku-Webhook-Secret`` header, as Heroku does."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Request, Response
from pydantic import Field

from gitpaas.api.core import (
    JsonRoute,
    Strict,
    gitpaas_variant,
    platform_of,
    visible_app,
)
from gitpaas.api.routes import User
from gitpaas.errors import InvalidParams, NotFound, UsageError
from gitpaas.notify.store import DELIVERED, PENDING, Notifications, Webhook
from gitpaas.shapes import derived_id
from gitpaas.store.apps import App

router = APIRouter(route_class=JsonRoute)
#: the one event type gitpaas sends
RELEASE_EVENTS = "api:release"


def webhook_json(app: App, hook: Webhook) -> dict:
    return {"app": {"id": app.id, "name": app.name}, "created_at": hook.created_at, "id": hook.id,
            "include": [RELEASE_EVENTS], "level": "notify", "updated_at": hook.created_at, "url": hook.url}


def _notifications(request: Request, user: str, app: str) -> tuple[App, Notifications]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return found, Notifications.for_app(platform.settings, found.name)


def _hook(notes: Notifications, identity: str) -> Webhook:
    for hook in notes.webhooks():
        if identity in (hook.id, hook.url):
            return hook
    raise NotFound("Couldn't find that webhook.")


@router.get("/apps/{app}/webhooks")
def webhooks_list(request: Request, user: User, app: str) -> list[dict]:
    found, notes = _notifications(request, user, app)
    return [webhook_json(found, hook) for hook in notes.webhooks()]


@router.get("/apps/{app}/webhooks/{webhook}")
def webhooks_info(request: Request, user: User, app: str, webhook: str) -> dict:
    found, notes = _notifications(request, user, app)
    return webhook_json(found, _hook(notes, webhook))


class WebhookCreate(Strict):
    url: str = Field(max_length=2048)
    include: list[str] = Field(max_length=20)
    level: Literal["notify", "sync"]
    secret: Optional[str] = Field(default=None, max_length=256)
    authorization: Optional[str] = Field(default=None, max_length=1024)


@router.post("/apps/{app}/webhooks", status_code=201)
def webhooks_add(request: Request, response: Response, user: User, app: str, body: WebhookCreate) -> dict:
    others = sorted(set(body.include) - {RELEASE_EVENTS})
    if others or not body.include:
        raise InvalidParams(f"gitpaas sends {RELEASE_EVENTS} events only (a release succeeded or failed), not "
                            f"{', '.join(others) or 'none'}: add the webhook with --include {RELEASE_EVENTS}")
    if body.authorization:
        raise InvalidParams("gitpaas sends no Authorization header with webhooks: verify the "
                            "Heroku-Webhook-Hmac-SHA256 signature with the webhook's secret instead")
    found, notes = _notifications(request, user, app)
    try:
        hook = notes.add_webhook(body.url, body.secret)
    except UsageError as exc:
        raise InvalidParams(exc.message) from None
    response.headers["Heroku-Webhook-Secret"] = hook.secret
    payload = webhook_json(found, hook)
    return {**payload, "secret": hook.secret} if gitpaas_variant(request) else payload


@router.delete("/apps/{app}/webhooks/{webhook}")
def webhooks_remove(request: Request, user: User, app: str, webhook: str) -> dict:
    found, notes = _notifications(request, user, app)
    return webhook_json(found, notes.remove_webhook(_hook(notes, webhook).id))


def delivery_json(app: App, record: dict, target: dict) -> dict:
    """One (event, webhook) pair of a delivery record, as a ``webhook-delivery``."""
    last = target["attempts"][-1] if target["attempts"] else None
    status = {PENDING: "pending", DELIVERED: "succeeded"}.get(target["status"], "failed")
    attempt = None if last is None else {
        "id": last.get("id") or derived_id(target["delivery_id"], "attempt", len(target["attempts"])),
        "code": last.get("status_code"), "error_class": last.get("error"),
        "status": "succeeded" if 200 <= (last.get("status_code") or 0) < 300 else "failed",
        "created_at": last["at"], "updated_at": last["at"]}
    return {"id": target["delivery_id"], "created_at": record["created_at"],
            "event": {"id": record["id"], "include": RELEASE_EVENTS},
            "webhook": {"id": target["webhook_id"], "level": "notify"},
            "num_attempts": len(target["attempts"]), "next_attempt_at": None, "last_attempt": attempt,
            "status": status, "updated_at": last["at"] if last else record["created_at"]}


@router.get("/apps/{app}/webhook-deliveries")
def deliveries_list(request: Request, user: User, app: str) -> list[dict]:
    found, notes = _notifications(request, user, app)
    limit = _range_max(request.headers.get("range"))
    records = notes.deliveries(limit)
    if gitpaas_variant(request):  # gitpaas's records: each event with every target (e-mail too)
        return records
    wanted = request.query_params.get("eq[status]")
    deliveries = [delivery_json(found, record, target) for record in records for target in record["webhooks"]]
    return [d for d in deliveries if wanted in (None, d["status"])][:limit]


@router.get("/apps/{app}/webhook-deliveries/{delivery}")
def deliveries_info(request: Request, user: User, app: str, delivery: str) -> dict:
    found, notes = _notifications(request, user, app)
    for record in notes.deliveries(None):
        for target in record["webhooks"]:
            if target["delivery_id"] == delivery:
                return delivery_json(found, record, target)
    raise NotFound("Couldn't find that webhook delivery.")


def _range_max(header: str | None) -> int:
    """``seq ..; order=desc,max=1000`` → 1000 (deliveries are always newest first)."""
    for part in (header or "").replace(";", ",").split(","):
        key, _, value = part.strip().partition("=")
        if key == "max" and value.strip().isdigit():
            return max(1, min(int(value), 1000))
    return 200
