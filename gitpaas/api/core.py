"""What every API route shares: JSON errors in Heroku's shape, the acting account, the app it may
see, releases that finish in the background, and signed stream URLs.

Errors are GitpaasErrors like everywhere else; ``error_response`` is the one shape they take."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
from pathlib import Path

from fastapi import Request
from fastapi.responses import JSONResponse

from gitpaas.accounts import Accounts
from gitpaas.errors import GitpaasError, NotFound, ReleaseNotFound, Unauthorized
from gitpaas.identity import Actor
from gitpaas.names import is_app_name, is_uuid
from gitpaas.operations import can_access
from gitpaas.output import NullOutput
from gitpaas.pipeline import PendingRelease
from gitpaas.platform import Platform
from gitpaas.release import Release, parse_version
from gitpaas.settings import Settings
from gitpaas.store.apps import App
from gitpaas.store.files import write_atomic

log = logging.getLogger("gitpaas.api")


def error_response(status: int, error_id: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"id": error_id, "message": message}, status_code=status, headers=headers or None)


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def platform_of(request: Request) -> Platform:
    return Platform(settings_of(request))


def accounts_of(request: Request) -> Accounts:
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
        raise Unauthorized("Invalid credentials provided: send `Authorization: Bearer <token>`"
                           " with a token from `gitpaas tokens:create`.")
    return email


def visible_app(platform: Platform, user: str, identity: str) -> App:
    """The app named (or with the id) ``identity`` if ``user`` may use it; otherwise the same 404
    whether it does not exist or is someone else's, so nothing about it leaks."""
    not_found = NotFound("Couldn't find that app.")
    if is_uuid(identity):
        app = next((app for app in platform.apps.list() if app.id == identity), None)
    elif is_app_name(identity) and platform.apps.exists(identity):
        app = platform.apps.get(identity)
    else:
        app = None
    if app is None or not can_access(platform, Actor(user), app.name):
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


def finish_in_background(pending: PendingRelease) -> Release:
    """Let ``pending``'s release phase and swap go on in the server, as on Heroku, and answer now
    with the release as recorded (``pending``). Its outcome is in its record and output."""
    answer = Release.from_dict(pending.release.to_dict())  # the thread goes on changing the original

    def run() -> None:
        try:
            pending.finish(NullOutput())
        except GitpaasError:
            pass  # expected failures are recorded in the release (status, failure reason)
        except Exception:
            log.exception("release v%s of %s failed unexpectedly", pending.release.version, pending.lock.app)

    try:
        threading.Thread(target=run, name=f"gitpaas-release-{pending.lock.app}", daemon=True).start()
    except BaseException as exc:  # no thread to run it: it must not hold the app's lock forever
        pending.abandon(f"could not be started: {exc}")
        raise
    return answer


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
            raise NotFound("Couldn't find that stream.")
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def base_url(request: Request) -> str:
    forwarded = request.headers.get("x-forwarded-proto")
    scheme = forwarded or request.url.scheme
    return f"{scheme}://{request.headers.get('host') or request.url.netloc}"


def output_url(request: Request, app: str, version: int) -> str:
    token = Signer(settings_of(request)).sign({"app": app, "v": version})
    return f"{base_url(request)}/streams/release-output/{token}"
