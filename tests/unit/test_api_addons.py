"""The Platform API's add-ons (gitpaas/api/addons.py) on the in-memory fakes, driven in-process
through ASGI: the requests the official Heroku CLI sends for ``addons:create``, ``addons``,
``addons:info`` and ``addons:destroy``, their answers checked against Heroku's schema, who may see
what, and the config vars an add-on brings."""

from __future__ import annotations

import pytest
from schema import validate
from test_api_security import Client, signed_in_client

from fakes import deploy, make_platform
from gitpaas import locks, operations
from gitpaas.addons.store import AddonStore
from gitpaas.api import addons as addons_api
from gitpaas.api import routes
from gitpaas.platform import Platform

OWNER = "owner@example.com"
FRIEND = "friend@example.com"
STRANGER = "stranger@example.com"
#: what `heroku addons:create heroku-postgresql -a shop` sends (lib/addons/create-addon.js)
CLI_CREATE = {"attachment": {}, "config": {}, "plan": {"name": "heroku-postgresql"}}
CLI_CREATE_HEADERS = {"accept-expansion": "plan", "x-heroku-legacy-provider-messages": "true"}
#: what `heroku addons`, `addons:info` and `addons:destroy` send when they list or resolve add-ons
LIST_HEADERS = {"accept": "application/vnd.heroku+json; version=3.sdk", "accept-expansion": "addon_service,plan"}
NOT_FOUND = {"id": "not_found", "message": "Couldn't find that add on.", "resource": "add_on"}
NO_ATTACHMENT = {"id": "not_found", "message": "Couldn't find that add on attachment.",
                 "resource": "add_on attachment"}
NO_APP = {"id": "not_found", "message": "Couldn't find that app."}


@pytest.fixture
def platform(tmp_path) -> Platform:
    """A home on the fakes: "shop" owned by OWNER (FRIEND collaborates), released once; "blog" the stranger's."""
    made = make_platform(tmp_path)
    operations.create_app(made, "shop", owner=OWNER)
    operations.add_collaborator(made, "shop", FRIEND)
    operations.create_app(made, "blog", owner=STRANGER)
    deploy(made)
    return made


@pytest.fixture
def client(platform, monkeypatch) -> Client:
    # The routes make their own Platform of the home; add-ons need the fake scheduler.
    monkeypatch.setattr(addons_api, "platform_of", lambda request: platform)
    monkeypatch.setattr(routes, "platform_of", lambda request: platform)
    return signed_in_client(platform, (OWNER, FRIEND, STRANGER))


def settled(platform: Platform, app: str = "shop") -> None:
    """Wait for the release an API call left running in the background (it holds the app's lock)."""
    with locks.release_lock(platform, app):
        pass


def create(client: Client, platform: Platform, body: dict | None = None, user: str = OWNER) -> dict:
    answer = client.request("POST", "/apps/shop/addons", user=user, json_body=body or CLI_CREATE,
                            headers=CLI_CREATE_HEADERS)
    assert answer.status == 201, answer
    settled(platform)
    return answer.json()


def validate_addon(addon: dict, *, created: bool = False) -> None:
    """An ``add-on`` as Heroku answers it: every property, ``provision_message`` only when created;
    expanded ``plan`` and ``addon_service`` are whole ``plan`` and ``add-on-service`` objects."""
    collapsed = dict(addon)
    if "price" in addon["plan"]:
        validate("plan", addon["plan"])
        collapsed["plan"] = {key: addon["plan"][key] for key in ("id", "name")}
    if "human_name" in addon["addon_service"]:
        validate("add-on-service", addon["addon_service"])
        collapsed["addon_service"] = {key: addon["addon_service"][key] for key in ("id", "name")}
    validate("add-on", collapsed, require_all=created)
    if not created:
        validate("add-on", {**collapsed, "provision_message": "(only in the answer that created it)"})


# --- create ---------------------------------------------------------------------------------------

