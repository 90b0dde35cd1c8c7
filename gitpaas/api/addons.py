"""The Platform API's add-ons: ``add-on`` and ``add-on-attachment`` (list, info, create, delete,
resolve), as the official Heroku CLI calls them for ``addons``, ``addons:create``, ``addons:info``
and ``addons:destroy``. Thin: find what the caller may see, call ``gitpaas.addons.lifecycle``,
answer in Heroku's shapes.

Every gitpaas add-on has exactly one attachment, to the app that owns it, so an attachment is a
view of its add-on (its id is derived from the add-on's). Creating and destroying make a release
("Attach DATABASE (…)", "Detach DATABASE (…)") that finishes in the background, like a config
change: the answer comes once the add-on accepts connections, or once it and its data are gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal, Optional, Union

from fastapi import APIRouter, Body, Depends, Request
from pydantic import Field

from gitpaas.addons import lifecycle
from gitpaas.addons.plans import SERVICES, Service, parse_plan
from gitpaas.addons.plans import POSTGRESQL
from gitpaas.addons.store import Addon, AddonNotFound, AddonStore, BackupStore, cli_record
from gitpaas.api.core import (
    JsonRoute,
    attach_host,
    Strict,
    current_user,
    gitpaas_variant,
    platform_of,
    release_in_background,
    release_payload,
    settings_of,
    visible_app,
)
from gitpaas import operations
from gitpaas.errors import EnvironmentProblem, InvalidParams, NotFound, UsageError
from gitpaas.identity import Actor
from gitpaas.names import is_uuid
from gitpaas.operations import can_access
from gitpaas.platform import Platform
from gitpaas.release import Release
from gitpaas.shapes import GENERATION, derived_id
from gitpaas.store.apps import App

router = APIRouter(route_class=JsonRoute)
User = Annotated[str, Depends(current_user)]

#: what Heroku calls the services in its dashboards (``human_name``)
HUMAN_NAMES = {"postgresql": "PostgreSQL", "redis": "Redis"}
#: nothing gitpaas provisions is billed: the price of every plan, and what each add-on is billed
FREE = {"cents": 0, "contract": False, "unit": "month"}


class UnknownAddon(NotFound):
    """Heroku's 404 for an add-on or attachment that does not exist — or is on an app the caller may
    not use: the same answer for both. Its body names the ``resource``, as Heroku's does; the
    Heroku CLI reads it to look a name it did not find on one app up across every app."""

    def __init__(self, resource: str = "add_on") -> None:
        super().__init__(f"Couldn't find that {resource.replace('_', ' ')}.")
        self.resource = resource


ATTACHMENT = "add_on attachment"


# --- shapes --------------------------------------------------------------------------------------

def service_ref(service: Service) -> dict:
    return {"id": derived_id("addon-service", service.name), "name": service.heroku_name}


def plan_ref(service: Service) -> dict:
    return {"id": derived_id("plan", service.plan_name), "name": service.plan_name}


def service_json(service: Service, since: str) -> dict:
    """An ``add-on-service``. gitpaas keeps no record of its services and plans (they are part of
    its code): an add-on's own times stand in for theirs."""
    return {**service_ref(service), "cli_plugin_name": None, "created_at": since,
            "human_name": HUMAN_NAMES.get(service.name, service.name), "state": "ga",
            "supports_multiple_installations": True, "supports_sharing": False, "updated_at": since,
            "supported_generations": [GENERATION]}


def plan_json(service: Service, since: str) -> dict:
    """A ``plan``: the one each service has, ``local``, free."""
    return {**plan_ref(service), "addon_service": service_ref(service), "compliance": None, "created_at": since,
            "default": True, "description": f"{HUMAN_NAMES.get(service.name, service.name)} on this server",
            "human_name": "Local", "installable_inside_private_network": False,
            "installable_outside_private_network": True, "price": dict(FREE), "space_default": False,
            "state": "public", "updated_at": since, "visible": True}


def addon_json(addon: Addon, expand: frozenset[str] = frozenset(), *, state: str | None = None,
               provision_message: str | None = None) -> dict:
    """An ``add-on``. ``expand`` holds what the request's ``Accept-Expansion`` asked for in full
    (``plan``, ``addon_service``); ``provision_message`` is only in the answer that created it."""
    app = {"id": addon.app_id, "name": addon.app}
    service = addon.kind
    data = {
        "actions": [], "addon_service": (service_json(service, addon.created_at) if "addon_service" in expand
                                         else service_ref(service)),
        "app": app, "billed_price": dict(FREE), "billing_entity": {**app, "type": "app"},
        "config_vars": [addon.config_var], "created_at": addon.created_at, "id": addon.id, "name": addon.name,
        "plan": plan_json(service, addon.created_at) if "plan" in expand else plan_ref(service),
        "provider_id": addon.name, "state": state or addon.state, "updated_at": addon.updated_at, "web_url": None,
    }
    if provision_message is not None:
        data["provision_message"] = provision_message
    return data


