"""The ASGI application: the routers, the request body limit and the one handler per kind of error."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gitpaas.api import account, addons, drains, git_http, pg_backups, pipelines, routes, streams, webhooks
from gitpaas.dashboard import pages as dashboard
from gitpaas.api.rendezvous import Rendezvous
from gitpaas.api.core import (
    BODY_ALLOWED,
    error_response,
    render,
    token_user,
    unauthorized,
)
from gitpaas.errors import GitpaasError, RequestTooLarge
from gitpaas.settings import Settings

#: the largest body accepted, except by git's own endpoints once the pusher is known
MAX_BODY = 1024 * 1024
_LENGTH = re.compile(rb"[0-9]{1,19}")


class BodyLimit:
    """Keep request bodies out of memory until the server knows who sends them.

    A request with a body needs a valid token before any of it is read (every route that reads a
    body is an authenticated one), else 401. Bodies over MAX_BODY get 413, whether Content-Length
    says so or the body turns out longer (chunked). Only git's smart HTTP endpoints
    (``git_http.is_git_route``) may send more, and only once ``git_http`` has checked the token and
    the access to the app (it marks the request ``BODY_ALLOWED`` then, and reads nothing before):
    their 401 must come from git_http, with the challenge that makes git ask for credentials."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        raw_length = headers.get(b"content-length")
        declared = int(raw_length) if raw_length is not None and _LENGTH.fullmatch(raw_length) else None
        if raw_length is not None and declared is None:
            return await _too_large(scope, receive, send)
        git = git_http.is_git_route(scope.get("path", ""))
        if not git:
            if declared is not None and declared > MAX_BODY:
                return await _too_large(scope, receive, send)
            has_body = bool(declared) or b"transfer-encoding" in headers
            # (the dashboard's forms carry a session cookie, checked by its pages, not a token)
            if has_body and not dashboard.is_dashboard(scope.get("path", "")) and token_user(scope) is None:
                return await render(unauthorized())(scope, receive, send)
        seen, exceeded, started, replaced = 0, False, False, False

        def unlimited() -> bool:
            return git and bool(scope.get(BODY_ALLOWED))

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            if not unlimited() and declared is not None and declared > MAX_BODY:
                exceeded = True
                raise RequestTooLarge(MAX_BODY)
            message = await receive()
            if not unlimited():
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:
                    exceeded = True
                    raise RequestTooLarge(MAX_BODY)
            return message

        async def limited_send(message: Message) -> None:
            """Once a body was too large, the app's own answer (FastAPI's 400 for a body it could
            not read) is replaced by the 413."""
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                if exceeded:
                    replaced = True
                    return await _too_large(scope, receive, send)
            if not replaced:
                await send(message)
        try:
            await self.app(scope, limited_receive, limited_send)
        except RequestTooLarge:
            if not started:  # else the answer was under way: it just ends here
                await _too_large(scope, receive, send)


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(RequestTooLarge.http_status, RequestTooLarge.error_id,
                         RequestTooLarge(MAX_BODY).message)(scope, receive, send)


def create_app(settings: Settings, rendezvous: Rendezvous | None = None) -> FastAPI:
    api = FastAPI(title="gitpaas Platform API", version="3", openapi_url="/openapi.json", docs_url=None,
                  redoc_url=None, description="Heroku Platform API v3 shapes, served by gitpaas.")
    api.state.settings = settings
    #: where clients attach to one-off dynos (``gitpaas server`` makes one; None: run:detached only)
    api.state.rendezvous = rendezvous

    @api.exception_handler(GitpaasError)
    async def gitpaas_error(request: Request, exc: GitpaasError):
        """Every expected failure, rendered once: Heroku's ``{"id", "message"}`` with its status
        (the dashboard's, as a page)."""
        if dashboard.is_dashboard(request.url.path):  # (it reads the session: not on the event loop)
            return await run_in_threadpool(dashboard.error_page, request, exc.http_status, exc.message)
        return render(exc)

    @api.exception_handler(addons.UnknownAddon)
    async def unknown_addon(request: Request, exc: addons.UnknownAddon):
        """Heroku's 404 for an add-on names the kind of thing not found (the Heroku CLI reads it)."""
        return JSONResponse({"id": exc.error_id, "message": exc.message, "resource": exc.resource},
                            status_code=exc.http_status)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        if dashboard.is_dashboard(request.url.path):
            return await run_in_threadpool(dashboard.error_page, request, 400,
                                           "That request is not one the dashboard's pages make.")
        if first.get("type") == "json_invalid":
            return error_response(400, "bad_request", "The request body is not valid JSON.")
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return error_response(422, "invalid_params", f"{where or 'body'}: {first.get('msg', 'invalid')}")

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if dashboard.is_dashboard(request.url.path):
            return await run_in_threadpool(dashboard.error_page, request, exc.status_code,
                                           "There is no such page." if exc.status_code == 404 else str(exc.detail))
        error_id = {404: "not_found", 405: "method_not_allowed", 422: "invalid_params"}.get(exc.status_code,
                                                                                           "bad_request")
        return error_response(exc.status_code, error_id, str(exc.detail))

    @api.middleware("http")
    async def heroku_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Request-Id", request.headers.get("request-id", ""))
        return response

    api.include_router(routes.router)
    api.include_router(addons.router)
    api.include_router(webhooks.router)
    api.include_router(account.router)
    api.include_router(drains.router)
    api.include_router(pg_backups.router)
    api.include_router(pipelines.router)
    api.include_router(streams.router)
    api.include_router(git_http.router)
    dashboard.install(api)
    api.add_middleware(BodyLimit)
    return api


__all__ = ["create_app"]
