"""The Platform API v3 endpoints gitpaas serves: account, apps, releases, config vars, formation,
dynos. Thin: parse, check access, call the same services the CLI calls, answer in Heroku's shapes."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Optional, Union

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import Field, RootModel

from gitpaas import events, operations, stacks
from gitpaas.addons.store import AddonStore
from gitpaas.api.core import (
    JsonRoute,
    Strict,
    accounts_of,
    base_url,
    current_user,
    find_release,
    output_url,
    platform_of,
    release_in_background,
    visible_app,
)
from gitpaas.errors import BadRange, DamagedRecord, Forbidden, InvalidParams, NotFound, UsageError
from gitpaas.identity import Actor
from gitpaas.names import parse_number
from gitpaas.output import NullOutput
from gitpaas.platform import Platform
from gitpaas.release import Release
from gitpaas.shapes import (
    account_json,
    app_json,
    collaborator_json,
    domain_json,
    dyno_json,
    formation_json,
    release_json,
    stack_json,
)
from gitpaas.store.apps import App

router = APIRouter(route_class=JsonRoute)
User = Annotated[str, Depends(current_user)]
MAX_RANGE = 1000


def _app_payload(request: Request, platform: Platform, app) -> dict:
    current = operations.current_release(platform, app.name)
    return app_json(app, platform.settings, f"{base_url(request)}/{app.name}.git",
                    current.updated_at if current else None, operations.app_stacks(app, current))


def _release_payload(request: Request, app: App, user: str, release: Release) -> dict:
    """A release, its output at a URL signed for ``user`` — or null when it has no release phase,
    which is what clients (the Heroku CLI's rollback, retry and releases:output) expect."""
    has_output = bool(release.process_types.get("release"))
    return release_json(release, output_url(request, app, release.version, user) if has_output else None)


# --- account -----------------------------------------------------------------------------------

@router.get("/account")
def account(request: Request, user: User) -> dict:
    return account_json(accounts_of(request).get_user(user))


# --- apps --------------------------------------------------------------------------------------

class AppCreate(Strict):
    name: Optional[str] = Field(default=None, max_length=30)
    region: Optional[str] = Field(default=None, max_length=64)
    stack: Optional[str] = Field(default=None, max_length=64)
    feature_flags: Optional[list[str]] = None


@router.get("/users/{account}/apps")
def user_apps(request: Request, user: User, account: str) -> list[dict]:
    """The apps an account owns or collaborates on (``~`` = the caller's own)."""
    if account not in ("~", user):
        raise Forbidden("You can only list your own apps.")
    return apps_list(request, user)


@router.get("/apps")
def apps_list(request: Request, user: User) -> list[dict]:
    platform, actor = platform_of(request), Actor(user)
    return [_app_payload(request, platform, app) for app in platform.apps.list()
            if actor.may_use(app.owner, app.collaborators)]


@router.post("/apps", status_code=201)
def apps_create(request: Request, user: User, body: AppCreate | None = Body(default=None)) -> dict:
    platform = platform_of(request)
    name = (body.name if body else None) or f"app-{secrets.token_hex(3)}"
    stack = _stack_named(body.stack) if body and body.stack else None
    return _app_payload(request, platform, operations.create_app(platform, name, owner=user, stack=stack))


class AppUpdate(Strict):
    build_stack: Optional[str] = Field(default=None, max_length=64)
    maintenance: Optional[bool] = None
    name: Optional[str] = Field(default=None, max_length=30)


@router.patch("/apps/{app}")
def apps_update(request: Request, user: User, app: str, body: AppUpdate) -> dict:
    """Change an app: its build stack (what ``stack:set`` sends). Maintenance mode and renaming are
    not something gitpaas does."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    if body.maintenance:
        raise InvalidParams("Maintenance mode is not supported by gitpaas.")
    if body.name is not None and body.name != found.name:
        raise InvalidParams("Renaming an app is not supported by gitpaas.")
    if body.build_stack is not None:
        found = operations.set_stack(platform, found.name, _stack_named(body.build_stack))
    return _app_payload(request, platform, found)


def _stack_named(name: str) -> str:
    try:
        return stacks.get(name).name
    except UsageError:
        raise InvalidParams(f"Couldn't find that stack: {name[:64]!r} (gitpaas has {', '.join(stacks.STACKS)}).") \
            from None


# --- stacks ------------------------------------------------------------------------------------

@router.get("/stacks")
def stacks_list(request: Request, user: User) -> list[dict]:
    settings = platform_of(request).settings
    return [stack_json(stack, settings) for stack in stacks.STACKS.values()]


@router.get("/stacks/{stack}")
def stacks_info(request: Request, user: User, stack: str) -> dict:
    try:
        found = stacks.get(stack)
    except UsageError:
        raise NotFound("Couldn't find that stack.") from None
    return stack_json(found, platform_of(request).settings)


@router.get("/apps/{app}/available-stacks")
def available_stacks(request: Request, user: User, app: str) -> list[dict]:
    platform = platform_of(request)
    visible_app(platform, user, app)
    return [stack_json(stack, platform.settings) for stack in stacks.STACKS.values()]


@router.get("/apps/{app}")
def apps_info(request: Request, user: User, app: str) -> dict:
    platform = platform_of(request)
    return _app_payload(request, platform, visible_app(platform, user, app))


@router.delete("/apps/{app}")
def apps_delete(request: Request, user: User, app: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    if found.owner != user:
        raise Forbidden("Only the app's owner can destroy it.")
    payload = _app_payload(request, platform, found)
    operations.destroy_app(platform, found.name)
    return payload


# --- releases ----------------------------------------------------------------------------------

_RANGE = re.compile(r"^\s*(?P<field>\w+)\s*(?P<start>\]?[^.;\s]*)\s*\.\.\s*(?P<end>[^;\s]*\[?)\s*(?P<options>;.*)?$")


def parse_range(header: str | None) -> tuple[str, int | None, bool, int | None, bool, int, bool]:
    """``version ]12..; max=10, order=desc`` → (field, start, start_exclusive, end, end_exclusive, max, desc)."""
    if not header:
        return "version", None, False, None, False, 200, False
    match = _RANGE.match(header)
    if not match or match["field"] not in ("version", "id"):
        raise BadRange(f"Invalid Range header: {header[:80]!r} (use `version ..; max=N, order=asc|desc`).")
    options = dict(part.strip().split("=", 1) for part in (match["options"] or ";").strip(";").split(",")
                   if "=" in part)
    limit = parse_number(options.get("max", "200").strip())
    if limit is None:
        raise BadRange("Range max must be a number.")
    order = options.get("order", "asc")
    if order not in ("asc", "desc") or not 1 <= limit <= MAX_RANGE:
        raise BadRange(f"Range order must be asc or desc and max 1-{MAX_RANGE}.")

    def bound(text: str) -> tuple[int | None, bool]:
        exclusive = text.startswith("]") or text.endswith("[")
        text = text.strip("][")
        if not text:
            return None, exclusive
        number = parse_number(text)
        if number is None:
            raise BadRange("Range bounds must be release versions.")
        return number, exclusive
    start, start_ex = bound(match["start"])
    end, end_ex = bound(match["end"])
    return match["field"], start, start_ex, end, end_ex, limit, order == "desc"


@router.get("/apps/{app}/releases")
def releases_list(request: Request, response: Response, user: User, app: str) -> list[dict]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    _, start, start_ex, end, end_ex, limit, desc = parse_range(request.headers.get("range"))
    releases = platform.apps.releases(found.name)
    if desc and end is None and (start is None or start_ex):  # the common case, flat in history length
        page = releases.newest(limit + 1, below=start)
        if len(page) > limit:
            response.status_code = 206
            response.headers["Next-Range"] = f"version ]{page[limit - 1].version}..; max={limit}, order=desc"
        _warn_damaged(response, releases)
        return [_release_payload(request, found, user, r) for r in page[:limit]]
    versions = releases.versions()
    if desc:
        versions.reverse()

    def after_start(v: int) -> bool:
        if start is None:
            return True
        return (v < start if start_ex else v <= start) if desc else (v > start if start_ex else v >= start)

    def before_end(v: int) -> bool:
        if end is None:
            return True
        return (v > end if end_ex else v >= end) if desc else (v < end if end_ex else v <= end)
    chosen = [v for v in versions if after_start(v) and before_end(v)]
    page = chosen[:limit]
    if len(chosen) > limit:
        response.status_code = 206
        response.headers["Next-Range"] = f"version ]{page[-1]}..; max={limit}, order={'desc' if desc else 'asc'}"
    readable = []
    for version in page:
        try:
            readable.append(releases.get(version))
        except DamagedRecord as damaged:  # the others still answer; the header names it
            releases.skipped.append(damaged)
    _warn_damaged(response, releases)
    return [_release_payload(request, found, user, r) for r in readable]


def _warn_damaged(response: Response, releases) -> None:
    """Name the records a listing had to leave out (RFC 7234's Warning header; one per record)."""
    if releases.skipped:
        response.headers["Warning"] = ", ".join(
            f'199 gitpaas "{damaged.record} is damaged ({damaged.reason}) and left out"' for damaged in releases.skipped)


@router.get("/apps/{app}/releases/{release}")
def releases_info(request: Request, user: User, app: str, release: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return _release_payload(request, found, user, find_release(platform, found.name, release))


class ReleaseCreate(Strict):
    slug: Optional[str] = Field(default=None, max_length=64)
    release: Optional[str] = Field(default=None, max_length=64)
    description: Optional[str] = Field(default=None, max_length=500)


@router.post("/apps/{app}/releases", status_code=201)
def releases_create(request: Request, user: User, app: str, body: ReleaseCreate) -> dict:
    """``{"slug": id}`` creates a release of that slug; ``{"release": id}`` rolls back to a release."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    if (body.slug is None) == (body.release is None):
        raise InvalidParams("Send either slug (to create a release) or release (to roll back).")
    if body.release is not None:
        target = find_release(platform, found.name, body.release)

        def begin():
            pending = events.begin_rollback(platform, found.name, Actor(user), NullOutput(), target.version)
            return pending.release, pending
    else:
        def begin():
            pending = events.begin_slug_release(platform, found.name, Actor(user), NullOutput(), body.slug,
                                                body.description)
            return pending.release, pending
    return _release_payload(request, found, user, release_in_background(found.name, begin))


@router.get("/apps/{app}/releases/{release}/config-vars")
def release_config_vars(request: Request, user: User, app: str, release: str) -> dict[str, str]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return find_release(platform, found.name, release).config_vars


# --- config vars -------------------------------------------------------------------------------

class ConfigPatch(RootModel[dict[str, Optional[str]]]):
    pass


@router.get("/apps/{app}/config-vars")
def config_vars(request: Request, user: User, app: str) -> dict[str, str]:
    """The app's own config vars and its add-ons' (``DATABASE_URL``…), as the app's processes see them."""
    platform = platform_of(request)
    name = visible_app(platform, user, app).name
    return AddonStore(platform.settings).with_own(name, platform.apps.config(name).get())


@router.patch("/apps/{app}/config-vars")
def config_vars_update(request: Request, user: User, app: str, body: ConfigPatch) -> dict[str, str]:
    """Set (a string) or remove (``null``) keys; the release it creates continues in the background."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    changes = body.root
    if not changes:
        raise InvalidParams("Send at least one config var.")

    def begin():
        change = events.begin_config_change(
            platform, found.name, Actor(user), NullOutput(),
            set_values={k: v for k, v in changes.items() if v is not None},
            unset_keys=[k for k, v in changes.items() if v is None])
        return change.config, change.pending
    return release_in_background(found.name, begin)


# --- formation ---------------------------------------------------------------------------------

class FormationUpdate(Strict):
    #: a number, or (as the Heroku CLI sends it) a string: "2", or relative "+1" / "-1"
    quantity: Optional[Union[int, Annotated[str, Field(pattern=r"^[+-]?[0-9]{1,3}$")]]] = None
    size: Optional[str] = Field(default=None, max_length=32)

    def resolve(self, current: int) -> int | None:
        if self.quantity is None:
            return None
        if isinstance(self.quantity, str) and self.quantity[0] in "+-":
            return max(0, current + int(self.quantity))
        return int(self.quantity)


class FormationBatchItem(FormationUpdate):
    type: str = Field(max_length=30)


class FormationBatch(Strict):
    updates: list[FormationBatchItem] = Field(max_length=50)


def _formation(platform: Platform, app) -> list[dict]:
    """The formation's process types, plus ``release`` at quantity 0 when the release defines one
    (as Heroku lists it; clients use it to know an app has a release phase)."""
    current = operations.current_release(platform, app.name)
    commands = current.process_types if current else {}
    entries = [formation_json(app, t, q, commands.get(t)) for t, q in app.formation.items()]
    if commands.get("release"):
        entries.append(formation_json(app, "release", 0, commands["release"]))
    return entries


@router.get("/apps/{app}/formation")
def formation_list(request: Request, user: User, app: str) -> list[dict]:
    platform = platform_of(request)
    return _formation(platform, visible_app(platform, user, app))


@router.get("/apps/{app}/formation/{process_type}")
def formation_info(request: Request, user: User, app: str, process_type: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    for entry in _formation(platform, found):
        if entry["type"] == process_type:
            return entry
    raise NotFound(f"Couldn't find that formation ({process_type}).")


def _scale(platform: Platform, app, updates: dict[str, FormationUpdate]) -> list[dict]:
    """Quantities, then sizes (``heroku ps:scale`` sends the first, ``heroku ps:type`` the second)."""
    changes = {t: u.resolve(app.formation.get(t, 0)) for t, u in updates.items()}
    changes = {t: q for t, q in changes.items() if q is not None}
    resized = {t: u.size for t, u in updates.items() if u.size}
    if changes or resized:  # both or neither: a bad size changes no quantity
        operations.update_formation(platform, app.name, quantities=changes, sizes_wanted=resized)
    return _formation(platform, platform.apps.get(app.name))


@router.patch("/apps/{app}/formation")
def formation_batch_update(request: Request, user: User, app: str, body: FormationBatch) -> list[dict]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return _scale(platform, found, {u.type: u for u in body.updates})


@router.patch("/apps/{app}/formation/{process_type}")
def formation_update(request: Request, user: User, app: str, process_type: str, body: FormationUpdate) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    entries = _scale(platform, found, {process_type: body})
    for entry in entries:
        if entry["type"] == process_type:
            return entry
    raise NotFound(f"Couldn't find that formation ({process_type}).")


# --- dynos -------------------------------------------------------------------------------------

@router.get("/apps/{app}/dynos")
def dynos_list(request: Request, user: User, app: str) -> list[dict]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return [dyno_json(p, found.id) for p in operations.processes(platform, found.name)]


@router.get("/apps/{app}/dynos/{dyno}")
def dynos_info(request: Request, user: User, app: str, dyno: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    for process in operations.processes(platform, found.name):
        if dyno in (process.name, dyno_json(process, found.id)["id"]):
            return dyno_json(process, found.id)
    raise NotFound(f"Couldn't find that process ({dyno}).")


@router.delete("/apps/{app}/dynos", status_code=202)
def dynos_restart_all(request: Request, user: User, app: str) -> dict:
    platform = platform_of(request)
    operations.restart(platform, visible_app(platform, user, app).name)
    return {}


@router.delete("/apps/{app}/dynos/{dyno}", status_code=202)
def dynos_restart(request: Request, user: User, app: str, dyno: str) -> dict:
    platform = platform_of(request)
    operations.restart(platform, visible_app(platform, user, app).name, dyno)
    return {}


@router.delete("/apps/{app}/formations/{process_type}", status_code=202)
def formation_restart(request: Request, user: User, app: str, process_type: str) -> dict:
    platform = platform_of(request)
    operations.restart(platform, visible_app(platform, user, app).name, process_type)
    return {}


@router.post("/apps/{app}/formations/{process_type}/actions/stop", status_code=202)
def formation_stop(request: Request, user: User, app: str, process_type: str) -> dict:
    return dynos_stop(request, user, app, process_type)


@router.post("/apps/{app}/dynos/{dyno}/actions/stop", status_code=202)
def dynos_stop(request: Request, user: User, app: str, dyno: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    if dyno in found.formation and "." not in dyno:  # a type: stop (restart) each of its dynos
        for process in [p for p in operations.processes(platform, found.name) if p.type == dyno and not p.retiring]:
            operations.stop_process(platform, found.name, process.name)
    else:
        operations.stop_process(platform, found.name, dyno)
    return {}


# --- what gitpaas does not have ----------------------------------------------------------------

@router.get("/apps/{app}/collaborators")
def collaborators(request: Request, user: User, app: str) -> list[dict]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return [collaborator_json(found, email) for email in found.collaborators]


@router.get("/apps/{app}/pipeline-couplings")
def pipeline_couplings(request: Request, user: User, app: str) -> dict:
    platform = platform_of(request)
    visible_app(platform, user, app)
    raise NotFound("This app is not in a pipeline (gitpaas has none).")


@router.get("/apps/{app}/sni-endpoints")
@router.get("/apps/{app}/buildpack-installations")
def nothing_here(request: Request, user: User, app: str) -> list:
    platform = platform_of(request)
    visible_app(platform, user, app)
    return []


@router.get("/apps/{app}/domains")
def domains(request: Request, user: User, app: str) -> list[dict]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return [domain_json(found, host, default=index == 0)
            for index, host in enumerate(operations.app_hosts(platform, found.name))]

