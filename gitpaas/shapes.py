"""gitpaas's objects in the Heroku Platform API's shapes (the schema in tests/data validates them),
for the API and the CLI's ``--json``. Pure: records in, dicts out. Ids gitpaas has no record of (a
formation entry, a dyno, a domain, the stack) are stable UUIDs derived from what identifies them."""

from __future__ import annotations

import uuid
from typing import Any

from gitpaas import sizes
from gitpaas.identity import account_ref
from gitpaas.release import Release
from gitpaas.scheduler import Process
from gitpaas.settings import Settings
from gitpaas.stacks import Stack
from gitpaas.store.apps import App

REGION = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "gitpaas:region:local")), "name": "local"}
GENERATION = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "gitpaas:generation:1")), "name": "cedar"}


def derived_id(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "gitpaas:" + ":".join(str(p) for p in parts)))


def stack_ref(stack: Stack) -> dict[str, str]:
    return {"id": stack.id, "name": stack.name}


def stack_json(stack: Stack, settings: Settings) -> dict[str, Any]:
    return {**stack_ref(stack), "created_at": f"{stack.introduced}T00:00:00Z", "updated_at": f"{stack.introduced}T00:00:00Z",
            "default": stack.name == settings.default_stack, "state": stack.state}


def app_json(app: App, settings: Settings, git_url: str, released_at: str | None,
             stacks: tuple[Stack, Stack]) -> dict[str, Any]:
    """``stacks``: the app's stack and its build stack (appview.app_stacks)."""
    stack, build_stack = stacks
    return {
        "acm": False, "archived_at": None, "build_stack": stack_ref(build_stack), "buildpack_provided_description": None,
        "created_at": app.created_at, "generation": GENERATION, "git_url": git_url, "id": app.id,
        "internal_routing": None, "maintenance": app.maintenance, "name": app.name, "organization": None,
        "owner": account_ref(app.owner) if app.owner else {"email": "operator@localhost", "id": derived_id("operator")},
        "region": REGION, "released_at": released_at, "repo_size": None, "slug_size": None, "space": None,
        "stack": stack_ref(stack), "team": None, "updated_at": app.updated_at, "web_url": settings.web_url(app.name),
    }


def release_json(release: Release, output_stream_url: str | None = None) -> dict[str, Any]:
    data = release.to_api()
    if output_stream_url is not None:
        data["output_stream_url"] = output_stream_url
    return data


def formation_json(app: App, process_type: str, quantity: int, command: str | None) -> dict[str, Any]:
    size = sizes.get(app.sizes.get(process_type))
    return {
        "app": {"id": app.id, "name": app.name}, "command": command or "", "created_at": app.created_at,
        "dyno_size": {"id": derived_id("size", size.name), "name": size.display},
        "id": derived_id(app.id, "formation", process_type), "quantity": quantity, "size": size.display,
        "type": process_type, "updated_at": app.updated_at,
    }


def dyno_json(process: Process, app_id: str) -> dict[str, Any]:
    return {
        "attach_url": None, "command": process.command, "created_at": process.created_at,
        "id": derived_id(app_id, "dyno", process.id), "name": process.name,
        "release": {"id": process.release_id, "version": process.release_version},
        "app": {"name": process.app, "id": app_id}, "size": sizes.get(process.size).display, "state": process.state,
        "type": process.type, "updated_at": process.created_at,
    }


def account_json(user: dict) -> dict[str, Any]:
    """An account record (``Accounts.get_user``) as a Platform API ``account`` (GET /account)."""
    return {
        "allow_tracking": False, "beta": False, "created_at": user["created_at"], "email": user["email"],
        "federated": False, "id": user["id"], "identity_provider": None, "last_login": None,
        "name": user.get("name"), "sms_number": None, "suspended_at": None, "delinquent_at": None,
        "two_factor_authentication": False, "updated_at": user["updated_at"], "verified": False,
        "country_of_residence": None, "default_organization": None, "default_team": None,
    }


def collaborator_json(app: App, email: str) -> dict[str, Any]:
    return {"id": derived_id(app.id, "collaborator", email), "user": account_ref(email), "role": "collaborator",
            "permissions": [], "app": {"id": app.id, "name": app.name}, "created_at": app.created_at,
            "updated_at": app.updated_at}


def domain_json(app: App, host: str, *, default: bool, target: str | None = None) -> dict[str, Any]:
    """One of the app's host names: its own (``APP.$GITPAAS_DOMAIN``, Heroku's kind "heroku") or a custom one,
    whose DNS ``target`` (``cname``) is the app's own host name. The router serves a host name as soon
    as it is added (status ``none``: nothing to provision, no certificate to wait for)."""
    return {"id": derived_id(app.id, "domain", host), "hostname": host, "kind": "heroku" if default else "custom",
            "cname": None if default else target, "status": "none", "acm_status": None, "acm_status_reason": None,
            "sni_endpoint": None, "app": {"id": app.id, "name": app.name},
            "created_at": app.created_at, "updated_at": app.updated_at}
