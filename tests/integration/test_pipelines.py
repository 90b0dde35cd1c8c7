"""Pipelines and review apps against the real engine, git and the router: a promotion releases the
very same image with the target's own config, a failed release command downstream leaves the target
serving its old release, and a branch's review app lives from its first push to its deletion."""

from __future__ import annotations

import json
import subprocess

from gitpaas import labels
from gitpaas.platform import Platform

WEB = "web: python3 /app/server.py\n"
#: prints the app's own GREETING; fails where BREAK_ON is set to the slug's BODY
RELEASE = ('release: echo "greeting is $GREETING"; '
           'test -z "$BREAK_ON" || test "$(cat /app/BODY)" != "$BREAK_ON"\n')


def body(home, app: str) -> str:
    return home.get(app).text.split(" from ")[0]


def test_promotion_releases_the_same_slug_with_each_apps_own_config(home, docker_client):
    for app in ("shop-staging", "shop-prod"):
        home.create_app(app)
    home.gitpaas("pipelines:create", "shop")
    home.gitpaas("pipelines:add", "shop", "-a", "shop-staging", "--stage", "staging")
    home.gitpaas("pipelines:add", "shop", "-a", "shop-prod", "--stage", "production")
    home.gitpaas("config:set", "GREETING=hello-from-staging", "-a", "shop-staging")
    home.gitpaas("config:set", "GREETING=hello-from-production", "BREAK_ON=three", "-a", "shop-prod")

    refused = home.gitpaas("pipelines:promote", "-a", "shop-staging", check=False)
    assert refused.returncode == 2 and "no succeeded release to promote" in refused.stderr
    assert "Traceback" not in refused.stderr

    pushed = home.push("shop-staging", "web", files={"Procfile": WEB + RELEASE, "BODY": "one"})
    assert pushed.returncode == 0, pushed.stderr
    assert "greeting is hello-from-staging" in pushed.stderr

    promoted = home.gitpaas("pipelines:promote", "-a", "shop-staging")
    assert "greeting is hello-from-production" in promoted.stdout  # the release phase ran with production's config
    assert "hello-from-staging" not in promoted.stdout
    assert "Building" not in promoted.stdout and "Promotion successful" in promoted.stdout
    assert "shop-prod: succeeded v1" in promoted.stdout
    assert not (home.path / "apps" / "shop-prod" / "builds").exists()  # no build on the target
    staging, production = home.release("shop-staging", 1), home.release("shop-prod", 1)
    assert production["description"] == "Promote shop-staging v1"
    assert production["slug"] == staging["slug"] and production["commit"] == staging["commit"]
    assert production["promoted_from"] == {"app": staging["app"],
                                           "release": {"id": staging["id"], "version": 1}}
    assert docker_client.images.get(production["image"]).id == docker_client.images.get(staging["image"]).id
    assert body(home, "shop-prod") == "one" and body(home, "shop-staging") == "one"
    prod_output = (home.path / "apps" / "shop-prod" / "releases" / "v1" / "output.log").read_text()
    assert "greeting is hello-from-production" in prod_output

    info = home.json("pipelines:info", "shop")
    assert [(a["stage"], a["app"]) for a in info["apps"]] == [("staging", "shop-staging"), ("production", "shop-prod")]
    diff = home.gitpaas("pipelines:diff", "-a", "shop-staging")
    assert "up to date with shop-prod" in diff.stdout

    assert home.push("shop-staging", "web", files={"Procfile": WEB + RELEASE, "BODY": "two"},
                     message="second change").returncode == 0
    diff = home.gitpaas("pipelines:diff", "-a", "shop-staging")
    assert "ahead of shop-prod by 1 commit" in diff.stdout and "second change" in diff.stdout
    assert "shop-prod: succeeded v2" in home.gitpaas("pipelines:promote", "-a", "shop-staging").stdout
    assert body(home, "shop-prod") == "two"

    # A rollback on the target goes back to the target's own previous release.
    home.gitpaas("rollback", "-a", "shop-prod")
    assert home.release("shop-prod", 3)["description"] == "Rollback to v1"
    assert body(home, "shop-prod") == "one"

    # A failing release command downstream: production keeps serving, staging is untouched.
    assert home.push("shop-staging", "web", files={"Procfile": WEB + RELEASE, "BODY": "three"}).returncode == 0
    staging_before = home.json("apps:info", "-a", "shop-staging")["current_release"]
    failed = home.gitpaas("pipelines:promote", "-a", "shop-staging", check=False)
    assert failed.returncode == 7
    assert "shop-prod: failed v4: release command exited with status 1" in failed.stdout
    assert home.release("shop-prod", 4)["status"] == "failed"
    assert home.json("apps:info", "-a", "shop-prod")["current_release"] == "v3"
    assert body(home, "shop-prod") == "one" and body(home, "shop-staging") == "three"
    assert home.json("apps:info", "-a", "shop-staging")["current_release"] == staging_before

    # Promoting upstream is refused, and so is a target on another stack.
    upstream = home.gitpaas("pipelines:promote", "-a", "shop-prod", "--to", "shop-staging", check=False)
    assert upstream.returncode == 2 and "promotions go downstream" in upstream.stderr

    # Destroying the source keeps the promoted slug the target runs.
    home.gitpaas("apps:destroy", "-a", "shop-staging", "--confirm", "shop-staging")
    assert docker_client.images.get(home.release("shop-prod", 1)["image"])
    home.gitpaas("ps:restart", "-a", "shop-prod")
    assert body(home, "shop-prod") == "one"