def attachment_id(addon: Addon) -> str:
    return derived_id(addon.id, "attachment")


def attachment_json(addon: Addon, include: frozenset[str] = frozenset()) -> dict:
    """An ``add-on-attachment``: ``addon`` attached to its app. ``include`` holds what the
    request's ``Accept-Inclusion`` asked for besides (``addon:plan``, ``config_vars``)."""
    app = {"id": addon.app_id, "name": addon.app}
    data = {"addon": {"id": addon.id, "name": addon.name, "app": app}, "app": app, "created_at": addon.created_at,
            "id": attachment_id(addon), "name": addon.attachment, "namespace": None,
            "updated_at": addon.updated_at, "web_url": None, "log_input_url": None}
    if "addon:plan" in include:
        data["addon"]["plan"] = plan_ref(addon.kind)
    if "config_vars" in include:
        data["config_vars"] = [addon.config_var]
    return data


def _header_set(request: Request, name: str) -> frozenset[str]:
    """``Accept-Expansion: addon_service,plan`` → {"addon_service", "plan"}."""
    return frozenset(part.strip() for part in request.headers.get(name, "").split(",") if part.strip())


def _expand(request: Request) -> frozenset[str]:
    return _header_set(request, "accept-expansion")


def _include(request: Request) -> frozenset[str]:
    return _header_set(request, "accept-inclusion")


# --- what the caller may see ----------------------------------------------------------------------

def _visible_addons(platform: Platform, user: str) -> list[Addon]:
    """The add-ons of every app ``user`` owns or collaborates on."""
    actor, store = Actor(user), AddonStore(platform.settings)
    return [addon for app in platform.apps.list() if actor.may_use(app.owner, app.collaborators)
            for addon in store.of_app(app.name)]


@contextmanager
def _unknown_as(resource: str) -> Iterator[None]:
    """gitpaas's own "no add-on" (a CLI message) as the API's 404."""
    try:
        yield
    except AddonNotFound:
        raise UnknownAddon(resource) from None


def _addon_of_app(platform: Platform, app: App, identity: str) -> Addon:
    """An add-on of ``app`` by id, name or attachment (``DATABASE``, ``DATABASE_URL``)."""
    with _unknown_as("add_on"):
        return AddonStore(platform.settings).get(identity, app.name)


def _addon(platform: Platform, user: str, identity: str) -> Addon:
    """An add-on of any app ``user`` may use, by id or (globally unique) name."""
    with _unknown_as("add_on"):
        addon = AddonStore(platform.settings).get(identity)
    if not can_access(platform, Actor(user), addon.app):
        raise UnknownAddon()
    return addon


def _scoped(identity: str, app: str | None) -> tuple[str, str | None]:
    """``APP::NAME`` (how the Heroku CLI names an attachment on an app) → (NAME, APP)."""
    before, separator, after = identity.partition("::")
    return (after, before) if separator and before and after else (identity, app)


def _of_service(addons: list[Addon], service: str | None) -> list[Addon]:
    if service is None:
        return addons
    return [addon for addon in addons if service in (addon.kind.heroku_name, addon.service)]


# --- add-ons -------------------------------------------------------------------------------------

def _shaped(request: Request, addon: Addon, detail: bool = False) -> dict:
    """Heroku's ``add-on``, or gitpaas's record of it (with its backups' count, for ``addons:info``)."""
    if not gitpaas_variant(request):
        return addon_json(addon, _expand(request))
    record = cli_record(addon)
    if detail and addon.service == POSTGRESQL.name:
        record["backups_kept"] = sum(1 for b in BackupStore(settings_of(request)).list(addon.app) if b.addon == addon.name)
    return record


@router.get("/apps/{app}/addons")
def addons_of_app(request: Request, user: User, app: str) -> list[dict]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return [_shaped(request, addon) for addon in AddonStore(platform.settings).of_app(found.name)]


@router.get("/addons")
def addons_list(request: Request, user: User) -> list[dict]:
    return [_shaped(request, addon) for addon in _visible_addons(platform_of(request), user)]


@router.get("/apps/{app}/addons/{addon}")
def addons_info_of_app(request: Request, user: User, app: str, addon: str) -> dict:
    platform = platform_of(request)
    return _shaped(request, _addon_of_app(platform, visible_app(platform, user, app), addon), detail=True)


