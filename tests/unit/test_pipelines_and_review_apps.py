"""Pipelines, promotion and review apps on the fakes: what a promotion copies and what it refuses,
each target's outcome on its own, review apps' names, config and timeline from branch pushes, and
the Platform API's pipelines, couplings, promotions and review apps in Heroku's shapes."""

from __future__ import annotations

import json
import time

import pytest
from fakes import SLUG_ID, commit, deploy, make_platform
from schema import validate
from test_api_security import signed_in_client

from gitpaas import operations, pipelines, reviewapps
from gitpaas.api import pipelines as api_pipelines
from gitpaas.api import routes
from gitpaas.errors import BuildFailed, Forbidden, PushRefused, UsageError
from gitpaas.identity import Actor
from gitpaas.output import RecordingOutput
from gitpaas.receive import receive_ref as deploy_push
from gitpaas.release import FAILED, SUCCEEDED
from gitpaas.scheduler import RunResult
from gitpaas.stacks import STACKS
from gitpaas.store.pipelines import PipelineStore, validate_pipeline_name

OWNER, FRIEND, STRANGER = "owner@example.com", "friend@example.com", "stranger@example.com"
ZERO = "0" * 40


@pytest.fixture
def platform(tmp_path):
    made = make_platform(tmp_path)
    for name in ("shop-staging", "shop-prod", "shop-prod-eu"):
        operations.create_app(made, name, owner=OWNER)
    made.apps.config("shop-staging").replace({"WHERE": "staging"})
    made.apps.config("shop-prod").replace({"WHERE": "production"})
    pipelines.create(made, Actor(OWNER), "shop")
    pipelines.couple(made, Actor(OWNER), "shop", "shop-staging", "staging")
    pipelines.couple(made, Actor(OWNER), "shop", "shop-prod", "production")
    return made


def test_pipeline_names_stages_and_couplings_are_checked(platform):
    for bad in ("Shop", "1shop", "shop-", "a" * 31, ""):
        with pytest.raises(UsageError):
            validate_pipeline_name(bad)
    with pytest.raises(UsageError, match="already exists"):
        pipelines.create(platform, Actor(OWNER), "shop")
    with pytest.raises(UsageError, match="already in pipeline shop"):
        pipelines.couple(platform, Actor(OWNER), "shop", "shop-prod", "staging")
    with pytest.raises(UsageError, match="unknown stage"):
        pipelines.couple(platform, Actor(OWNER), "shop", "shop-prod-eu", "qa")
    with pytest.raises(Forbidden):
        pipelines.couple(platform, Actor(STRANGER), "shop", "shop-prod-eu", "production")
    assert pipelines.visible(platform, Actor(STRANGER)) == []
    pipelines.move(platform, Actor(OWNER), "shop-prod", "development")
    assert PipelineStore(platform.settings).get("shop").coupling("shop-prod").stage == "development"
    pipelines.uncouple(platform, Actor(OWNER), "shop-prod")
    assert pipelines.pipeline_of(platform, "shop-prod") is None
    operations.destroy_app(platform, "shop-staging")  # an app destroyed leaves its pipeline
    assert PipelineStore(platform.settings).get("shop").couplings == []
    pipelines.destroy(platform, Actor(OWNER), "shop")
    assert pipelines.visible(platform, Actor(OWNER)) == []


def test_a_promotion_releases_the_same_slug_with_the_targets_own_config(platform):
    staging = deploy(platform, app="shop-staging")
    promotion = pipelines.promote(platform, Actor(OWNER), "shop-staging")
    assert [(t.app, t.status, t.release["version"]) for t in promotion.targets] == [("shop-prod", "succeeded", 1)]
    assert promotion.status == "completed"
    release = platform.apps.releases("shop-prod").get(1)
    assert release.description == "Promote shop-staging v1" and release.status == SUCCEEDED
    assert release.slug == {"id": SLUG_ID} and release.commit == staging.commit
    assert platform.slugs.image_id(release.image) == platform.slugs.image_id(staging.image)
    assert release.config_vars["WHERE"] == "production"
    assert release.promoted_from == {"app": staging.app, "release": {"id": staging.id, "version": 1}}
    assert platform.apps.get("shop-prod").current_release == 1
    job, _ = platform.scheduler.runs[-1]
    assert job.release.app == "shop-prod" and job.release.env["WHERE"] == "production"
    assert PipelineStore(platform.settings).promotion(promotion.id).targets[0].status == "succeeded"


