"""Log drains in the Platform API's shapes (``heroku drains``, ``drains:add``, ``drains:remove``);
gitpaas's variant adds each drain's delivery status. See ``gitpaas.notify.drains``."""

from __future__ import annotations

from urllib.parse import unquote

from fastapi import APIRouter, Request
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
from gitpaas.notify.drains import Drain, Drains
from gitpaas.store.apps import App

router = APIRouter(route_class=JsonRoute)


def drain_json(app: App, drain: Drain, status: dict | None = None) -> dict:
    data = {"addon": None, "app": {"id": app.id, "name": app.name}, "created_at": drain.created_at, "id": drain.id,
            "token": drain.token, "updated_at": drain.created_at, "url": drain.url}
    return data if status is None else {**data, "status": status}


def _drains(request: Request, user: str, app: str) -> tuple[App, Drains]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return found, Drains(platform.settings, found.name)


@router.get("/apps/{app}/log-drains")
def drains_list(request: Request, user: User, app: str) -> list[dict]:
    found, drains = _drains(request, user, app)
    status = drains.status() if gitpaas_variant(request) else None
    return [drain_json(found, d, None if status is None else status.get(d.id, {})) for d in drains.list()]


class DrainCreate(Strict):
    url: str = Field(max_length=2048)


@router.post("/apps/{app}/log-drains", status_code=201)
def drains_add(request: Request, user: User, app: str, body: DrainCreate) -> dict:
    found, drains = _drains(request, user, app)
    try:
        return drain_json(found, drains.add(body.url))
    except UsageError as exc:
        raise InvalidParams(exc.message) from None


@router.delete("/apps/{app}/log-drains/{drain:path}")
def drains_remove(request: Request, user: User, app: str, drain: str) -> dict:
    """By id, token or URL (the Heroku CLI sends the URL, encoded)."""
    found, drains = _drains(request, user, app)
    for candidate in dict.fromkeys([drain, unquote(drain)]):  # (a server that left the path encoded)
        try:
            return drain_json(found, drains.remove(candidate))
        except UsageError:
            continue
    raise NotFound("Couldn't find that drain.")