@router.get("/addons/{addon}")
def addons_info(request: Request, user: User, addon: str) -> dict:
    return _shaped(request, _addon(platform_of(request), user, addon), detail=True)


class PlanRef(Strict):
    id: Optional[str] = Field(default=None, max_length=64)
    name: Optional[str] = Field(default=None, max_length=100)


class AttachmentRef(Strict):
    name: Optional[str] = Field(default=None, max_length=100)


class AddonCreate(Strict):
    """What ``heroku addons:create PLAN -a APP [--as A] [--name N] [-- --key value]`` sends."""

    #: ``{"name": "heroku-postgresql:essential-0"}``, ``{"id": …}`` or the bare name or id
    plan: Union[PlanRef, Annotated[str, Field(max_length=100)]]
    attachment: Optional[AttachmentRef] = None
    #: the provider's options (after ``--`` on Heroku's CLI): gitpaas's services take none
    config: Optional[dict[str, Union[str, bool]]] = None
    #: the app's name, when Heroku asked for a confirmation; gitpaas never does (nothing costs money)
    confirm: Optional[str] = Field(default=None, max_length=100)
    name: Optional[str] = Field(default=None, max_length=100)


def _service(plan: PlanRef | str) -> Service:
    """The service a plan names, by plan id or name (``heroku-postgresql``, ``…:essential-0``,
    ``redis``); an unknown plan is a 422 saying which there are."""
    identity = plan if isinstance(plan, str) else (plan.id or plan.name or "")
    if is_uuid(identity):
        found = next((s for s in SERVICES.values() if plan_ref(s)["id"] == identity), None)
        if found is None:
            raise InvalidParams(f"no add-on plan with the id {identity}")
        return found
    try:
        return parse_plan(identity)
    except UsageError as exc:
        raise InvalidParams(exc.message) from exc


def _provision_message(addon: Addon, release: Release | None) -> str:
    if release is None:
        return f"{addon.config_var} is set for {addon.app}'s first release (git push to deploy it)"
    return f"Release v{release.version} attaches it as {addon.attachment}: the app restarts with {addon.config_var}"


@router.post("/apps/{app}/addons", status_code=201)
def addons_create(request: Request, user: User, app: str, body: AddonCreate) -> dict:
    """Provision (the answer waits until the add-on accepts connections) and attach it; the release
    that attaches it goes on in the background, like a config change's."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    service = _service(body.plan)
    if body.config:
        raise InvalidParams(f"{service.heroku_name} takes no provisioning options on gitpaas "
                            f"(got {', '.join(sorted(body.config))})")

    def begin(said):
        change = lifecycle.begin_create(platform, found.name, Actor(user), said, service.name,
                                        attachment=body.attachment.name if body.attachment else None, name=body.name)
        pending = change.pending
        return (change.addon, pending.release if pending else None), pending
    addon, release = release_in_background(found.name, begin)
    if gitpaas_variant(request):  # the record, and the release that attaches it (to follow)
        return {"addon": cli_record(addon), "release": None if release is None else release_payload(request, found, user, release)}
    return addon_json(addon, _expand(request), provision_message=_provision_message(addon, release))


class AddonDelete(Strict):
    #: Heroku's "even if attached to other apps": a gitpaas add-on is attached to its own app only
    force: Optional[bool] = None


@router.delete("/apps/{app}/addons/{addon}")
def addons_delete(request: Request, user: User, app: str, addon: str,
                  body: AddonDelete | None = Body(default=None)) -> dict:
    """Destroy the add-on and its data (a PostgreSQL one keeps a final backup); the release that
    detaches it goes on in the background."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    target = _addon_of_app(platform, found, addon)

    def begin(said):
        with _unknown_as("add_on"):  # destroyed meanwhile
            change = lifecycle.begin_destroy(platform, found.name, Actor(user), said, target.name)
        pending = change.pending
        return (change.addon, pending.release if pending else None, change.backup), pending
    gone, release, backup = release_in_background(found.name, begin)
    if gitpaas_variant(request):  # the release that detaches it (to follow) and the final backup kept
        return {"addon": cli_record(gone), "backup": backup.id if backup else None,
                "release": None if release is None else release_payload(request, found, user, release)}
    return addon_json(gone, _expand(request), state="deprovisioned")



class AddonSessionCreate(Strict):
    #: "postgresql" (psql) or "redis" (redis-cli): the client of that service, nothing else, is run
    service: Literal["postgresql", "redis"]
    #: the add-on's name or attachment (default: the app's first of that service)
    addon: Optional[str] = Field(default=None, max_length=100)
    #: SQL for psql's -c, or a redis-cli command; none: a session
    command: Optional[str] = Field(default=None, max_length=100_000)
    tty: Optional[bool] = None