def test_each_target_has_its_own_outcome(platform, monkeypatch):
    pipelines.couple(platform, Actor(OWNER), "shop", "shop-prod-eu", "production")
    deploy(platform, app="shop-staging")
    deploy(platform, app="shop-prod")
    real = platform.scheduler.run_once

    def failing_in_prod(job, on_line, timeout):
        if job.release.app == "shop-prod":
            return RunResult(exit_status=1)
        return real(job, on_line, timeout)
    monkeypatch.setattr(platform.scheduler, "run_once", failing_in_prod)
    promotion = pipelines.promote(platform, Actor(OWNER), "shop-staging")
    outcome = {t.app: (t.status, t.error_message) for t in promotion.targets}
    assert outcome == {"shop-prod": ("failed", "release command exited with status 1"),
                       "shop-prod-eu": ("succeeded", None)}
    assert platform.apps.get("shop-prod").current_release == 1  # kept its old release
    assert platform.apps.releases("shop-prod").get(2).status == FAILED
    assert platform.apps.get("shop-prod-eu").current_release == 1
    assert platform.apps.get("shop-staging").current_release == 1


def test_what_a_promotion_refuses_before_touching_anything(platform):
    with pytest.raises(UsageError, match="no succeeded release to promote"):
        pipelines.begin_promotion(platform, Actor(OWNER), "shop-staging")
    deploy(platform, app="shop-staging")
    deploy(platform, app="shop-prod")
    with pytest.raises(UsageError, match="promotions go downstream"):
        pipelines.begin_promotion(platform, Actor(OWNER), "shop-prod", ["shop-staging"])
    with pytest.raises(UsageError, match="nothing to promote shop-prod to"):
        pipelines.begin_promotion(platform, Actor(OWNER), "shop-prod")
    with pytest.raises(UsageError, match="not in pipeline shop"):
        pipelines.begin_promotion(platform, Actor(OWNER), "shop-staging", ["shop-prod-eu"])
    with pytest.raises(UsageError, match="to itself"):
        pipelines.begin_promotion(platform, Actor(OWNER), "shop-staging", ["shop-staging"])
    built_on = platform.apps.releases("shop-staging").get(1).stack
    other = next(name for name in STACKS if name != built_on)
    operations.set_stack(platform, "shop-prod", other)
    with pytest.raises(UsageError, match=f"on the {other} stack"):
        pipelines.begin_promotion(platform, Actor(OWNER), "shop-staging")
    operations.set_stack(platform, "shop-prod", built_on)
    app = platform.apps.get("shop-prod")
    app.owner = STRANGER
    platform.apps.save(app)
    operations.add_collaborator(platform, "shop-staging", FRIEND)
    with pytest.raises(Forbidden, match="cannot deploy to shop-prod"):
        pipelines.begin_promotion(platform, Actor(OWNER), "shop-staging")
    assert platform.apps.releases("shop-prod").latest().version == 1  # nothing was released
    assert not (PipelineStore(platform.settings).root / "shop" / "promotions").exists()


def test_a_rollback_after_a_promotion_is_the_targets_own(platform):
    from gitpaas import events

    deploy(platform, app="shop-prod", image="gitpaas-test/shop-prod:build-1")
    deploy(platform, app="shop-staging", image="gitpaas-test/shop-staging:build-2")
    pipelines.promote(platform, Actor(OWNER), "shop-staging")
    rolled = events.rollback(platform, "shop-prod", Actor(OWNER), RecordingOutput())
    assert rolled.description == "Rollback to v1" and rolled.promoted_from is None
    assert platform.slugs.image_id(rolled.image) == "sha256:gitpaas-test/shop-prod:build-1"