def test_creating_answers_the_provisioned_add_on_and_attaches_it_in_a_release(client, platform):
    addon = create(client, platform)
    validate_addon(addon, created=True)
    record = AddonStore(platform.settings).get(addon["name"], "shop")
    assert addon["id"] == record.id and addon["name"].startswith("postgresql-")
    assert addon["state"] == "provisioned" and addon["config_vars"] == ["DATABASE_URL"]
    assert addon["app"] == {"id": platform.apps.get("shop").id, "name": "shop"}
    assert addon["plan"]["name"] == "heroku-postgresql:local"
    assert addon["plan"]["price"] == {"cents": 0, "contract": False, "unit": "month"}, "the CLI prints it: free"
    assert addon["billed_price"]["cents"] == 0, "`heroku addons` prices from billed_price"
    assert addon["addon_service"]["name"] == "heroku-postgresql"
    assert addon["provision_message"] == "Release v2 attaches it as DATABASE: the app restarts with DATABASE_URL"
    release = platform.apps.releases("shop").get(2)
    assert release.description == f"Attach DATABASE ({addon['name']})"
    assert release.status == "succeeded" and release.config_vars["DATABASE_URL"] == record.url()
    assert platform.scheduler.addons[addon["name"]]["ready"], "provisioned before the answer"


def test_creating_takes_the_plan_as_heroku_names_it_and_the_attachment_and_name(client, platform):
    addon = create(client, platform, {"plan": "heroku-redis:premium-0", "attachment": {"name": "cache"},
                                      "name": "shop-cache", "confirm": "shop"})
    assert (addon["name"], addon["config_vars"], addon["plan"]["name"]) == ("shop-cache", ["CACHE_URL"],
                                                                            "heroku-redis:local")
    by_id = create(client, platform, {"plan": {"id": addon["plan"]["id"]}})
    assert by_id["config_vars"] == ["REDIS_URL"] and by_id["plan"]["name"] == "heroku-redis:local"


def test_an_add_on_of_an_app_never_released_comes_with_its_first_deploy(client, platform):
    answer = client.request("POST", "/apps/blog/addons", user=STRANGER, json_body=CLI_CREATE)
    assert answer.status == 201, answer
    assert answer.json()["provision_message"] == "DATABASE_URL is set for blog's first release (git push to deploy it)"
    assert platform.apps.releases("blog").versions() == []


def test_an_unknown_plan_is_refused_with_the_plans_there_are(client, platform):
    answer = client.request("POST", "/apps/shop/addons", user=OWNER, json_body={"plan": {"name": "mongolab"}})
    assert answer.status == 422, answer
    assert answer.json() == {"id": "invalid_params", "message": "no add-on plan 'mongolab': gitpaas has postgresql "
                                                                "(heroku-postgresql) and redis (heroku-redis)"}
    options = client.request("POST", "/apps/shop/addons", user=OWNER,
                             json_body={"plan": "heroku-postgresql", "config": {"fork": "DATABASE"}})
    assert options.status == 422 and "takes no provisioning options" in options.json()["message"]
    unknown_field = client.request("POST", "/apps/shop/addons", user=OWNER, json_body={"plan": "redis", "x": 1})
    assert unknown_field.status == 422
    assert AddonStore(platform.settings).of_app("shop") == [] and platform.scheduler.addons == {}
    assert platform.apps.releases("shop").versions() == [1]


# --- list, info, attachments ------------------------------------------------------------------------

def test_the_add_on_is_listed_and_found_by_id_name_and_attachment(client, platform):
    created = create(client, platform)
    for path in ("/apps/shop/addons", "/addons"):
        listed = client.request("GET", path, user=OWNER, headers=LIST_HEADERS)
        assert listed.status == 200 and [a["id"] for a in listed.json()] == [created["id"]], listed
        validate_addon(listed.json()[0])
        assert listed.json()[0]["addon_service"]["human_name"] == "PostgreSQL"
    for path in (f"/addons/{created['name']}", f"/addons/{created['id']}", "/apps/shop/addons/DATABASE",
                 f"/apps/shop/addons/{created['name']}", f"/apps/{created['app']['id']}/addons/{created['id']}"):
        info = client.request("GET", path, user=OWNER)
        assert info.status == 200 and info.json()["id"] == created["id"], (path, info)
        validate_addon(info.json())
        assert set(info.json()["plan"]) == {"id", "name"}, "not expanded unless asked"