APP_JSON = {
    "env": {"FIXED": "from-app-json", "SECRET_KEY": {"generator": "secret"}, "NEEDED": {"description": "required"}},
    "scripts": {"postdeploy": "echo postdeploy ran for $FIXED", "pr-predestroy": "echo predestroy ran for $NEEDED"},
}


def test_review_app_lives_from_a_branch_push_to_its_deletion(home, docker_client):
    home.create_app("blog")
    files = {"Procfile": WEB + 'release: echo "review release of $(cat /app/BODY)"\n', "app.json": json.dumps(APP_JSON)}
    assert home.push("blog", "web", files={**files, "BODY": "main"}).returncode == 0

    refused = home.push("blog", "web", files={**files, "BODY": "b1"}, branch="feature/Login-Form")
    assert refused.returncode != 0 and "reviewapps:enable" in refused.stderr

    home.gitpaas("pipelines:create", "blog", "-a", "blog", "--stage", "development")
    home.gitpaas("reviewapps:enable", "-p", "blog", "-a", "blog", "--autodeploy")
    missing = home.push("blog", "web", files={**files, "BODY": "b1"}, branch="feature/Login-Form")
    assert missing.returncode != 0 and "app.json's env requires NEEDED" in missing.stderr
    assert not (home.path / "apps" / "blog-feature-login-form").exists()  # nothing made

    home.gitpaas("reviewapps:config:set", "NEEDED=from-pipeline", "FIXED=overridden", "-p", "blog")
    outputs = []
    for number in (1, 2, 3):
        pushed = home.push("blog", "web", files={**files, "BODY": f"b{number}"}, branch="feature/Login-Form")
        assert pushed.returncode == 0, pushed.stderr
        outputs.append(pushed.stderr)
        assert f"review release of b{number}" in pushed.stderr  # the release phase on every push
    review = "blog-feature-login-form"
    assert "Creating review app blog-feature-login-form" in outputs[0]
    assert f"http://{review}.localhost:{home.port}" in outputs[0]
    assert [o.count("postdeploy ran for overridden") for o in outputs] == [1, 0, 0]
    assert body(home, review) == "b3" and body(home, "blog") == "main"
    env = dict(line.split("=", 1) for line in home.get(review, "/env").text.splitlines() if "=" in line)
    assert env["NEEDED"] == "from-pipeline" and env["FIXED"] == "overridden" and len(env["SECRET_KEY"]) == 64
    listed = home.json("reviewapps", "-p", "blog")
    assert [(a["app"], a["branch"], a["current_release"]) for a in listed] == [(review, "feature/Login-Form", 3)]
    assert [(a["stage"], a["app"]) for a in home.json("pipelines:info", "blog")["apps"]] == [
        ("review", review), ("development", "blog")]

    deleted = subprocess.run(["git", "push", str(home.path / "apps" / "blog" / "repo.git"), ":refs/heads/feature/Login-Form"],
                             cwd=home.work / "blog", capture_output=True, text=True, env=home.env)
    assert deleted.returncode == 0, deleted.stderr
    assert "predestroy ran for from-pipeline" in deleted.stderr
    objects = home.docker_objects(docker_client, review)
    assert not any(objects.values()), objects
    assert not docker_client.images.list(name=home.settings.image_repository(review))
    assert not Platform(home.settings).router.app_config_path(review).exists()
    assert not (home.path / "apps" / review).exists()
    assert home.get(review).status_code == 404
    assert review not in [a["name"] for a in home.json("apps")]
    assert home.json("reviewapps", "-p", "blog") == []
    assert [a["app"] for a in home.json("pipelines:info", "blog")["apps"]] == ["blog"]
    assert body(home, "blog") == "main"
    assert docker_client.containers.list(filters=labels.filters({labels.HOME: str(home.path), labels.APP: "blog"}))