def test_diff_lists_the_commits_the_next_stage_lacks(platform):
    repo = platform.apps.repo_path("shop-staging")
    _, first = commit(repo, {"a": "1"}, "first")
    subprocess_update(repo, first)
    _, second = commit(repo, {"a": "2"}, "second change")
    subprocess_update(repo, second)
    for app, sha in (("shop-prod", first), ("shop-staging", second)):
        release = deploy(platform, app=app)
        release.commit = sha
        platform.apps.releases(app).save(release)
    source, differences = pipelines.diff(platform, Actor(OWNER), "shop-staging")
    assert source == second
    [difference] = differences
    assert difference.target == "shop-prod" and difference.behind == 0
    assert [(sha, message) for sha, _, _, message in difference.ahead] == [(second, "second change")]


def subprocess_update(repo, sha):
    import subprocess

    subprocess.run(["git", "--git-dir", str(repo), "update-ref", "refs/heads/main", sha], check=True)


# --- review apps -------------------------------------------------------------------------------

def test_review_app_names_are_valid_and_unique():
    assert reviewapps.review_app_name("blog", "feature/Login_Form") == "blog-feature-login-form"
    long = reviewapps.review_app_name("my-long-app-name", "feature/a-very-long-branch-name-indeed")
    other = reviewapps.review_app_name("my-long-app-name", "feature/a-very-long-branch-name-indeed-2")
    assert len(long) == 30 and long != other and long.startswith("my-long-app-name-featur-")
    assert reviewapps.review_app_name("blog", "___") == "blog-branch"


def test_review_config_comes_from_app_json_under_the_pipelines(platform):
    from gitpaas import appjson
    from gitpaas.store.pipelines import ReviewApps

    manifest = appjson.parse(json.dumps({"env": {
        "FIXED": "from-app-json", "SECRET": {"generator": "secret"}, "OPTIONAL": {"required": False},
        "NEEDED": {"description": "set by the team"}}}))
    with pytest.raises(PushRefused, match="requires NEEDED"):
        reviewapps.initial_config(manifest, ReviewApps())
    config = reviewapps.initial_config(manifest, ReviewApps(config={"NEEDED": "yes", "FIXED": "team"}))
    assert config["FIXED"] == "team" and config["NEEDED"] == "yes" and len(config["SECRET"]) == 64
    assert "OPTIONAL" not in config
    for bad in ({"env": []}, {"env": {"1X": "a"}}, {"env": {"A": {"generator": "uuid"}}}, {"env": {"A": 3}},
                {"scripts": {"pr-predestroy": ""}}):
        with pytest.raises(PushRefused):
            appjson.parse(json.dumps(bad))


def _push_branch(platform, files, branch="feature/x", old=ZERO, app="shop-staging"):
    repo = platform.apps.repo_path(app)
    _, new = commit(repo, files)
    output = RecordingOutput()
    release = deploy_push(platform, app, old, new, f"refs/heads/{branch}", output, Actor(OWNER))
    import subprocess

    subprocess.run(["git", "--git-dir", str(repo), "update-ref", f"refs/heads/{branch}", new], check=True)
    return release, new, output


def test_review_apps_live_from_a_branchs_first_push_to_its_deletion(platform):
    manifest = json.dumps({"env": {"A": "1"}, "scripts": {"postdeploy": "./seed", "pr-predestroy": "./goodbye"}})
    files = {"Procfile": "web: ./web\nrelease: ./migrate\n", "app.json": manifest}
    with pytest.raises(PushRefused, match="reviewapps:enable -p shop -a shop-staging"):
        _push_branch(platform, files)
    reviewapps.enable(platform, Actor(OWNER), "shop", "shop-staging")
    first, sha, output = _push_branch(platform, files)
    assert first.app["name"] == "shop-staging-feature-x" and first.version == 1
    app = platform.apps.get("shop-staging-feature-x")
    assert app.review["branch"] == "feature/x" and app.owner == OWNER
    assert platform.apps.config(app.name).get() == {"A": "1"}
    assert PipelineStore(platform.settings).get("shop").coupling(app.name).stage == "review"
    assert any("http://shop-staging-feature-x.localhost:8080" in line for line in output.lines)
    second, sha2, _ = _push_branch(platform, files, old=sha)
    assert second.version == 2
    kinds = [job.type for job, _ in platform.scheduler.runs]
    assert kinds == ["release", "postdeploy", "release"]  # postdeploy once, the release phase on every push
    assert [a.name for a in reviewapps.of_pipeline(platform, PipelineStore(platform.settings).get("shop"))] == [app.name]

    # promoted like any app
    deploy(platform, app="shop-staging")
    output = RecordingOutput()
    assert deploy_push(platform, "shop-staging", sha2, ZERO, "refs/heads/feature/x", output, Actor(OWNER)) is None
    assert [job.type for job, _ in platform.scheduler.runs][-1] == "predestroy"
    assert not platform.apps.exists(app.name)
    assert PipelineStore(platform.settings).get("shop").coupling(app.name) is None
    assert not any(f"/{app.name}:" in tag for tag in platform.slugs.tags)
    # a branch with no review app is simply deleted
    assert deploy_push(platform, "shop-staging", sha2, ZERO, "refs/heads/other", RecordingOutput(), Actor(OWNER)) is None


