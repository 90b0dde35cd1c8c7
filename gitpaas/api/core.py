"""What every API route shares: JSON errors in Heroku's shape, the acting account, the app it may
see, releases that continue in the background, and signed stream URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import re
import secrets
import threading
from pathlib import Path
from typing import Any, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from gitpaas.errors import GitpaasError, ReleaseNotFound
from gitpaas.platform import Platform
from gitpaas.release import Release, parse_version
from gitpaas.settings import Settings
from gitpaas.store.apps import App
from gitpaas.store.files import write_atomic

log = logging.getLogger("gitpaas.api")
_APP_IDENTITY = re.compile(r"^[a-z][a-z0-9-]{0,29}$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ApiError(Exception):
    """An error answered as ``{"id": ..., "message": ...}`` with ``status``."""

    def __init__(self, status: int, error_id: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message, self.headers = status, error_id, message, headers


def error_response(status: int, error_id: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"id": error_id, "message": message}, status_code=status, headers=headers)


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def accounts_of(request: Request):
    from gitpaas.auth import Accounts
    return Accounts(settings_of(request))


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():  # git and curl -u: the token is the password
        try:
            return base64.b64decode(value.strip()).decode().partition(":")[2] or None
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def current_user(request: Request) -> str:
    """The account behind the request's token; 401 when it has none or a bad one."""
    token = bearer_token(request)
    email = accounts_of(request).authenticate(token) if token else None
    if email is None:
        raise ApiError(401, "unauthorized", "Invalid credentials provided: send `Authorization: Bearer <token>`"
                       " with a token from `gitpaas tokens:create`.")
    return email


def platform_for(request: Request, user: str) -> Platform:
    platform = Platform(settings_of(request))
    platform.actor = user
    return platform


def visible_app(platform: Platform, user: str, identity: str) -> App:
    """The app named (or with the id) ``identity`` if ``user`` may use it; otherwise the same 404
    whether it does not exist or is someone else's, so nothing about it leaks."""
    not_found = ApiError(404, "not_found", "Couldn't find that app.")
    if not _APP_IDENTITY.match(identity):
        raise not_found
    try:
        if "-" in identity and len(identity) == 36:
            matches = [app for app in platform.apps.list() if app.id == identity]
            if not matches:
                raise not_found
            app = matches[0]
        else:
            app = platform.apps.get(identity)
    except GitpaasError:
        raise not_found from None
    if not platform.can_access(user, app.name):
        raise not_found
    return app


def find_release(platform: Platform, app: str, identity: str) -> Release:
    """A release by version (``12``, ``v12``) or id."""
    releases = platform.apps.releases(app)
    version = parse_version(identity)
    if version is not None:
        return releases.get(version)
    for release in releases.walk_down():
        if release.id == identity:
            return release
    raise ReleaseNotFound(app, identity)


def in_background(platform: Platform, work: Callable[[], Any], wait: float = 600.0) -> Release | None:
    """Run ``work`` (something that creates a release) in a thread; return the release as soon as it
    is recorded ``pending`` — its release phase goes on in the server, as on Heroku. An error before
    the release exists is raised here; None when ``work`` finished without creating one."""
    outcome: queue.Queue = queue.Queue()
    platform.on_release_created = lambda release: outcome.put(("created", release))

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # recorded in the release when one exists
            outcome.put(("error", exc))
            if not isinstance(exc, GitpaasError):
                log.exception("background release failed")
        else:
            outcome.put(("done", None))

    threading.Thread(target=run, name="gitpaas-release", daemon=True).start()
    kind, value = outcome.get(timeout=wait)
    if kind == "error":
        raise value
    return value


class Signer:
    """Unguessable, unforgeable URLs for streams (release output, log sessions), like Heroku's."""

    def __init__(self, settings: Settings) -> None:
        path = settings.home / "accounts" / "server-secret"
        if not path.exists():
            write_atomic(path, secrets.token_bytes(32), mode=0o600)
        self.key = Path(path).read_bytes()

    def sign(self, payload: dict) -> str:
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
        mac = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{body}.{mac}"

    def verify(self, token: str) -> dict:
        body, _, mac = token.partition(".")
        raw_body = body.encode("utf-8", "surrogateescape")
        expected = hmac.new(self.key, raw_body, hashlib.sha256).hexdigest()[:32].encode()
        if not mac or not hmac.compare_digest(mac.encode("utf-8", "surrogateescape"), expected):
            raise ApiError(404, "not_found", "Couldn't find that stream.")
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def base_url(request: Request) -> str:
    forwarded = request.headers.get("x-forwarded-proto")
    scheme = forwarded or request.url.scheme
    return f"{scheme}://{request.headers.get('host') or request.url.netloc}"


def output_url(request: Request, app: str, version: int) -> str:
    token = Signer(settings_of(request)).sign({"app": app, "v": version})
    return f"{base_url(request)}/streams/release-output/{token}"
