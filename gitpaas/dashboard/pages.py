"""The dashboard's pages, served by ``gitpaas server`` under ``/dashboard/``: server-rendered HTML
(jinja2), a session cookie instead of a bearer token, a CSRF token in every form, and two
server-sent event streams for what changes while one looks (an app's timeline and processes, a
pending release's phases and output). Every action goes through the same events and operations as
the CLI and the API; this module only parses forms, checks the session and renders."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from importlib import resources
from typing import Annotated, Any, AsyncIterator, Callable, Literal
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from gitpaas import config as config_vars
from gitpaas import events, operations
from gitpaas.accounts import SESSION_TTL
from gitpaas.api.core import accounts_of, base_url, platform_of, release_in_background, visible_app
from gitpaas.dashboard import views
from gitpaas.formation import check_quantities
from gitpaas.errors import Forbidden, GitpaasError, InvalidParams, NotFound, UsageError
from gitpaas.identity import Actor
from gitpaas.names import parse_number
from gitpaas.notify.event import hide_server_paths
from gitpaas.release import PENDING, PHASES, parse_version
from gitpaas.store.files import read_from

PREFIX = "/dashboard"
#: the session's cookie and the login form's; over HTTPS with the ``__Host-`` prefix, which no other
#: host of the domain (an app, at APP.$GITPAAS_DOMAIN beside api.$GITPAAS_DOMAIN) can set or overwrite
COOKIE = "gitpaas_session"
LOGIN_COOKIE = "gitpaas_login"
#: how often a live page's stream looks at the records and processes again
LIVE_POLL = 0.4
#: how often it checks that the session and the access to the app still hold; a comment is sent as often
LIVE_RECHECK = 10.0
KEEPALIVE = 10.0
#: an app's processes are asked of the engine every this many polls
PROCESSES_EVERY = 5
#: the most of a release's output one poll sends
OUTPUT_CHUNK = 65536
#: the headers every page carries: no script or style from anywhere else, no framing, no caching
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
DONE = {
    "restarted": "Restarted: fresh processes replaced the old ones, with no downtime. No release: the slug "
                 "and the config did not change.",
    "scaled": "Scaled. No release: the formation (how many processes of each type) is not part of a release.",
    "config-saved": "Config saved. The app has no release yet: its first push runs with it.",
    "unchanged": "Nothing changed: the config vars already had those values, so no release was made.",
}

router = APIRouter(prefix=PREFIX, include_in_schema=False)
templates = jinja2.Environment(loader=jinja2.PackageLoader("gitpaas.dashboard", "templates"),
                               autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
templates.globals.update(PHASES=PHASES, PHASE_TEXT=views.PHASE_TEXT, KIND_TEXT=views.KIND_TEXT,
                         PREFIX=PREFIX)


def is_dashboard(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class LoginNeeded(Exception):
    """No live session: a page sends the browser to the login form, and back once logged in."""


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status, headers=HEADERS)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """An expected failure as the dashboard shows it: one sentence, no path of the server's."""
    message = hide_server_paths(message, platform_of(request).settings.home)
    return render("error.html", status=status, message=message, session=_session(request))


def to_login(request: Request) -> RedirectResponse:
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/login?next={quote(wanted)}", status_code=303, headers=HEADERS)


# --- the session ---------------------------------------------------------------------------------

def _https(request: Request) -> bool:
    return base_url(request).startswith("https://")


def cookie_name(request: Request, name: str) -> str:
    return f"__Host-{name}" if _https(request) else name


def _cookie(request: Request, name: str) -> str:
    """The cookie ``name`` (as ``cookie_name`` spells it here); "" when it is absent or sent twice
    (two of one name: one was planted by another host of the domain, and neither is trusted)."""
    wanted = cookie_name(request, name)
    sent = [part.split("=", 1) for part in request.headers.get("cookie", "").split(";") if "=" in part]
    values = [value.strip() for key, value in sent if key.strip() == wanted]
    return values[0] if len(values) == 1 else ""


def _session(request: Request) -> dict | None:
    secret = _cookie(request, COOKIE)
    return accounts_of(request).session(secret) if secret else None


def signed_in(request: Request) -> dict:
    session = _session(request)
    if session is None:
        raise LoginNeeded()
    return session


Session = Annotated[dict, Depends(signed_in)]