def test_a_review_app_that_requires_a_var_nobody_set_is_never_made(platform):
    reviewapps.enable(platform, Actor(OWNER), "shop", "shop-staging")
    with pytest.raises(PushRefused, match="reviewapps:config:set NEEDED"):
        _push_branch(platform, {"Procfile": "web: ./web\n", "app.json": json.dumps({"env": {"NEEDED": {}}})})
    assert not platform.apps.exists("shop-staging-feature-x")
    reviewapps.set_config(platform, Actor(OWNER), "shop", {"NEEDED": "ok"}, [])
    release, _, _ = _push_branch(platform, {"Procfile": "web: ./web\n", "app.json": json.dumps({"env": {"NEEDED": {}}})})
    assert release.config_vars["NEEDED"] == "ok"


def test_stale_review_apps_are_destroyed_with_autodestroy_on(platform):
    from datetime import datetime, timedelta, timezone

    reviewapps.enable(platform, Actor(OWNER), "shop", "shop-staging", autodestroy=True, stale_days=2)
    _push_branch(platform, {"Procfile": "web: ./web\n"})
    now = datetime.now(timezone.utc)
    assert reviewapps.destroy_stale(platform, now=now + timedelta(days=1)) == []
    assert reviewapps.destroy_stale(platform, now=now + timedelta(days=3)) == ["shop-staging-feature-x"]
    assert not platform.apps.exists("shop-staging-feature-x")


def test_main_is_still_not_deleted_and_tags_are_refused(platform):
    with pytest.raises(PushRefused, match="not supported"):
        deploy_push(platform, "shop-staging", "a" * 40, ZERO, "refs/heads/main", RecordingOutput(), Actor(OWNER))
    with pytest.raises(PushRefused, match="refs/tags/v1"):
        deploy_push(platform, "shop-staging", ZERO, "a" * 40, "refs/tags/v1", RecordingOutput(), Actor(OWNER))


# --- the Platform API --------------------------------------------------------------------------

@pytest.fixture
def client(platform, monkeypatch):
    for module in (routes, api_pipelines):
        monkeypatch.setattr(module, "platform_of", lambda request: platform)
    return signed_in_client(platform, (OWNER, FRIEND, STRANGER))