@router.post("/apps/{app}/addon-sessions", status_code=201)
def addon_sessions_create(request: Request, user: User, app: str, body: AddonSessionCreate) -> dict:
    """gitpaas's: a session of an add-on's client in its container (``gitpaas pg:psql``,
    ``redis:cli`` from another machine), attached to through the rendezvous like a one-off dyno."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    rendezvous = getattr(request.app.state, "rendezvous", None)
    if rendezvous is None:
        raise EnvironmentProblem("this server has no rendezvous for sessions: run the command on the server")
    name, session = operations.open_addon_session(platform, found.name, body.service, body.addon, body.command,
                                                  bool(body.tty))
    secret = rendezvous.register(session, found.name)
    return {"addon": name, "attach_url": f"rendezvous://{attach_host(request)}:{rendezvous.port}/{secret}",
            "rendezvous_fingerprint": rendezvous.fingerprint}


class AddonResolve(Strict):
    addon: str = Field(max_length=200)
    app: Optional[str] = Field(default=None, max_length=100)
    addon_service: Optional[str] = Field(default=None, max_length=100)


@router.post("/actions/addons/resolve")
def addons_resolve(request: Request, user: User, body: AddonResolve) -> list[dict]:
    """The add-ons a name means: an add-on's id or name, or on an app (``app``, or ``APP::NAME``)
    also its attachment. 404 (resource ``add_on``) when none."""
    platform = platform_of(request)
    identity, app = _scoped(body.addon, body.app)
    if app is not None:
        matches = [_addon_of_app(platform, visible_app(platform, user, app), identity)]
    else:
        matches = [_addon(platform, user, identity)]
    matches = _of_service(matches, body.addon_service)
    if not matches:
        raise UnknownAddon()
    return [addon_json(addon, _expand(request)) for addon in matches]


# --- attachments ---------------------------------------------------------------------------------

def _attachments(addons: list[Addon], identity: str) -> list[Addon]:
    """The add-ons whose attachment has the id, or the name (``DATABASE``), ``identity``."""
    return [addon for addon in addons if identity == attachment_id(addon) or identity.upper() == addon.attachment]


@router.get("/apps/{app}/addon-attachments")
def attachments_of_app(request: Request, user: User, app: str) -> list[dict]:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return [attachment_json(addon, _include(request)) for addon in AddonStore(platform.settings).of_app(found.name)]


@router.get("/addon-attachments")
def attachments_list(request: Request, user: User) -> list[dict]:
    return [attachment_json(addon, _include(request)) for addon in _visible_addons(platform_of(request), user)]


@router.get("/addon-attachments/{attachment}")
def attachments_info(request: Request, user: User, attachment: str) -> dict:
    """By id: an attachment's name (``DATABASE``) names one only on an app."""
    found = [a for a in _visible_addons(platform_of(request), user) if attachment_id(a) == attachment]
    if not found:
        raise UnknownAddon(ATTACHMENT)
    return attachment_json(found[0], _include(request))


@router.get("/apps/{app}/addon-attachments/{attachment}")
def attachments_info_of_app(request: Request, user: User, app: str, attachment: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    matches = _attachments(AddonStore(platform.settings).of_app(found.name), attachment)
    if not matches:
        raise UnknownAddon(ATTACHMENT)
    return attachment_json(matches[0], _include(request))


@router.get("/addons/{addon}/addon-attachments")
def attachments_of_addon(request: Request, user: User, addon: str) -> list[dict]:
    """What ``heroku addons:info`` lists under Attachments."""
    return [attachment_json(_addon(platform_of(request), user, addon), _include(request))]


class AttachmentResolve(Strict):
    addon_attachment: str = Field(max_length=200)
    app: Optional[str] = Field(default=None, max_length=100)
    addon_service: Optional[str] = Field(default=None, max_length=100)


@router.post("/actions/addon-attachments/resolve")
def attachments_resolve(request: Request, user: User, body: AttachmentResolve) -> list[dict]:
    """The attachments a name means: an attachment's id, or its name on an app (``app``, or
    ``APP::NAME``) — without an app, on every app the caller may use. 404 (resource
    ``add_on attachment``) when none."""
    platform = platform_of(request)
    identity, app = _scoped(body.addon_attachment, body.app)
    if app is not None:
        candidates = AddonStore(platform.settings).of_app(visible_app(platform, user, app).name)
    else:
        candidates = _visible_addons(platform, user)
    matches = _of_service(_attachments(candidates, identity), body.addon_service)
    if not matches:
        raise UnknownAddon(ATTACHMENT)
    return [attachment_json(addon, _include(request)) for addon in matches]