def test_the_attachment_is_listed_and_found_by_id_and_name(client, platform):
    created = create(client, platform)
    listed = client.request("GET", "/addon-attachments", user=OWNER)
    assert listed.status == 200 and len(listed.json()) == 1
    attachment = listed.json()[0]
    validate("add-on-attachment", attachment)
    assert attachment["name"] == "DATABASE"
    assert attachment["addon"] == {"id": created["id"], "name": created["name"], "app": created["app"]}
    assert attachment["app"] == created["app"]
    assert client.request("GET", "/apps/shop/addon-attachments", user=OWNER).json() == [attachment]
    assert client.request("GET", f"/addons/{created['name']}/addon-attachments", user=OWNER).json() == [attachment]
    for path in (f"/addon-attachments/{attachment['id']}", "/apps/shop/addon-attachments/DATABASE",
                 f"/apps/shop/addon-attachments/{attachment['id']}"):
        assert client.request("GET", path, user=OWNER).json() == attachment, path
    assert client.request("GET", "/addon-attachments/DATABASE", user=OWNER).json() == NO_ATTACHMENT, \
        "a name names an attachment only on an app"
    included = client.request("GET", "/apps/shop/addon-attachments", user=OWNER,
                              headers={"accept-inclusion": "addon:plan,config_vars"}).json()[0]
    assert included["config_vars"] == ["DATABASE_URL"] and included["addon"]["plan"] == {
        "id": created["plan"]["id"], "name": "heroku-postgresql:local"}


def test_names_resolve_as_the_heroku_cli_asks(client, platform):
    created = create(client, platform)
    operations.create_app(platform, "till", owner=OWNER)

    def resolve(**body):
        return client.request("POST", "/actions/addons/resolve", user=OWNER, json_body=body, headers=LIST_HEADERS)
    for body in ({"addon": created["name"]}, {"addon": created["name"], "app": None}, {"addon": created["id"]},
                 {"addon": "DATABASE", "app": "shop"}, {"addon": "shop::DATABASE"},
                 {"addon": created["name"], "addon_service": "heroku-postgresql"}):
        answer = resolve(**body)
        assert answer.status == 200 and [a["id"] for a in answer.json()] == [created["id"]], (body, answer)
        validate_addon(answer.json()[0])
    # not on that app: the body names the resource, so the CLI asks again without the app
    for body in ({"addon": "DATABASE"}, {"addon": created["name"], "app": "till"}, {"addon": "nope"},
                 {"addon": created["name"], "addon_service": "heroku-redis"}):
        answer = resolve(**body)
        assert (answer.status, answer.json()) == (404, NOT_FOUND), body
    assert resolve(addon=created["name"], app="blog").json() == NO_APP, "someone else's app"

    def resolve_attachment(**body):
        return client.request("POST", "/actions/addon-attachments/resolve", user=OWNER, json_body=body)
    for body in ({"addon_attachment": "DATABASE", "app": "shop"}, {"addon_attachment": "DATABASE"},
                 {"addon_attachment": "shop::DATABASE", "app": None}):
        answer = resolve_attachment(**body)
        assert answer.status == 200 and [a["addon"]["id"] for a in answer.json()] == [created["id"]], (body, answer)
        validate("add-on-attachment", answer.json()[0])
    for body in ({"addon_attachment": "REDIS", "app": "shop"}, {"addon_attachment": created["name"]}):
        assert resolve_attachment(**body).json() == NO_ATTACHMENT, body


# --- who sees what --------------------------------------------------------------------------------

