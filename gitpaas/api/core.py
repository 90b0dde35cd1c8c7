"""What every API route shares: JSON errors in Heroku's shape, the acting account, the app it may
see, releases that finish in the background, and signed stream URLs.

Errors are GitpaasErrors like everywhere else; ``error_response`` is the one shape they take."""

from __future__ import annotations

import base64
import copy
import json
import logging
import queue
import threading
from typing import Any, Callable, Coroutine, TypeVar

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from starlette.types import Scope

from gitpaas.accounts import Accounts
from gitpaas.errors import GitpaasError, NotFound, ReleaseNotFound, Unauthorized
from gitpaas.identity import Actor
from gitpaas.names import is_app_name, is_uuid
from gitpaas.notify.event import hide_server_paths
from gitpaas.notify.store import Notifications
from gitpaas.operations import can_access
from gitpaas.output import FileOutput, NullOutput, Output, RecordingOutput
from gitpaas.pipeline import PendingRelease
from gitpaas.platform import Platform
from gitpaas.release import Release, parse_version
from gitpaas.settings import Settings
from gitpaas.shapes import release_json
from gitpaas.signing import release_output_path, release_story_path
from gitpaas.store.apps import App
from gitpaas.store.files import open_private

log = logging.getLogger("gitpaas.api")
T = TypeVar("T")


#: the request scope's mark, set by ``git_http`` once it checked the token and the access to the app,
#: that lets the body limit (``application.BodyLimit``) pass a push's body on, however large
BODY_ALLOWED = "gitpaas.body_allowed"


class Strict(BaseModel):
    """A request body with no field outside its own (an unknown one answers 422, as Heroku does)."""

    model_config = ConfigDict(extra="forbid")


