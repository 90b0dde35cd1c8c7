"""The ASGI application: the routers, the request body limit and the one handler per kind of error."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from gitpaas.api import git_http, routes, streams
from gitpaas.api.core import error_response
from gitpaas.errors import GitpaasError, RequestTooLarge
from gitpaas.settings import Settings

#: the largest JSON body accepted (git pushes, on the *.git routes, are not limited)
MAX_BODY = 1024 * 1024


class BodyLimit:
    """Refuse request bodies over MAX_BODY with 413, whether Content-Length says so or the body
    turns out longer (chunked)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or ".git/" in scope.get("path", ""):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = error_response(RequestTooLarge.http_status, RequestTooLarge.error_id,
                                 RequestTooLarge(MAX_BODY).message)
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return await too_big(scope, receive, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise RequestTooLarge(MAX_BODY)
            return message
        await self.app(scope, limited, send)


def create_app(settings: Settings) -> FastAPI:
    api = FastAPI(title="gitpaas Platform API", version="3", openapi_url="/openapi.json", docs_url=None,
                  redoc_url=None, description="Heroku Platform API v3 shapes, served by gitpaas.")
    api.state.settings = settings

    @api.exception_handler(GitpaasError)
    async def gitpaas_error(request: Request, exc: GitpaasError):
        """Every expected failure, rendered once: Heroku's ``{"id", "message"}`` with its status."""
        return error_response(exc.http_status, exc.error_id, exc.message, exc.http_headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return error_response(400, "bad_request", "The request body is not valid JSON.")
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return error_response(422, "invalid_params", f"{where or 'body'}: {first.get('msg', 'invalid')}")

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        error_id = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return error_response(exc.status_code, error_id, str(exc.detail))

    @api.middleware("http")
    async def heroku_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Request-Id", request.headers.get("request-id", ""))
        return response

    api.include_router(routes.router)
    api.include_router(streams.router)
    api.include_router(git_http.router)
    api.add_middleware(BodyLimit)
    return api


__all__ = ["create_app"]
