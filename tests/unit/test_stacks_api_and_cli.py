"""Choosing an app's stack: the Platform API (what the Heroku CLI's ``stack`` and ``stack:set``
send, answers checked against Heroku's schema) and the gitpaas commands, on the in-memory fakes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from schema import validate
from test_api_security import Client, signed_in_client

from fakes import deploy, make_platform
from gitpaas import appview, events, operations, stacks
from gitpaas.api import routes
from gitpaas.cli.main import cli
from gitpaas.identity import Actor
from gitpaas.output import RecordingOutput
from gitpaas.platform import Platform

OWNER = "owner@example.com"
STRANGER = "stranger@example.com"


@pytest.fixture
def platform(tmp_path) -> Platform:
    made = make_platform(tmp_path)
    operations.create_app(made, "shop", owner=OWNER)
    deploy(made)
    return made


@pytest.fixture
def client(platform, monkeypatch) -> Client:
    monkeypatch.setattr(routes, "platform_of", lambda request: platform)
    return signed_in_client(platform, (OWNER, STRANGER))


def test_stacks_are_listed_in_herokus_shape_with_trixie_the_default(client):
    listed = client.request("GET", "/stacks", user=OWNER).json()
    assert [stack["name"] for stack in listed] == ["bookworm", "trixie", "forky"]
    for stack in listed:
        validate("stack", stack)
    assert [stack["default"] for stack in listed] == [False, True, False]
    assert {stack["name"]: stack["state"] for stack in listed}["forky"] == "beta"
    forky = stacks.STACKS["forky"]
    assert client.request("GET", f"/stacks/{forky.id}", user=OWNER).json()["name"] == "forky"
    assert client.request("GET", "/stacks/heroku-24", user=OWNER).status == 404
    assert len(client.request("GET", "/apps/shop/available-stacks", user=OWNER).json()) == 3


def test_stack_set_changes_the_build_stack_and_what_runs_stays(client, platform):
    # what `heroku stack:set forky -a shop` sends
    answer = client.request("PATCH", "/apps/shop", user=OWNER, json_body={"build_stack": "forky"})
    assert answer.status == 200, answer.body
    app = answer.json()
    validate("app", app)
    assert (app["stack"]["name"], app["build_stack"]["name"]) == ("trixie", "forky")
    assert app["build_stack"]["id"] == stacks.STACKS["forky"].id
    assert platform.apps.get("shop").build_stack == "forky"
    # the next release built there is on forky; a rollback to v1 runs trixie's slug again
    deploy(platform, image="gitpaas-test/shop:build-2")
    assert client.request("GET", "/apps/shop", user=OWNER).json()["stack"]["name"] == "forky"
    events.rollback(platform, "shop", Actor(OWNER), RecordingOutput(), 1)
    app = client.request("GET", "/apps/shop", user=OWNER).json()
    assert (app["stack"]["name"], app["build_stack"]["name"]) == ("trixie", "forky")
    assert platform.apps.releases("shop").get(3).stack == "trixie"


def test_an_app_never_deployed_is_on_its_build_stack_at_once(client):
    created = client.request("POST", "/apps", user=OWNER, json_body={"name": "fresh", "stack": "bookworm"}).json()
    assert (created["stack"]["name"], created["build_stack"]["name"]) == ("bookworm", "bookworm")
    app = client.request("PATCH", "/apps/fresh", user=OWNER, json_body={"build_stack": "trixie"}).json()
    assert (app["stack"]["name"], app["build_stack"]["name"]) == ("trixie", "trixie")


@pytest.mark.parametrize("body, words", [
    ({"build_stack": "heroku-24"}, "Couldn't find that stack: 'heroku-24' (gitpaas has bookworm, trixie, forky)."),
    ({"name": "renamed"}, "gitpaas cannot rename an app: its name is in its containers"),
    ({"name": "renamed", "maintenance": True}, "gitpaas cannot rename an app: its name is in its containers"),
])
def test_changes_gitpaas_does_not_make_get_one_line_422(client, platform, body, words):
    answer = client.request("PATCH", "/apps/shop", user=OWNER, json_body=body)
    assert answer.status == 422 and answer.json()["message"].startswith(words)
    assert "\n" not in answer.json()["message"]
    assert platform.apps.get("shop").build_stack == "trixie" and not platform.apps.get("shop").maintenance


def test_only_those_who_may_use_the_app_change_its_stack(client, platform):
    assert client.request("PATCH", "/apps/shop", user=STRANGER, json_body={"build_stack": "forky"}).status in (403, 404)
    assert platform.apps.get("shop").build_stack == "trixie"


def test_an_app_recorded_before_stacks_is_on_bookworm(platform):
    app = platform.apps.get("shop")
    app.build_stack = None
    platform.apps.save(app)
    release = platform.apps.releases("shop").get(1)
    release.stack = None
    platform.apps.releases("shop").save(release)
    info = appview.app_info(platform, "shop")
    assert (info["stack"], info["build_stack"]) == ("bookworm", "bookworm")


# --- the gitpaas commands ------------------------------------------------------------------------

def run(platform: Platform, *args: str):
    env = {"GITPAAS_HOME": str(platform.settings.home), "GITPAAS_HTTP_PORT": "8080"}
    return CliRunner().invoke(cli, list(args), env=env, obj=platform)


def test_stack_and_stack_set_read_as_herokus(platform):
    assert run(platform, "stack", "-a", "shop").stdout.splitlines() == [
        "=== shop Available Stacks", "  bookworm", "* trixie", "  forky"]
    said = run(platform, "stack:set", "forky", "-a", "shop")
    assert said.exit_code == 0, said.output
    assert said.stdout.splitlines()[:2] == ["Setting stack to forky... done",
                                           "You will need to redeploy shop for the change to take effect."]
    assert "git commit --allow-empty" in said.stdout
    assert run(platform, "stack", "-a", "shop").stdout.splitlines()[1:] == [
        "  bookworm", "* trixie", "  forky (active on next deploy)"]
    assert "Stack:            trixie (next build: forky)" in run(platform, "apps:info", "-a", "shop").stdout


def test_an_unknown_stack_is_one_line_that_names_the_stacks_there_are(platform):
    refused = run(platform, "stack:set", "heroku-24", "-a", "shop")
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert refused.stderr == " !    no stack 'heroku-24': gitpaas has bookworm, trixie, forky (see `gitpaas stacks`)\n"
    refused = run(platform, "apps:create", "other", "--stack", "jessie")
    assert "no stack 'jessie'" in refused.stderr and not platform.apps.exists("other")
