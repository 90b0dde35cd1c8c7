"""The account-level corners of the Platform API the Heroku CLI reaches for: OAuth authorizations
(gitpaas's API tokens: ``heroku authorizations``), regions (one: ``local``) and features (labs):
gitpaas has none to turn on, and says so."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Request
from pydantic import Field

from gitpaas.api.core import JsonRoute, Strict, accounts_of, platform_of, visible_app
from gitpaas.api.routes import User
from gitpaas.errors import InvalidParams, NotFound
from gitpaas.identity import account_ref
from gitpaas.shapes import REGION, derived_id

router = APIRouter(route_class=JsonRoute)
#: when gitpaas's one region came to be (its records need a date)
_SINCE = "2026-01-01T00:00:00Z"


# --- authorizations: the caller's own API tokens ----------------------------------------------

def authorization_json(token: dict, secret: str | None = None) -> dict:
    """A gitpaas token record as an ``oauth-authorization``; the token itself only when just made."""
    return {
        "access_token": {"expires_in": None, "id": token["id"], "token": secret} if secret else None,
        "client": None, "created_at": token["created_at"], "description": token["description"] or "",
        "grant": None, "id": token["id"], "refresh_token": None, "scope": ["global"], "session": None,
        "updated_at": token.get("revoked_at") or token["created_at"],
        "user": {**account_ref(token["user"]), "full_name": None},
    }


def _own_tokens(request: Request, user: str) -> list[dict]:
    return [t for t in accounts_of(request).tokens(user) if not t.get("revoked_at")]


@router.get("/oauth/authorizations")
def authorizations_list(request: Request, user: User) -> list[dict]:
    return [authorization_json(token) for token in _own_tokens(request, user)]


@router.get("/oauth/authorizations/{authorization}")
def authorizations_info(request: Request, user: User, authorization: str) -> dict:
    return authorization_json(_own_token(request, user, authorization))


def _own_token(request: Request, user: str, identity: str) -> dict:
    for token in _own_tokens(request, user):
        if token["id"] == identity:
            return token
    raise NotFound("Couldn't find that authorization.")


class AuthorizationCreate(Strict):
    description: Optional[str] = Field(default=None, max_length=200)
    expires_in: Optional[int] = None
    scope: Optional[list[str]] = Field(default=None, max_length=10)


@router.post("/oauth/authorizations", status_code=201)
def authorizations_create(request: Request, user: User, body: AuthorizationCreate) -> dict:
    """A new token for the caller (the Heroku CLI's ``authorizations:create``); it never expires
    and may do what the account may (gitpaas's tokens have no scopes)."""
    if body.expires_in:
        raise InvalidParams("gitpaas tokens do not expire: create one without --expires-in and revoke it "
                            "when it is no longer needed (authorizations:revoke)")
    if body.scope and set(body.scope) != {"global"}:
        raise InvalidParams("gitpaas tokens have one scope, global (all the account may do): create one without --scope")
    record, secret = accounts_of(request).create_token(user, body.description or "")
    return authorization_json(record, secret)


@router.delete("/oauth/authorizations/{authorization}")
def authorizations_revoke(request: Request, user: User, authorization: str) -> dict:
    token = _own_token(request, user, authorization)
    return authorization_json(accounts_of(request).revoke_token(token["id"]))


# --- regions -----------------------------------------------------------------------------------

def region_json() -> dict:
    return {**REGION, "country": "local", "created_at": _SINCE, "description": "this gitpaas server",
            "locale": "local", "private_capable": False, "provider": {"name": "gitpaas", "region": "local"},
            "updated_at": _SINCE}


@router.get("/regions")
def regions_list(request: Request, user: User) -> list[dict]:
    return [region_json()]


@router.get("/regions/{region}")
def regions_info(request: Request, user: User, region: str) -> dict:
    if region not in (REGION["id"], REGION["name"]):
        raise NotFound("Couldn't find that region (gitpaas has one: local).")
    return region_json()


# --- features (labs) ---------------------------------------------------------------------------

_NO_FEATURES = "gitpaas has no labs features: there is nothing to enable or disable"


@router.get("/account/features")
def account_features(request: Request, user: User) -> list[dict]:
    return []


@router.get("/apps/{app}/features")
def app_features(request: Request, user: User, app: str) -> list[dict]:
    platform = platform_of(request)
    visible_app(platform, user, app)
    return []


#: what the Heroku CLI's reviewapps:enable asks before it looks for a GitHub repository: off here,
#: as review apps come from branches pushed to the app's own repository
REPOSITORIES_FEATURE = "dashboard-repositories-api"


@router.get("/account/features/{feature}")
@router.patch("/account/features/{feature}")
def account_feature(request: Request, user: User, feature: str) -> dict:
    if feature == REPOSITORIES_FEATURE and request.method == "GET":
        return {"created_at": "2026-12-02T00:00:00Z", "updated_at": "2026-12-02T00:00:00Z",
                "description": "Review apps from a GitHub repository (gitpaas's come from pushed branches)",
                "display_name": "Repositories API", "doc_url": "", "enabled": False, "feedback_email": "",
                "id": derived_id("feature", feature), "name": feature, "state": "general"}
    raise NotFound(f"Couldn't find that feature ({_NO_FEATURES}).")


@router.get("/apps/{app}/features/{feature}")
@router.patch("/apps/{app}/features/{feature}")
def app_feature(request: Request, user: User, app: str, feature: str) -> dict:
    platform = platform_of(request)
    visible_app(platform, user, app)
    raise NotFound(f"Couldn't find that feature ({_NO_FEATURES}).")