def error_response(status: int, error_id: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # A message may quote what a client sent: lone surrogates from a JSON "\ud800" cannot be UTF-8.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"id": error_id, "message": message}, status_code=status, headers=headers or None)


def render(exc: GitpaasError) -> JSONResponse:
    """An expected failure as the API answers it: Heroku's ``{"id", "message"}`` with its status."""
    return error_response(exc.http_status, exc.error_id, exc.message, exc.http_headers)


class _UnicodeJsonRequest(Request):
    """A request whose JSON body is refused (422) if a string in it is not valid Unicode."""

    async def json(self) -> Any:
        value = await super().json()
        try:  # json.loads takes "\ud800"; nothing can store or print such a string
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise HTTPException(422, "The request body has a string that is not valid Unicode"
                                     " (a lone surrogate such as \\ud800).") from None
        return value


class JsonRoute(APIRoute):
    """A route whose JSON body must be valid Unicode throughout: every string in it may end up in a
    file, an environment or a message. (Raised as an HTTPException: FastAPI turns anything else
    raised while it reads a body into a 400.)"""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def unicode_only(request: Request) -> Response:
            return await handler(_UnicodeJsonRequest(request.scope, request.receive))
        return unicode_only


#: the Accept header's variant that asks for gitpaas's records instead of Heroku's shapes (the gitpaas
#: CLI on another machine sends it; Heroku names its own variants ``version=3.<name>`` too)
GITPAAS_VARIANT = "version=3.gitpaas"


def gitpaas_variant(request: Request) -> bool:
    return GITPAAS_VARIANT in request.headers.get("accept", "").replace(" ", "")


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


def token_user(scope: Scope) -> str | None:
    """The account behind the request's token; None when it has none, or a bad or revoked one."""
    request = Request(scope)
    token = bearer_token(request)
    return accounts_of(request).authenticate(token) if token else None


def unauthorized() -> Unauthorized:
    return Unauthorized("Invalid credentials provided: send `Authorization: Bearer <token>`"
                        " with a token from `gitpaas tokens:create`.")


def current_user(request: Request) -> str:
    """The account behind the request's token; 401 when it has none or a bad one."""
    email = token_user(request.scope)
    if email is None:
        raise unauthorized()
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


def release_in_background(app: str, begin: Callable[[Output], tuple[T, PendingRelease | None]]) -> T:
    """Run ``begin(output)`` — an event's first half: it takes the app's lock and records vN
    ``pending`` — in a thread of its own, answer with what it returned as soon as it did, and let the
    release phase and swap go on in that thread, as on Heroku. Its outcome is in the release's record;
    what the pipeline says meanwhile, in its story (``releases/vN/story.log``: the gitpaas CLI
    follows it from another machine).

    One thread takes the app's lock and lets it go: a request thread that took it could serve the
    next request for the same app while the release still holds it, and wait on itself.
    An error before the release exists is raised here, to the caller's request."""
    handoff: queue.Queue = queue.Queue(maxsize=1)

    def run() -> None:
        said = RecordingOutput()
        try:
            answer, pending = begin(said)
        except BaseException as exc:  # handed to the request, which renders it
            handoff.put((None, exc))
            return
        story = None
        if pending is not None:  # the answer is the record as it is now; the release goes on changing
            answer = copy.deepcopy(answer)
            story = _story(pending, said)
        handoff.put((answer, None))
        if pending is None:
            return
        try:
            pending.finish(story or NullOutput())
        except GitpaasError:
            pass  # expected failures are recorded in the release (status, failure reason)
        except Exception:
            log.exception("release v%s of %s failed unexpectedly", pending.release.version, app)
        finally:
            if story is not None:
                story.close()

    threading.Thread(target=run, name=f"gitpaas-release-{app}", daemon=True).start()
    answer, error = handoff.get()
    if error is not None:
        raise error
    return answer


def _story(pending: PendingRelease, said: RecordingOutput) -> FileOutput | None:
    """The release's story file, begun with what its first half said (None if it cannot be written:
    the release goes on without one)."""
    story = story_output(pending.platform, pending.release)
    if story is not None:
        for line in said.lines:
            story.stream.write(line + "\n")
        story.stream.flush()
    return story


def story_output(platform: Platform, release: Release) -> FileOutput | None:
    """Where a release the API started tells its story (``releases/vN/story.log``, streamed to the
    gitpaas CLI); None if it cannot be written: the release goes on without one."""
    try:
        path = platform.apps.releases(release.app["name"]).story_path(release.version)
        return FileOutput(open_private(path, "a"))
    except OSError:
        return None


#: how long a log session's URL may be opened; a tail, once open, stays open
LOG_SESSION_TTL = 3600


def stream_app(platform: Platform, claims: dict) -> App:
    """The app a verified stream URL names — if it is still that app (its id: not a new app that
    reuses the name) and the URL's audience may still see it: the account it was issued to may
    still use the app, or one of the webhooks it was sent to is still the app's. Otherwise 404."""
    not_found = NotFound("Couldn't find that stream.")
    name, user, webhooks = claims.get("app"), claims.get("user"), claims.get("webhooks")
    if not isinstance(name, str) or not is_app_name(name):
        raise not_found
    try:
        app = platform.apps.get(name)
        if app.id != claims.get("app_id"):
            raise not_found
        if isinstance(user, str):
            allowed = can_access(platform, Actor(user), name)
        elif isinstance(webhooks, list):
            allowed = bool(set(webhooks) & {hook.id for hook in Notifications.for_app(platform.settings, name).webhooks()})
        else:
            allowed = False
    except NotFound:  # gone, or going
        raise not_found from None
    if not allowed:
        raise not_found
    return app


def base_url(request: Request) -> str:
    forwarded = request.headers.get("x-forwarded-proto")
    scheme = forwarded or request.url.scheme
    return f"{scheme}://{request.headers.get('host') or request.url.netloc}"


def attach_host(request: Request) -> str:
    """The host a client reached the API by, for a rendezvous URL (an IPv6 address in brackets)."""
    host = request.url.hostname or "localhost"
    return f"[{host}]" if ":" in host else host


def output_url(request: Request, app: App, version: int, user: str) -> str:
    """A signed URL of release ``version``'s output, for ``user`` (see gitpaas.signing)."""
    return base_url(request) + release_output_path(settings_of(request), app.name, app.id, version, user=user)


def release_payload(request: Request, app: App, user: str, release: Release) -> dict:
    """A release, its output at a URL signed for ``user`` — or null when it has no release phase,
    which is what clients (the Heroku CLI's rollback, retry and releases:output) expect. gitpaas's
    variant is the whole record (failure, timings, config var names…), with that URL in it."""
    has_output = bool(release.process_types.get("release"))
    url = output_url(request, app, release.version, user) if has_output else None
    if gitpaas_variant(request):  # (no path of the server's home leaves it: a build log's, a failure's)
        story = base_url(request) + release_story_path(settings_of(request), app.name, app.id, release.version, user)
        return hide_server_paths({**release.to_dict(), "output_stream_url": url, "story_stream_url": story},
                                 settings_of(request).home)
    return release_json(release, url)