def test_pipelines_and_couplings_in_herokus_shapes(client, platform):
    created = client.request("POST", "/pipelines", user=OWNER, json_body={
        "name": "blog", "owner": {"id": "x", "type": "user"}, "generation": {"name": "cedar"}})
    assert created.status == 201
    validate("pipeline", created.json(), require_all=False)
    listed = client.request("GET", "/pipelines?eq[name]=shop", user=OWNER).json()
    assert isinstance(listed, list), listed
    assert [p["name"] for p in listed] == ["shop"]
    validate("pipeline", listed[0], require_all=False)
    assert client.request("GET", "/pipelines", user=STRANGER).json() == []
    shop = listed[0]["id"]
    couplings = client.request("GET", f"/pipelines/{shop}/pipeline-couplings", user=OWNER).json()
    for coupling in couplings:
        validate("pipeline-coupling", coupling)
    assert [c["stage"] for c in couplings] == ["staging", "production"]
    by_app = client.request("GET", "/apps/shop-prod/pipeline-couplings", user=OWNER).json()
    assert by_app["pipeline"] == {"id": shop, "name": "shop"}
    app_id = platform.apps.get("shop-prod-eu").id
    added = client.request("POST", "/pipeline-couplings", user=OWNER,
                           json_body={"app": app_id, "pipeline": shop, "stage": "production"})
    assert added.status == 201 and added.json()["app"]["name"] == "shop-prod-eu"
    ids = [c["app"]["id"] for c in client.request("GET", f"/pipelines/{shop}/pipeline-couplings", user=OWNER).json()]
    apps = client.request("POST", "/filters/apps", user=OWNER, json_body={"in": {"id": ids[:2]}}).json()
    assert sorted(a["name"] for a in apps) == ["shop-prod", "shop-staging"]
    assert client.request("POST", "/filters/apps", user=STRANGER, json_body={"in": {"id": ids}}).json() == []
    moved = client.request("PATCH", f"/pipeline-couplings/{added.json()['id']}", user=OWNER,
                           json_body={"stage": "staging"})
    assert moved.json()["stage"] == "staging"
    assert client.request("DELETE", f"/pipeline-couplings/{added.json()['id']}", user=OWNER).status == 200
    assert client.request("GET", "/apps/shop-prod-eu/pipeline-couplings", user=OWNER).status == 404
    assert client.request("GET", "/users/~", user=OWNER).json()["email"] == OWNER
    feature = client.request("GET", "/account/features/dashboard-repositories-api", user=OWNER).json()
    assert feature["enabled"] is False
    validate("account-feature", feature)
    assert client.request("DELETE", f"/pipelines/{created.json()['id']}", user=OWNER,
                          json_body={"name": "blog"}).status == 200


