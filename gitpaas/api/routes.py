"""The Platform API v3 endpoints gitpaas serves: account, apps, releases, config vars, formation,
dynos. Thin: parse, check access, call the same services the CLI calls, answer in Heroku's shapes."""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict
from typing import Annotated, Literal, Optional, Union

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import Field, RootModel

from gitpaas import appview, events, operations, reviewapps, stacks
from gitpaas.addons.store import AddonStore
from gitpaas.api.core import (
    JsonRoute,
    attach_host,
    release_payload,
    gitpaas_variant,
    Strict,
    accounts_of,
    base_url,
    current_user,
    find_release,
    platform_of,
    release_in_background,
    visible_app,
)
from gitpaas.errors import (
    BadRange,
    DamagedRecord,
    EnvironmentProblem,
    Forbidden,
    InvalidParams,
    NotFound,
    UsageError,
)
from gitpaas.identity import Actor
from gitpaas.names import parse_number
from gitpaas.platform import Platform
from gitpaas.shapes import (
    account_json,
    app_json,
    collaborator_json,
    domain_json,
    dyno_json,
    formation_json,
    stack_json,
)
from gitpaas.store.apps import App

router = APIRouter(route_class=JsonRoute)
User = Annotated[str, Depends(current_user)]
MAX_RANGE = 1000


def _app_payload(request: Request, platform: Platform, app) -> dict:
    if gitpaas_variant(request):
        return _app_record(request, platform, app.name)
    current = appview.current_release(platform, app.name)
    return app_json(app, platform.settings, f"{base_url(request)}/{app.name}.git",
                    current.updated_at if current else None, appview.app_stacks(app, current))


def _app_record(request: Request, platform: Platform, name: str) -> dict:
    """gitpaas's own view of an app (``apps:info --json``), with the server's URLs in it and no path."""
    info = appview.app_info(platform, name)
    info["git_url"] = f"{base_url(request)}/{name}.git"
    if info["postdeploy"]:
        info["postdeploy"] = {**info["postdeploy"], "log": f"releases/v{info['postdeploy']['release']}/postdeploy.log"}
    return info


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


@router.get("/users/{account}")
def user_info(request: Request, user: User, account: str) -> dict:
    """The caller's own account (``~``, its e-mail or its id); nobody else's."""
    found = accounts_of(request).get_user(user)
    if account not in ("~", user, found["id"]):
        raise NotFound("Couldn't find that user.")
    return account_json(found)


@router.get("/users/{account}/apps")
def user_apps(request: Request, user: User, account: str) -> list[dict]:
    """The apps an account owns or collaborates on (``~`` = the caller's own)."""
    if account not in ("~", user):
        raise Forbidden("You can only list your own apps.")
    return apps_list(request, user)


@router.get("/apps")
def apps_list(request: Request, user: User) -> list[dict]:
    platform, actor = platform_of(request), Actor(user)
    return [_app_payload(request, platform, app) for app in operations.visible_apps(platform, actor)]


@router.post("/apps", status_code=201)
def apps_create(request: Request, user: User, body: AppCreate | None = Body(default=None)) -> dict:
    platform = platform_of(request)
    name = (body.name if body else None) or f"app-{secrets.token_hex(3)}"
    stack = _stack_named(body.stack) if body and body.stack else None
    return _app_payload(request, platform, operations.create_app(platform, name, owner=user, stack=stack))


RENAME_REFUSED = ("gitpaas cannot rename an app: its name is in its containers, slug images, network and "
                  "add-on volumes on the engine, which cannot be renamed in place. Create an app with the new "
                  "name, push to it and move its config (config --shell), then destroy the old one.")


class AppUpdate(Strict):
    build_stack: Optional[str] = Field(default=None, max_length=64)
    maintenance: Optional[bool] = None
    name: Optional[str] = Field(default=None, max_length=30)
    #: gitpaas's: keep the slugs of the newest N releases, or "all" (``releases:retention``)
    retention: Optional[Union[Annotated[int, Field(ge=1, le=1_000_000)], Literal["all"]]] = None