def test_only_the_apps_people_see_its_add_ons_and_others_cannot_tell_them_from_none(client, platform):
    created = create(client, platform)
    attachment_id = client.request("GET", "/addon-attachments", user=OWNER).json()[0]["id"]
    assert [a["id"] for a in client.request("GET", "/addons", user=FRIEND).json()] == [created["id"]]
    assert client.request("GET", f"/addons/{created['name']}", user=FRIEND).status == 200

    for path in ("/addons", "/addon-attachments"):
        assert client.request("GET", path, user=STRANGER).json() == [], path
    for path in (f"/addons/{created['name']}", f"/addons/{created['id']}", f"/addons/{created['id']}/addon-attachments"):
        assert client.request("GET", path, user=STRANGER).json() == NOT_FOUND, path
    assert client.request("GET", f"/addon-attachments/{attachment_id}", user=STRANGER).json() == NO_ATTACHMENT
    for method, path in (("GET", "/apps/shop/addons"), ("GET", f"/apps/shop/addons/{created['name']}"),
                         ("GET", "/apps/shop/addon-attachments"), ("DELETE", f"/apps/shop/addons/{created['id']}"),
                         ("POST", "/apps/shop/addons"), ("GET", "/apps/shop/config-vars")):
        answer = client.request(method, path, user=STRANGER, json_body=CLI_CREATE if method == "POST" else None)
        assert (answer.status, answer.json()) == (404, NO_APP), (method, path)
    resolved = client.request("POST", "/actions/addons/resolve", user=STRANGER, json_body={"addon": created["name"]})
    assert resolved.json() == NOT_FOUND
    attachment = client.request("POST", "/actions/addon-attachments/resolve", user=STRANGER,
                                json_body={"addon_attachment": "DATABASE"})
    assert attachment.json() == NO_ATTACHMENT
    assert len(AddonStore(platform.settings).of_app("shop")) == 1
    assert client.request("GET", "/addons", headers={"authorization": "Bearer nope"}).status == 401


# --- config vars ------------------------------------------------------------------------------------

def test_the_apps_config_vars_include_its_add_ons_and_those_cannot_be_set(client, platform):
    client.request("PATCH", "/apps/shop/config-vars", user=OWNER, json_body={"GREETING": "hi"})
    settled(platform)
    created = create(client, platform)
    url = AddonStore(platform.settings).get(created["name"], "shop").url()
    assert client.request("GET", "/apps/shop/config-vars", user=OWNER).json() == {"GREETING": "hi",
                                                                                 "DATABASE_URL": url}
    refused = client.request("PATCH", "/apps/shop/config-vars", user=OWNER, json_body={"DATABASE_URL": "x"})
    assert refused.status == 422 and refused.json()["id"] == "invalid_params"
    assert platform.apps.config("shop").get() == {"GREETING": "hi"}


# --- delete -----------------------------------------------------------------------------------------

def test_destroying_answers_deprovisioned_and_detaches_it_in_a_release(client, platform):
    created = create(client, platform)
    # as `heroku addons:destroy` sends it: by the app's id, with a body
    answer = client.request("DELETE", f"/apps/{created['app']['id']}/addons/{created['id']}", user=FRIEND,
                            json_body={"force": False}, headers={"accept-expansion": "plan"})
    assert answer.status == 200, answer
    validate_addon(answer.json())
    assert (answer.json()["id"], answer.json()["state"]) == (created["id"], "deprovisioned")
    settled(platform)
    release = platform.apps.releases("shop").get(3)
    assert release.description == f"Detach DATABASE ({created['name']})" and release.status == "succeeded"
    assert "DATABASE_URL" not in release.config_vars
    assert created["name"] not in platform.scheduler.addons and AddonStore(platform.settings).of_app("shop") == []
    assert client.request("GET", f"/addons/{created['id']}", user=OWNER).json() == NOT_FOUND
    assert client.request("GET", "/apps/shop/config-vars", user=OWNER).json() == {}
    again = client.request("DELETE", f"/apps/shop/addons/{created['id']}", user=OWNER)
    assert (again.status, again.json()) == (404, NOT_FOUND)