async def form_of(request: Request) -> dict[str, str]:
    """An HTML form's fields (application/x-www-form-urlencoded; the first value of each)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise InvalidParams("The dashboard takes HTML forms only (application/x-www-form-urlencoded).")
    try:
        fields = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidParams("The form is not valid UTF-8.") from None
    return {key: values[0] for key, values in fields.items()}


Form = Annotated[dict[str, str], Depends(form_of)]


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or origin == base_url(request)


def checked(request: Request, form: Form) -> dict:
    """The session of a form that changes something: its CSRF token must be the session's, and the
    browser must not say it came from another site."""
    session = signed_in(request)
    if not _same_origin(request) or not hmac.compare_digest(form.get("csrf", ""), session["csrf"]):
        raise refused()
    return session


def refused() -> Forbidden:
    return Forbidden("This form is out of date or came from another site: reload the page and try again.")


Changer = Annotated[dict, Depends(checked)]


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int,
                samesite: Literal["lax", "strict"] = "lax") -> None:
    """HttpOnly, SameSite; over HTTPS Secure and ``__Host-`` (which requires the path ``/``)."""
    https = _https(request)
    response.set_cookie(cookie_name(request, name), value, max_age=max_age, httponly=True, samesite=samesite,
                        secure=https, path="/" if https else PREFIX)


def _drop_cookie(request: Request, response: Response, name: str) -> None:
    https = _https(request)
    response.delete_cookie(cookie_name(request, name), path="/" if https else PREFIX, secure=https,
                           httponly=True, samesite="lax")


def _local(next_path: str | None) -> str:
    """Where to go after logging in: a dashboard page (with its query), never another site."""
    if next_path and is_dashboard(next_path.split("?", 1)[0]) and "//" not in next_path and "\\" not in next_path:
        return next_path
    return PREFIX + "/"


@router.get("/login")
def login_form(request: Request, next: str | None = None, bye: int = 0) -> HTMLResponse:
    nonce = secrets.token_urlsafe(24)
    response = render("login.html", nonce=nonce, next=_local(next), bye=bool(bye), session=None)
    _set_cookie(request, response, LOGIN_COOKIE, nonce, 3600, samesite="strict")
    return response


@router.post("/login")
def login(request: Request, form: Form) -> Response:
    """Log in with a gitpaas API token (and, if given, the e-mail it must belong to)."""
    nonce = _cookie(request, LOGIN_COOKIE)
    next_path = _local(form.get("next"))
    if not nonce or not hmac.compare_digest(form.get("nonce", ""), nonce) or not _same_origin(request):
        return render("login.html", status=403, nonce=nonce, next=next_path, session=None,
                      error="This login form is out of date or came from another site: reload it and try again.")
    accounts = accounts_of(request)
    token, email = form.get("token", "").strip(), form.get("email", "").strip().lower()
    user = accounts.authenticate(token) if token else None
    started = accounts.start_session(token) if user and email in ("", user) else None
    if started is None:
        return render("login.html", status=401, nonce=nonce, next=next_path, session=None, email=email,
                      error="That token is not valid (unknown, revoked, or not this e-mail's): create one "
                            "on the server with `gitpaas tokens:create --user EMAIL`.")
    secret, _ = started
    response = RedirectResponse(next_path, status_code=303, headers=HEADERS)
    _set_cookie(request, response, COOKIE, secret, SESSION_TTL)
    _drop_cookie(request, response, LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, session: Changer) -> Response:
    accounts_of(request).end_session(_cookie(request, COOKIE))
    response = RedirectResponse(f"{PREFIX}/login?bye=1", status_code=303, headers=HEADERS)
    _drop_cookie(request, response, COOKIE)
    return response


# --- pages ---------------------------------------------------------------------------------------

@router.get("/static/{name}")
def static(name: str) -> Response:
    types = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}
    if name not in types:
        raise NotFound("No such file.")
    body = resources.files("gitpaas.dashboard").joinpath("static", name).read_bytes()
    return Response(body, media_type=types[name], headers={**HEADERS, "Cache-Control": "max-age=300"})


@router.get("/")
def apps_page(request: Request, session: Session) -> HTMLResponse:
    platform = platform_of(request)
    return render("apps.html", session=session, apps=views.app_summaries(platform, Actor(session["user"])))


@router.get("/apps/{app}")
def app_page(request: Request, session: Session, app: str, below: str | None = None,
             done: str | None = None) -> HTMLResponse:
    platform = platform_of(request)
    return _app_page(platform, session, visible_app(platform, session["user"], app), below=below, done=done)


def _app_page(platform, session: dict, found, *, below: str | None = None, done: str | None = None,
              error: str | None = None, entered: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    """An app's page; with ``error``, an action's one-line refusal above it and the form's values
    kept in their fields."""
    older_than = parse_number(below) if below else None
    rows, more = views.timeline(platform, found.name, below=older_than)
    building = views.building(platform, found.name) if older_than is None else None
    return render("app.html", status=status, session=session, app=found, rows=rows, more=more,
                  paged=older_than is not None, building=building, done=DONE.get(done or ""), error=error,
                  entered=entered or {}, live=older_than is None, **views.formation(platform, found.name),
                  **views.app_page(platform, found.name))


@router.get("/apps/{app}/releases/{version}")
def release_page(request: Request, session: Session, app: str, version: str, created: int = 0) -> HTMLResponse:
    platform = platform_of(request)
    found = visible_app(platform, session["user"], app)
    release = views.shown(platform, _release(platform, found.name, version))
    store = platform.apps.releases(found.name)
    output, cut, offset = views.read_log(store.output_path(release.version))
    build_log, build_cut, _ = views.read_log(release.build_log)
    scale = views.total_seconds(release) or 1.0
    latest = store.latest()
    home = platform.settings.home
    return render("release.html", session=session, app=found, release=release, created=bool(created),
                  segments=views.segments(release, scale), total=views.total_seconds(release),
                  kind=views.release_kind(release), files=views.release_files(platform, release),
                  output=hide_server_paths(output, home), output_cut=cut, offset=offset,
                  build_log=hide_server_paths(build_log, home), build_cut=build_cut,
                  is_latest=latest is not None and latest.version == release.version,
                  rollback_refused=events.ineligibility(platform, release), live=release.status == PENDING)


@router.get("/apps/{app}/diff")
def diff_page(request: Request, session: Session, app: str, older: str = "", newer: str = "") -> HTMLResponse:
    """Two releases side by side: ``?older=3&newer=5`` (either order)."""
    platform = platform_of(request)
    found = visible_app(platform, session["user"], app)
    first, second = parse_version(older) if older else None, parse_version(newer) if newer else None
    if first is None or second is None:
        raise InvalidParams("Choose two releases to compare, by version (v3 and v5).")
    first, second = sorted((first, second))
    return render("diff.html", session=session, app=found, diff=views.diff(platform, found.name, first, second))


def _release(platform, app: str, version: str):
    number = parse_version(version)
    if number is None:
        raise NotFound(f"Couldn't find that release ({version[:20]}).")
    return platform.apps.releases(app).get(number)


# --- actions -------------------------------------------------------------------------------------

ACTIONS = ("rollback", "retry", "restart", "scale", "config-set", "config-unset")


def _confirmation(platform, app, action: str, form: dict[str, str]) -> tuple[str, str]:
    """What the action is about to do (the question, and why), once its input was checked the way
    the operation will check it: a refusal comes before the question, with nothing changed."""
    name = app.name
    if action == "rollback":
        version = parse_version(form.get("version", ""))
        if version is None:
            raise InvalidParams("Choose the release to roll back to.")
        refusal = events.ineligibility(platform, platform.apps.releases(name).get(version))
        if refusal:
            raise InvalidParams(refusal[0].upper() + refusal[1:] + ".")
        return (f"Roll {name} back to v{version}?",
                f"A new release will run v{version}'s slug with v{version}'s config vars. It goes through the "
                "release phase first; the processes swap to it only if that succeeds. " + views.KIND_TEXT["rollback"])
    if action == "retry":
        if platform.apps.releases(name).latest() is None:
            raise InvalidParams(f"{name} has no release to retry yet.")
        return (f"Retry {name}'s latest release?", views.KIND_TEXT["retry"])
    if action == "restart":
        target = form.get("target") or None
        if target is not None and target not in app.formation:
            raise InvalidParams(f"{name} has no process type {target!r}.")
        return (f"Restart {target or 'every process'} of {name}?",
                "Fresh processes of the same release replace the running ones, one after the other with no "
                "downtime. No release is made: nothing in the slug or the config changes.")
    if action == "scale":
        process_type, quantity = form.get("type", ""), parse_number(form.get("quantity", "").strip())
        if process_type not in app.formation:
            raise InvalidParams(f"{name} has no process type {process_type[:30]!r} "
                                f"(it has: {', '.join(app.formation) or 'none'}).")
        if quantity is None:
            raise InvalidParams("The number of processes must be a whole number (0 or more).")
        check_quantities({process_type: quantity})
        return (f"Scale {process_type} of {name} to {quantity}?",
                "Processes are started or stopped to match; the router follows. No release is made.")
    if action in ("config-set", "config-unset"):
        key = config_vars.validate_key(form.get("key", ""))
        if action == "config-set":
            config_vars.validate_value(key, form.get("value", ""))
            return (f"Set {key} on {name}?", views.KIND_TEXT["config"])
        if key not in platform.apps.config(name).get():
            raise InvalidParams(f"{name} has no config var {key}.")
        return (f"Remove {key} from {name}?", views.KIND_TEXT["config"])
    raise AssertionError(action)


@router.post("/apps/{app}/actions/{action}")
def act(request: Request, session: Changer, form: Form, app: str, action: str) -> Response:
    """An action a team member takes: its input checked, then shown with what it will do, done once
    confirmed; a release it made is shown next (pending, then live as it finishes)."""
    platform = platform_of(request)
    found = visible_app(platform, session["user"], app)
    if action not in ACTIONS:
        raise NotFound("There is no such action.")
    try:
        question, why = _confirmation(platform, found, action, form)
    except (UsageError, NotFound) as refusal:  # (a release that does not exist, for one)
        entered = {key: value for key, value in form.items() if key != "csrf"}
        return _app_page(platform, session, found, error=refusal.message, entered={"action": action, **entered},
                         status=refusal.http_status)
    if form.get("confirmed") != "yes":
        fields = {key: value for key, value in form.items() if key not in ("csrf", "confirmed")}
        return render("confirm.html", session=session, app=found, action=action, question=question, why=why,
                      fields=fields)
    actor, name = Actor(session["user"]), found.name
    if action == "restart":
        operations.restart(platform, name, form.get("target") or None)
        return _to_app(name, "restarted")
    if action == "scale":
        operations.update_formation(platform, name, quantities={form["type"]: int(form["quantity"].strip())})
        return _to_app(name, "scaled")

    def begin(said):
        if action == "rollback":
            pending = events.begin_rollback(platform, name, actor, said, parse_version(form["version"]))
        elif action == "retry":
            pending = events.begin_retry(platform, name, actor, said)
        else:
            key = form["key"]
            if action == "config-set":
                change = events.begin_config_change(platform, name, actor, said, set_values={key: form.get("value", "")})
            else:
                change = events.begin_config_change(platform, name, actor, said, unset_keys=[key])
            if change.pending is None:
                return ("config-saved" if change.changed else "unchanged"), None
            pending = change.pending
        return pending.release.version, pending
    made = release_in_background(name, begin)
    if isinstance(made, str):
        return _to_app(name, made)
    return RedirectResponse(f"{PREFIX}/apps/{name}/releases/v{made}?created=1", status_code=303, headers=HEADERS)


def _to_app(name: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/apps/{name}?done={done}", status_code=303, headers=HEADERS)


# --- what changes while one looks (server-sent events) -------------------------------------------

def _event(name: str, data: str, event_id: str | None = None) -> bytes:
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    head = f"event: {name}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return (head + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


#: what a live page's ``frames`` returns each time: events to send when they changed (``output``:
#: whenever it has data, with the byte offset it reached as the event's id), or None when nothing
#: more will change
Frame = tuple[str, str, "str | None"]


def _live(request: Request, session: dict, name: str,
          frames: Callable[[int], list[Frame] | None]) -> StreamingResponse:
    """A stream of ``frames(tick)`` (called in a thread every LIVE_POLL, ``tick`` counting up), each
    event sent when it differs from the last one of its name. It ends when the client goes, when
    the session or the access to the app ends, or when ``frames`` says nothing more will change —
    with an ``end`` event then, so the browser does not come back for more."""
    platform = platform_of(request)
    accounts = accounts_of(request)
    secret = _cookie(request, COOKIE)

    def still_allowed() -> bool:
        try:
            return accounts.session(secret) is not None and visible_app(platform, session["user"], name) is not None
        except NotFound:
            return False

    async def stream() -> AsyncIterator[bytes]:
        sent: dict[str, str] = {}
        recheck_at = quiet_until = time.monotonic() + LIVE_RECHECK
        tick = 0
        while not await request.is_disconnected():
            if time.monotonic() >= recheck_at:
                recheck_at = time.monotonic() + LIVE_RECHECK
                if not await asyncio.to_thread(still_allowed):
                    return
            try:
                found = await asyncio.to_thread(frames, tick)
            except (GitpaasError, OSError):  # the app or the release is gone, or its record unreadable
                found = None
            if found is None:
                yield _event("end", "gone")
                return
            for event, data, event_id in found:
                if event == "output":
                    if data:
                        yield _event(event, data, event_id)
                elif sent.get(event) != data:
                    yield _event(event, data, event_id)
                    sent[event] = data
            if any(event == "end" for event, _, _ in found):
                return
            if time.monotonic() >= quiet_until:  # (proxies and browsers give up on a silent stream)
                quiet_until = time.monotonic() + KEEPALIVE
                yield b": keepalive\n\n"
            tick += 1
            await asyncio.sleep(LIVE_POLL)
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/apps/{app}/live")
def app_live(request: Request, app: str) -> StreamingResponse:
    """The app page's timeline (each LIVE_POLL) and processes (each PROCESSES_EVERY polls: they are
    the engine's, and asking it costs more), re-rendered and sent whenever they change."""
    session = signed_in(request)
    platform = platform_of(request)
    name = visible_app(platform, session["user"], app).name

    def frames(tick: int) -> list[Frame]:
        rows, more = views.timeline(platform, name)
        found = platform.apps.get(name)
        timeline = templates.get_template("_timeline.html").render(app=found, rows=rows, more=more,
                                                                   building=views.building(platform, name))
        sent = [("timeline", timeline, None)]
        if tick % PROCESSES_EVERY == 0:
            processes = templates.get_template("_processes.html").render(app=found, **views.formation(platform, name))
            sent.append(("processes", processes, None))
        return sent
    return _live(request, session, name, frames)