def test_a_promotion_through_the_api_and_its_targets(client, platform):
    staging = deploy(platform, app="shop-staging")
    shop = PipelineStore(platform.settings).get("shop")
    body = {"pipeline": {"id": shop.id}, "source": {"app": {"id": platform.apps.get("shop-staging").id}},
            "targets": [{"app": {"id": platform.apps.get("shop-prod").id}}]}
    created = client.request("POST", "/pipeline-promotions", user=OWNER, json_body=body)
    assert created.status == 201, created.json()
    promotion = created.json()
    validate("pipeline-promotion", promotion)
    assert promotion["source"]["release"]["id"] == staging.id

    def targets():
        return client.request("GET", f"/pipeline-promotions/{promotion['id']}/promotion-targets", user=OWNER).json()
    deadline = time.monotonic() + 10
    while targets()[0]["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    [target] = targets()
    validate("pipeline-promotion-target", target)
    assert target["status"] == "succeeded"
    assert target["release"]["id"] == platform.apps.releases("shop-prod").get(1).id
    assert client.request("GET", f"/pipeline-promotions/{promotion['id']}", user=OWNER).json()["status"] == "completed"
    assert client.request("GET", f"/pipeline-promotions/{promotion['id']}", user=STRANGER).status == 404
    slug = client.request("GET", f"/apps/shop-prod/slugs/{SLUG_ID}", user=OWNER).json()
    validate("slug", slug)
    assert slug["commit"] == staging.commit
    upstream = {**body, "source": {"app": {"id": platform.apps.get("shop-prod").id}},
                "targets": [{"app": {"id": platform.apps.get("shop-staging").id}}]}
    refused = client.request("POST", "/pipeline-promotions", user=OWNER, json_body=upstream)
    assert refused.status == 400 and "downstream" in refused.json()["message"]


def test_review_apps_and_their_config_through_the_api(client, platform):
    pipelines.couple(platform, Actor(OWNER), "shop", "shop-prod-eu", "staging")
    shop = PipelineStore(platform.settings).get("shop")
    ambiguous = client.request("POST", f"/pipelines/{shop.id}/review-app-config", user=OWNER,
                               json_body={"pipeline": shop.id})
    assert ambiguous.status == 422 and "which app" in ambiguous.json()["message"]
    pipelines.uncouple(platform, Actor(OWNER), "shop-prod-eu")
    chosen = client.request("POST", f"/pipelines/{shop.id}/review-app-config", user=OWNER,
                            json_body={"pipeline": shop.id})  # what the Heroku CLI sends: its earliest stage's app
    assert chosen.status == 200 and chosen.json()["base_name"] == "shop-staging"
    enabled = client.request("PATCH", f"/pipelines/{shop.id}/review-app-config", user=OWNER,
                             json_body={"pipeline": shop.id, "app": "shop-staging", "automatic_review_apps": True,
                                        "destroy_stale_apps": True})
    assert enabled.status == 200, enabled.json()
    validate("review-app-config", enabled.json(), require_all=False)
    assert enabled.json()["destroy_stale_apps"] is True and enabled.json()["base_name"] == "shop-staging"
    _push_branch(platform, {"Procfile": "web: ./web\n"})
    [review] = client.request("GET", f"/pipelines/{shop.id}/review-apps", user=OWNER).json()
    validate("review-app", review)
    assert review["branch"] == "feature/x" and review["status"] == "created"
    assert client.request("GET", f"/review-apps/{review['id']}", user=OWNER).json() == review
    assert client.request("GET", "/apps/shop-staging-feature-x/review-app", user=OWNER).json() == review
    kept_on = client.request("PATCH", f"/pipelines/{shop.id}/review-app-config", user=OWNER,
                             json_body={"pipeline": shop.id, "destroy_stale_apps": False})  # disable --no-autodestroy
    assert kept_on.json()["automatic_review_apps"] is True and kept_on.json()["destroy_stale_apps"] is False
    assert client.request("DELETE", f"/pipelines/{shop.id}/review-app-config", user=OWNER,
                          json_body={"pipeline": shop.id}).status == 200
    assert not PipelineStore(platform.settings).get("shop").review.enabled


def test_a_review_apps_add_ons_come_from_app_json_and_go_with_it_without_a_final_backup(platform):
    from gitpaas.addons.store import AddonStore, BackupStore

    reviewapps.enable(platform, Actor(OWNER), "shop", "shop-staging")
    manifest = json.dumps({"addons": ["heroku-postgresql", {"plan": "heroku-redis", "as": "CACHE"}]})
    release, sha, output = _push_branch(platform, {"Procfile": "web: ./web\n", "app.json": manifest})
    review = release.app["name"]
    addons = AddonStore(platform.settings).of_app(review)
    assert sorted(a.service for a in addons) == ["postgresql", "redis"]
    assert {"DATABASE_URL", "CACHE_URL"} <= set(release.config_vars)
    deploy_push(platform, "shop-staging", sha, ZERO, "refs/heads/feature/x", RecordingOutput(), Actor(OWNER))
    assert AddonStore(platform.settings).of_app(review) == []
    assert BackupStore(platform.settings).list() == []  # disposable: no final backup kept
    assert all(addon.name not in platform.scheduler.addons for addon in addons)


# --- what a review of the change found ---------------------------------------------------------

def test_a_later_app_of_the_same_name_never_gets_an_earlier_ones_review_apps(platform):
    reviewapps.enable(platform, Actor(OWNER), "shop", "shop-staging")
    first, _, _ = _push_branch(platform, {"Procfile": "web: ./web\n"})
    old_id = platform.apps.get(first.app["name"]).id
    reviewapps.destroy_with_review_apps(platform, "shop-staging")  # its review apps go with it
    assert not platform.apps.exists(first.app["name"])
    operations.create_app(platform, "shop-staging", owner=STRANGER)
    pipelines.create(platform, Actor(STRANGER), "other")
    pipelines.couple(platform, Actor(STRANGER), "other", "shop-staging", "development")
    reviewapps.enable(platform, Actor(STRANGER), "other", "shop-staging")
    again, _, _ = _push_branch(platform, {"Procfile": "web: ./web\n"})
    app = platform.apps.get(again.app["name"])
    assert app.id != old_id and app.owner == STRANGER and app.review["pipeline_name"] == "other"


def test_a_collaborator_on_one_app_cannot_change_the_pipeline_or_see_the_others_releases(platform):
    operations.add_collaborator(platform, "shop-prod", FRIEND)
    deploy(platform, app="shop-staging")
    deploy(platform, app="shop-prod")
    operations.create_app(platform, "friends-app", owner=FRIEND)
    friend = Actor(FRIEND)
    assert [p.name for p in pipelines.visible(platform, friend)] == ["shop"]
    for attempt in (lambda: reviewapps.set_config(platform, friend, "shop", {"A": "1"}, []),
                    lambda: reviewapps.config_of(platform, friend, "shop"),
                    lambda: reviewapps.enable(platform, friend, "shop", "shop-prod"),
                    lambda: reviewapps.set_autodestroy(platform, friend, "shop", True, 1),
                    lambda: pipelines.couple(platform, friend, "shop", "friends-app", "production"),
                    lambda: pipelines.destroy(platform, friend, "shop")):
        with pytest.raises(Forbidden):
            attempt()
    shown = {a["app"]: a["release"] for a in pipelines.record(platform, PipelineStore(platform.settings).get("shop"),
                                                                friend)["apps"]}
    assert shown["shop-staging"] is None and shown["shop-prod"]["version"] == 1
    pipelines.uncouple(platform, friend, "shop-prod")  # their own app they may take out


def test_a_review_app_made_for_a_refused_branch_is_removed_with_it(platform):
    reviewapps.enable(platform, Actor(OWNER), "shop", "shop-staging")
    platform.builders[0].failure = "compile failed"
    with pytest.raises(BuildFailed):
        _push_branch(platform, {"Procfile": "web: ./web\n"})
    assert not platform.apps.exists("shop-staging-feature-x")
    assert PipelineStore(platform.settings).get("shop").coupling("shop-staging-feature-x") is None


def test_one_branch_per_push(platform, tmp_path):
    import io

    from gitpaas.hook import pre_receive
    from gitpaas.output import StreamOutput

    stream = io.StringIO()
    status = pre_receive([f"{ZERO} {'a' * 40} refs/heads/main", f"{ZERO} {'b' * 40} refs/heads/feature"], platform,
                         platform.apps.repo_path("shop-staging"), StreamOutput(stream))
    assert status == 1 and "one branch per push, and this one updates main, feature" in stream.getvalue()
    assert platform.apps.releases("shop-staging").latest() is None


def test_app_json_env_values_follow_the_config_var_rules():
    from gitpaas import appjson

    with pytest.raises(PushRefused, match="app.json: env"):
        appjson.parse(json.dumps({"env": {"A": "x\u0000y"}}))
    with pytest.raises(PushRefused, match="app.json: env"):
        appjson.parse(json.dumps({"env": {"A": "x" * 40_000}}))


def test_orphaned_review_apps_go_at_the_next_prune_whatever_their_parent_left(platform):
    import shutil

    reviewapps.enable(platform, Actor(OWNER), "shop", "shop-staging")
    _push_branch(platform, {"Procfile": "web: ./web\n", "app.json": json.dumps({"scripts": {"pr-predestroy": "x"}})})
    shutil.rmtree(platform.apps.repo_path("shop-staging"))  # its repository unreadable
    app = platform.apps.get("shop-staging-feature-x")
    app.review["parent_id"] = "gone"
    platform.apps.save(app)
    output = RecordingOutput()
    assert reviewapps.destroy_stale(platform, output) == ["shop-staging-feature-x"]
    assert not platform.apps.exists("shop-staging-feature-x")


def test_a_promotion_the_server_stopped_is_settled_when_it_starts(platform):
    deploy(platform, app="shop-staging")
    plan = pipelines.begin_promotion(platform, Actor(OWNER), "shop-staging")
    assert pipelines.settle_promotions(platform) == [plan.promotion.id]
    settled = PipelineStore(platform.settings).promotion(plan.promotion.id)
    assert settled.status == "completed" and settled.targets[0].status == "failed"
    assert "interrupted" in settled.targets[0].error_message
    assert pipelines.settle_promotions(platform) == []


def test_a_review_app_promotes_to_the_next_stage_that_has_apps(platform):
    reviewapps.enable(platform, Actor(OWNER), "shop", "shop-staging")
    release, _, _ = _push_branch(platform, {"Procfile": "web: ./web\n"})
    promotion = pipelines.promote(platform, Actor(OWNER), release.app["name"])
    assert [(t.app, t.status) for t in promotion.targets] == [("shop-staging", "succeeded")]