@router.patch("/apps/{app}")
def apps_update(request: Request, user: User, app: str, body: AppUpdate) -> dict:
    """Change an app: its build stack (``stack:set``), maintenance mode (``maintenance:on``), its slug
    retention (gitpaas's). Renaming is refused, with why."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    if body.name is not None and body.name != found.name:
        raise InvalidParams(RENAME_REFUSED)
    if body.maintenance is not None:
        operations.set_maintenance(platform, found.name, body.maintenance)
        found = platform.apps.get(found.name)
    if body.build_stack is not None:
        found = operations.set_stack(platform, found.name, _stack_named(body.build_stack))
    pruned = None
    if body.retention is not None:
        pruned = operations.set_retention(platform, found.name, None if body.retention == "all" else body.retention)
        found = platform.apps.get(found.name)
    payload = _app_payload(request, platform, found)
    return {**payload, "pruned": pruned} if pruned is not None and gitpaas_variant(request) else payload


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
    kept = reviewapps.destroy_with_review_apps(platform, found.name)
    if gitpaas_variant(request):
        payload["kept_backups"] = [{"id": backup.id, "addon": backup.addon} for backup in kept]
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
        return [release_payload(request, found, user, r) for r in page[:limit]]
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
    return [release_payload(request, found, user, r) for r in readable]


def _warn_damaged(response: Response, releases) -> None:
    """Name the records a listing had to leave out (RFC 7234's Warning header; one per record)."""
    if releases.skipped:
        response.headers["Warning"] = ", ".join(
            f'199 gitpaas "{damaged.record} is damaged ({damaged.reason}) and left out"' for damaged in releases.skipped)


@router.get("/apps/{app}/slugs/{slug}")
def slugs_info(request: Request, user: User, app: str, slug: str) -> dict:
    """A slug one of the app's releases ran (its commit is what ``pipelines:diff`` compares); the
    image itself stays on the server: no blob to download."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    release = next((r for r in platform.apps.releases(found.name).walk_down() if (r.slug or {}).get("id") == slug), None)
    if release is None:
        raise NotFound("Couldn't find that slug.")
    stack = stacks.of_record(release.stack)
    return {"blob": {"method": "get", "url": ""}, "buildpack_provided_description": None, "checksum": None,
            "commit": release.commit, "commit_description": None, "created_at": release.created_at,
            "deleted_at": None, "id": slug, "process_types": {k: v or "" for k, v in release.process_types.items()},
            "size": None, "stack": {"id": stack_json(stack, platform.settings)["id"], "name": stack.name},
            "updated_at": release.updated_at}


@router.get("/apps/{app}/releases/{release}")
def releases_info(request: Request, user: User, app: str, release: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return release_payload(request, found, user, find_release(platform, found.name, release))


class ReleaseCreate(Strict):
    slug: Optional[str] = Field(default=None, max_length=64)
    #: a release's id or version to roll back to; gitpaas also takes "previous" (the one before the current)
    release: Optional[str] = Field(default=None, max_length=64)
    description: Optional[str] = Field(default=None, max_length=500)
    #: gitpaas's: run the latest release's release phase again, as a new release (``releases:retry``)
    retry: Optional[bool] = None


@router.post("/apps/{app}/releases", status_code=201)
def releases_create(request: Request, user: User, app: str, body: ReleaseCreate) -> dict:
    """``{"slug": id}`` creates a release of that slug; ``{"release": id}`` rolls back to a release."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    if [body.slug is not None, body.release is not None, bool(body.retry)].count(True) != 1:
        raise InvalidParams("Send either slug (to create a release), release (to roll back) or retry.")
    if body.retry:
        def begin(said):
            pending = events.begin_retry(platform, found.name, Actor(user), said)
            return pending.release, pending
    elif body.release is not None:
        version = None if body.release == "previous" else find_release(platform, found.name, body.release).version

        def begin(said):
            pending = events.begin_rollback(platform, found.name, Actor(user), said, version)
            return pending.release, pending
    else:
        def begin(said):
            pending = events.begin_slug_release(platform, found.name, Actor(user), said, body.slug,
                                                body.description)
            return pending.release, pending
    return release_payload(request, found, user, release_in_background(found.name, begin))


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
def config_vars_update(request: Request, user: User, app: str, body: ConfigPatch) -> dict:
    """Set (a string) or remove (``null``) keys; the release it creates continues in the background."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    changes = body.root
    if not changes:
        raise InvalidParams("Send at least one config var.")

    def begin(said):
        change = events.begin_config_change(
            platform, found.name, Actor(user), said,
            set_values={k: v for k, v in changes.items() if v is not None},
            unset_keys=[k for k, v in changes.items() if v is None])
        if gitpaas_variant(request):  # what changed, and the release it made (to follow)
            release = change.pending.release if change.pending else None
            return {"config": change.config, "changed": change.changed,
                    "release": release_payload(request, found, user, release) if release else None}, change.pending
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
    current = appview.current_release(platform, app.name)
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
    if gitpaas_variant(request):  # the scheduler's records: restarts, crash reasons, sizes by name
        return [asdict(p) for p in operations.processes(platform, found.name)]
    return [dyno_json(p, found.id) for p in operations.processes(platform, found.name)]


class DynoCreate(Strict):
    command: str = Field(min_length=1, max_length=20000)
    attach: Optional[bool] = None
    #: the Heroku CLI sends numbers too (COLUMNS, LINES) and leaves out what it does not know
    env: Optional[dict[str, Union[str, int, float, bool, None]]] = Field(default=None, max_length=200)
    force_no_tty: Optional[bool] = None
    size: Optional[str] = Field(default=None, max_length=32)
    type: Optional[str] = Field(default=None, max_length=30)
    time_to_live: Optional[int] = None


@router.post("/apps/{app}/dynos", status_code=201)
def dynos_create(request: Request, user: User, app: str, body: DynoCreate) -> dict:
    """A one-off dyno (``heroku run``): attached, its ``attach_url`` is where the client meets it
    (gitpaas.api.rendezvous); detached, it runs at once with its output in the app's logs."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    if body.type not in (None, "run"):
        raise InvalidParams(f"gitpaas runs one-off dynos of type run, not {body.type[:30]!r}")
    attach = bool(body.attach)
    rendezvous = getattr(request.app.state, "rendezvous", None)
    if attach and rendezvous is None:
        raise EnvironmentProblem("this server has no rendezvous for attached one-off dynos: run:detached works")
    env = {key: str(value).lower() if isinstance(value, bool) else str(value)
           for key, value in (body.env or {}).items() if value is not None}
    name, session = operations.start_run(platform, found.name, body.command, size=body.size, env=env,
                                         tty=attach and not body.force_no_tty, attach=attach)
    if session is not None:
        secret = rendezvous.register(session, found.name)  # (from here, one nobody attaches to expires)
    process = next((p for p in operations.processes(platform, found.name) if p.name == name), None)
    payload = dyno_json(process, found.id) if process else {"name": name, "state": "starting", "type": "run"}
    if session is not None:
        payload["attach_url"] = f"rendezvous://{attach_host(request)}:{rendezvous.port}/{secret}"
        if gitpaas_variant(request):
            payload["rendezvous_fingerprint"] = rendezvous.fingerprint
    return payload


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
    return _restart(request, user, app, None)


@router.delete("/apps/{app}/dynos/{dyno}", status_code=202)
def dynos_restart(request: Request, user: User, app: str, dyno: str) -> dict:
    return _restart(request, user, app, dyno)


@router.delete("/apps/{app}/formations/{process_type}", status_code=202)
def formation_restart(request: Request, user: User, app: str, process_type: str) -> dict:
    return _restart(request, user, app, process_type)


def _restart(request: Request, user: str, app: str, target: str | None) -> dict:
    platform = platform_of(request)
    names = operations.restart(platform, visible_app(platform, user, app).name, target)
    return {"restarted": names} if gitpaas_variant(request) else {}


@router.post("/apps/{app}/formations/{process_type}/actions/stop", status_code=202)
def formation_stop(request: Request, user: User, app: str, process_type: str) -> dict:
    return dynos_stop(request, user, app, process_type)


@router.post("/apps/{app}/dynos/{dyno}/actions/stop", status_code=202)
def dynos_stop(request: Request, user: User, app: str, dyno: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    outcome = "restarted"
    if dyno in found.formation and "." not in dyno:  # a type: stop (restart) each of its dynos
        for process in [p for p in operations.processes(platform, found.name) if p.type == dyno and not p.retiring]:
            operations.stop_process(platform, found.name, process.name)
    else:
        outcome = operations.stop_process(platform, found.name, dyno)
    return {"outcome": outcome} if gitpaas_variant(request) else {}


# --- what gitpaas does not have ----------------------------------------------------------------

@router.get("/apps/{app}/collaborators")
def collaborators(request: Request, user: User, app: str) -> list[dict]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return [collaborator_json(found, email) for email in found.collaborators]


class CollaboratorCreate(Strict):
    user: str = Field(max_length=254)
    silent: Optional[bool] = None
    permissions: Optional[list[str]] = None


@router.post("/apps/{app}/collaborators", status_code=201)
def collaborators_add(request: Request, user: User, app: str, body: CollaboratorCreate) -> dict:
    """Let another account use the app (its owner or a collaborator may)."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    account = accounts_of(request).get_user(body.user)
    operations.add_collaborator(platform, found.name, account["email"])
    return collaborator_json(platform.apps.get(found.name), account["email"])


@router.delete("/apps/{app}/collaborators/{collaborator}")
def collaborators_remove(request: Request, user: User, app: str, collaborator: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    email = next((c for c in found.collaborators if collaborator in (c, collaborator_json(found, c)["id"])),
                 collaborator)
    removed = operations.remove_collaborator(platform, found.name, email)
    return collaborator_json(found, removed)


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
    hosts = operations.app_hosts(platform, found.name)
    return [domain_json(found, host, default=index == 0, target=hosts[0]) for index, host in enumerate(hosts)]


def _domain(platform: Platform, found: App, identity: str) -> dict:
    hosts = operations.app_hosts(platform, found.name)
    for index, host in enumerate(hosts):
        entry = domain_json(found, host, default=index == 0, target=hosts[0])
        if identity in (host, entry["id"]):
            return entry
    raise NotFound(f"Couldn't find that domain ({identity[:253]}).")


@router.get("/apps/{app}/domains/{domain}")
def domains_info(request: Request, user: User, app: str, domain: str) -> dict:
    platform = platform_of(request)
    return _domain(platform, visible_app(platform, user, app), domain)


class DomainCreate(Strict):
    hostname: str = Field(max_length=253)
    sni_endpoint: Optional[str] = Field(default=None, max_length=64)


@router.post("/apps/{app}/domains", status_code=201)
def domains_add(request: Request, user: User, app: str, body: DomainCreate) -> dict:
    """Route a custom host name to the app; the router serves it at once (no DNS target to wait for)."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    hosts = operations.add_domain(platform, found.name, body.hostname)
    return domain_json(platform.apps.get(found.name), hosts[-1], default=False, target=hosts[0])


@router.delete("/apps/{app}/domains/{domain}")
def domains_remove(request: Request, user: User, app: str, domain: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    entry = _domain(platform, found, domain)
    if entry["kind"] != "custom":
        raise InvalidParams(f"{entry['hostname']} is the app's own host name: it cannot be removed")
    operations.remove_domain(platform, found.name, entry["hostname"])
    return entry