@router.get("/apps/{app}/releases/{version}/live")
def release_live(request: Request, app: str, version: str, offset: int = 0) -> StreamingResponse:
    """A pending release's phases as they complete, and its output as it comes (from ``offset``, or
    from the last output event's id when the browser reconnects); ``end`` when it is done."""
    session = signed_in(request)
    platform = platform_of(request)
    name = visible_app(platform, session["user"], app).name
    number = _release(platform, name, version).version  # (404 before any stream: nothing to come back for)
    resumed = parse_number(request.headers.get("last-event-id", "").strip())
    position = {"offset": resumed if resumed is not None else max(0, offset)}
    store = platform.apps.releases(name)

    def frames(tick: int) -> list[Frame]:
        release = views.shown(platform, store.get(number))  # before the output: no line after the end is lost
        data = read_from(store.output_path(number), position["offset"], OUTPUT_CHUNK)
        cut = data.rfind(b"\n") + 1 if release.status == PENDING else len(data)  # whole lines while it runs
        position["offset"] += cut
        text = hide_server_paths(data[:cut].decode("utf-8", "replace"), platform.settings.home)
        scale = views.total_seconds(release) or 1.0
        phases = templates.get_template("_phases.html").render(
            release=release, segments=views.segments(release, scale), total=views.total_seconds(release))
        status = templates.get_template("_status.html").render(release=release)
        found: list[Frame] = [("output", text, str(position["offset"])), ("phases", phases, None),
                              ("status", status, None)]
        more_to_read = len(data) == OUTPUT_CHUNK
        return found + ([("end", release.status, None)] if release.status != PENDING and not more_to_read else [])
    return _live(request, session, name, frames)


def install(api) -> None:
    """Serve the dashboard from ``api`` (the Platform API's FastAPI app): its pages, and ``/`` sends
    a browser to it."""
    api.include_router(router)

    @api.exception_handler(LoginNeeded)
    async def login_needed(request: Request, exc: LoginNeeded):
        if request.method == "GET" and not request.url.path.endswith("/live"):
            return to_login(request)
        return await run_in_threadpool(error_page, request, 401, "Your session has ended: log in again.")

    @api.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)


__all__ = ["install", "is_dashboard", "error_page"]
