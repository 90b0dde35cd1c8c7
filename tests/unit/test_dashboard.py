"""The dashboard in-process, on the fakes (Starlette's TestClient over the whole API app): the
session and its cookie, CSRF on every change, who sees what, the pages' content, the actions
through the same events as the CLI, the live streams, and the release diff. The same behaviours
in a real browser against the real engine: tests/integration/test_dashboard_browser.py."""

from __future__ import annotations

import re
import threading
import time

import pytest
from fakes import deploy, make_platform
from fastapi.testclient import TestClient

from gitpaas import events, operations, releasediff
from gitpaas.accounts import Accounts
from gitpaas.api import core
from gitpaas.api.application import create_app
from gitpaas.dashboard import pages
from gitpaas.errors import BuildFailed
from gitpaas.identity import Actor
from gitpaas.output import RecordingOutput
from gitpaas.release import Release

OWNER = "owner@example.com"
STRANGER = "stranger@example.com"


@pytest.fixture
def platform(tmp_path, monkeypatch):
    made = make_platform(tmp_path)
    operations.create_app(made, "shop", owner=OWNER)
    operations.create_app(made, "hidden", owner=STRANGER)
    made.apps.config("shop").replace({"GREETING": "hello", "SECRET_KEY": "s3cr3t-value"})
    deploy(made)
    for module in (core, pages):
        monkeypatch.setattr(module, "platform_of", lambda request: made)
    return made


@pytest.fixture
def tokens(platform):
    accounts = Accounts(platform.settings)
    made = {}
    for email in (OWNER, STRANGER):
        accounts.add_user(email)
        made[email] = accounts.create_token(email)[1]
    return made


def browser(platform, base_url: str = "http://testserver") -> TestClient:
    return TestClient(create_app(platform.settings), base_url=base_url, follow_redirects=False)


def login(client: TestClient, token: str, email: str = "", next_path: str = "/dashboard/"):
    form = client.get("/dashboard/login").text
    nonce = re.search(r'name="nonce" value="([^"]+)"', form)[1]
    return client.post("/dashboard/login", data={"nonce": nonce, "token": token, "email": email, "next": next_path})


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page)[1]


@pytest.fixture
def owner(platform, tokens) -> TestClient:
    client = browser(platform)
    assert login(client, tokens[OWNER]).status_code == 303
    return client


# --- the session ---------------------------------------------------------------------------------

def test_a_page_without_a_session_sends_the_browser_to_log_in_and_back(platform, tokens):
    client = browser(platform)
    answer = client.get("/dashboard/apps/shop")
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/login?next=/dashboard/apps/shop"
    assert client.get("/").headers["location"] == "/dashboard/"
    logged = login(client, tokens[OWNER], next_path="/dashboard/apps/shop")
    assert logged.headers["location"] == "/dashboard/apps/shop"
    cookie = next(v for k, v in logged.headers.multi_items() if k == "set-cookie" and v.startswith(pages.COOKIE))
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "path=/dashboard" in flags
    assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back
    assert tokens[OWNER] not in cookie, "the cookie is a session of its own, not the API token"
    assert client.get("/dashboard/apps/shop").status_code == 200


def test_over_https_the_session_cookie_is_secure_and_host_only(platform, tokens):
    client = browser(platform, base_url="https://testserver")
    cookie = next(v for k, v in login(client, tokens[OWNER]).headers.multi_items()
                  if k == "set-cookie" and v.startswith("__Host-" + pages.COOKIE))
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "secure" in flags and "httponly" in flags and "path=/" in flags and not any(f.startswith("domain") for f in flags)
    assert client.get("/dashboard/").status_code == 200


def test_a_session_cookie_planted_beside_ones_own_is_trusted_by_neither(platform, tokens):
    """Another host of the domain (an app, beside api.DOMAIN) can add a cookie of the same name for
    the whole domain: the browser then sends both, and the dashboard takes neither."""
    owner, stranger = browser(platform), browser(platform)
    login(owner, tokens[OWNER])
    login(stranger, tokens[STRANGER])
    mine, planted = owner.cookies[pages.COOKIE], stranger.cookies[pages.COOKIE]
    both = browser(platform).get("/dashboard/", headers={"cookie": f"{pages.COOKIE}={mine}; {pages.COOKIE}={planted}"})
    assert both.status_code == 303 and "/dashboard/login" in both.headers["location"]


def test_a_wrong_token_or_another_accounts_email_is_refused_in_one_line(platform, tokens):
    client = browser(platform)
    for token, email in (("gp_not-a-token", ""), (tokens[OWNER], STRANGER), ("", "")):
        answer = login(client, token, email)
        assert answer.status_code == 401
        assert pages.COOKIE not in answer.headers.get("set-cookie", "")
        if token:
            assert "That token is not valid" in answer.text
    assert client.get("/dashboard/").status_code == 303


def test_a_login_form_from_another_site_is_refused(platform, tokens):
    client = browser(platform)
    nonce = re.search(r'name="nonce" value="([^"]+)"', client.get("/dashboard/login").text)[1]
    for data, headers in (({"nonce": "forged", "token": tokens[OWNER]}, {}),
                          ({"nonce": nonce, "token": tokens[OWNER]}, {"origin": "https://evil.example"})):
        answer = client.post("/dashboard/login", data=data, headers=headers)
        assert answer.status_code == 403 and pages.COOKIE not in answer.headers.get("set-cookie", "")
    assert client.get("/dashboard/").status_code == 303


def test_login_goes_back_to_the_page_asked_for_with_its_query(platform, tokens):
    client = browser(platform)
    asked = client.get("/dashboard/apps/shop/diff?older=1&newer=1")
    assert asked.headers["location"] == "/dashboard/login?next=/dashboard/apps/shop/diff%3Folder%3D1%26newer%3D1"
    logged = login(client, tokens[OWNER], next_path="/dashboard/apps/shop/diff?older=1&newer=1")
    assert logged.headers["location"] == "/dashboard/apps/shop/diff?older=1&newer=1"
    for elsewhere in ("https://evil.example/", "//evil.example/dashboard/", "/dashboard/\\evil"):
        client.cookies.clear()
        assert login(client, tokens[OWNER], next_path=elsewhere).headers["location"] == "/dashboard/"


def test_logging_out_or_revoking_the_token_ends_the_session(platform, tokens, owner):
    page = owner.get("/dashboard/").text
    secret = owner.cookies[pages.COOKIE]
    assert owner.post("/dashboard/logout", data={"csrf": csrf_of(page)}).status_code == 303
    stolen = browser(platform)
    stolen.cookies.set(pages.COOKIE, secret)
    assert stolen.get("/dashboard/").status_code == 303, "a logged-out session's cookie opens nothing"

    login(owner, tokens[OWNER])
    accounts = Accounts(platform.settings)
    accounts.revoke_token(accounts.tokens(OWNER)[0]["id"])
    assert owner.get("/dashboard/").status_code == 303


# --- CSRF and actions ----------------------------------------------------------------------------

def test_every_change_needs_the_sessions_csrf_token_and_a_confirmation(platform, owner):
    page = owner.get("/dashboard/apps/shop").text
    token = csrf_of(page)
    before = platform.apps.releases("shop").versions()
    for data, headers in (({"key": "X", "value": "1"}, {}),
                          ({"key": "X", "value": "1", "csrf": "wrong", "confirmed": "yes"}, {}),
                          ({"key": "X", "value": "1", "csrf": token, "confirmed": "yes"},
                           {"origin": "https://evil.example"})):
        answer = owner.post("/dashboard/apps/shop/actions/config-set", data=data, headers=headers)
        assert answer.status_code == 403 and "out of date or came from another site" in answer.text
    asked = owner.post("/dashboard/apps/shop/actions/config-set", data={"key": "X", "value": "1", "csrf": token})
    assert asked.status_code == 200 and "Set X on shop?" in asked.text and "A config change is a release" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert platform.apps.releases("shop").versions() == before and "X" not in platform.apps.config("shop").get()


def _finished(platform, app: str, version: int) -> Release:
    for _ in range(200):
        release = platform.apps.releases(app).get(version)
        if release.status != "pending":
            return release
        time.sleep(0.02)
    raise AssertionError(f"v{version} stayed pending")


def test_config_set_rollback_and_retry_from_the_page_make_releases_and_show_them(platform, owner):
    token = csrf_of(owner.get("/dashboard/apps/shop").text)
    done = owner.post("/dashboard/apps/shop/actions/config-set",
                      data={"key": "COLOR", "value": "blue", "csrf": token, "confirmed": "yes"})
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/apps/shop/releases/v2?created=1"
    release = _finished(platform, "shop", 2)
    assert (release.status, release.description, release.config_vars["COLOR"]) == ("succeeded", "Set COLOR config vars", "blue")
    shown = owner.get(done.headers["location"]).text
    assert "You made v2" in shown and "Set COLOR config vars" in shown

    back = owner.post("/dashboard/apps/shop/actions/rollback", data={"version": "1", "csrf": token, "confirmed": "yes"})
    assert back.headers["location"] == "/dashboard/apps/shop/releases/v3?created=1"
    rolled = _finished(platform, "shop", 3)
    assert rolled.description == "Rollback to v1" and "COLOR" not in rolled.config_vars
    assert rolled.user["email"] == OWNER, "the release names who clicked"

    retried = owner.post("/dashboard/apps/shop/actions/retry", data={"csrf": token, "confirmed": "yes"})
    assert _finished(platform, "shop", 4).description == "Retry of v3"
    assert retried.status_code == 303

    same = owner.post("/dashboard/apps/shop/actions/config-set",
                      data={"key": "GREETING", "value": "hello", "csrf": token, "confirmed": "yes"})
    assert same.headers["location"] == "/dashboard/apps/shop?done=unchanged"
    assert "Nothing changed" in owner.get(same.headers["location"]).text


def test_scale_and_restart_from_the_page_change_the_processes_without_a_release(platform, owner):
    token = csrf_of(owner.get("/dashboard/apps/shop").text)
    scaled = owner.post("/dashboard/apps/shop/actions/scale",
                        data={"type": "web", "quantity": "3", "csrf": token, "confirmed": "yes"})
    assert scaled.headers["location"] == "/dashboard/apps/shop?done=scaled"
    assert platform.apps.get("shop").formation["web"] == 3
    page = owner.get("/dashboard/apps/shop").text
    assert "3</strong> up of <strong>3" in page
    assert owner.post("/dashboard/apps/shop/actions/restart",
                      data={"csrf": token, "confirmed": "yes"}).headers["location"].endswith("done=restarted")
    assert platform.apps.releases("shop").versions() == [1]



def test_bad_input_is_refused_before_the_confirmation_and_kept_in_its_field(platform, owner):
    token = csrf_of(owner.get("/dashboard/apps/shop").text)
    for action, data, message in (
            ("scale", {"type": "nope", "quantity": "2"}, "shop has no process type &#39;nope&#39;"),
            ("scale", {"type": "web", "quantity": "lots"}, "whole number"),
            ("scale", {"type": "web", "quantity": "5000"}, "must be between 0 and"),
            ("config-set", {"key": "BAD KEY", "value": "x"}, "BAD KEY"),
            ("config-set", {"key": "OK", "value": "a\x00b"}, "OK"),
            ("config-unset", {"key": "NOT_THERE"}, "shop has no config var NOT_THERE"),
            ("rollback", {"version": "99"}, "v99"),
            ("restart", {"target": "nope"}, "no process type")):
        answer = owner.post(f"/dashboard/apps/shop/actions/{action}", data={**data, "csrf": token})
        assert answer.status_code in (400, 404, 422) and message in answer.text, (action, data, answer.text[-400:])
        assert 'role="alert">Not done:' in answer.text and "Confirm" not in answer.text
        assert "Traceback" not in answer.text and str(platform.settings.home) not in answer.text
    kept = owner.post("/dashboard/apps/shop/actions/config-set", data={"key": "BAD KEY", "value": "typed", "csrf": token})
    assert 'value="BAD KEY"' in kept.text and 'value="typed"' in kept.text, "what was typed is not lost"
    assert platform.apps.releases("shop").versions() == [1] and platform.apps.get("shop").formation["web"] == 1
    assert owner.post("/dashboard/apps/shop/actions/explode", data={"csrf": token}).status_code == 404


# --- what each page shows ------------------------------------------------------------------------

def test_the_app_list_shows_only_the_users_apps_with_release_and_processes(platform, owner):
    page = owner.get("/dashboard/").text
    assert 'data-app="shop"' in page and 'data-app="hidden"' not in page
    row = page.split('data-app="shop"')[1].split("</tr>")[0]
    assert "http://shop.localhost:8080" in row and "<td>v1</td>" in row
    assert "succeeded" in row and "1 / 1 up" in row


def test_someone_elses_app_is_a_plain_not_found_page(platform, owner):
    for path in ("/dashboard/apps/hidden", "/dashboard/apps/nope", "/dashboard/apps/hidden/releases/v1",
                 "/dashboard/apps/hidden/diff?older=1&newer=1"):
        answer = owner.get(path)
        assert answer.status_code == 404 and "Couldn&#39;t find that app." in answer.text, path
        assert answer.headers["content-type"].startswith("text/html")
    assert owner.get("/dashboard/no/such/page").status_code == 404


def test_the_app_page_shows_the_timeline_processes_config_masked_and_the_teaching(platform, owner):
    events.change_config(platform, "shop", Actor(OWNER), RecordingOutput(), set_values={"COLOR": "blue"})
    page = owner.get("/dashboard/apps/shop")
    assert page.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self'")
    assert page.headers["x-frame-options"] == "DENY"
    text = page.text
    assert text.index('id="v2"') < text.index('id="v1"'), "newest first"
    assert 'data-status="succeeded"' in text and "Set COLOR config vars" in text
    assert 'class="seg seg-release"' in text and 'data-phase="swap" data-state="done"' in text
    assert 'data-process="web.1" data-state="up"' in text
    assert 's3cr3t-value</code></details>' in text and "••••••" in text, "values hidden until revealed"
    assert "throwaway container" in text and "A config change is a release" in text
    assert "$GITPAAS_HOME/apps/shop/releases/vN/" in text
    assert str(platform.settings.home) not in text
    assert 'data-live="/dashboard/apps/shop/live"' in text


def test_a_build_under_way_shows_before_its_release_exists(platform, owner):
    log = platform.apps.app_dir("shop") / "builds" / "b.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"Step 1/3 : FROM stack\nreading {platform.settings.home}/apps/shop/cache\n")
    with platform.apps.noting_build("shop", "f00dfeed" * 5, log):
        page = owner.get("/dashboard/apps/shop").text
        assert 'data-building="f00dfee"' in page and "Step 1/3 : FROM stack" in page
        assert str(platform.settings.home) not in page, "no server path in a log line either"
    assert "data-building" not in owner.get("/dashboard/apps/shop").text
    (platform.apps.app_dir("shop") / "building.json").write_text('{"commit": "x", "pid": 1, "pid_started": "0"}')
    assert platform.apps.building("shop") is None, "a note whose process number was reused is ignored"


def test_a_failed_build_shows_with_its_reason_until_a_build_succeeds(platform, owner):
    log = platform.apps.app_dir("shop") / "builds" / "b.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("npm ERR! missing script: build\n")
    with pytest.raises(BuildFailed):
        with platform.apps.noting_build("shop", "badc0de" + "0" * 33, log):
            raise BuildFailed(f"the build failed: see {log}")
    page = owner.get("/dashboard/apps/shop").text
    assert 'data-build-failed="badc0de"' in page and "npm ERR! missing script" in page
    assert "the build failed" in page and str(platform.settings.home) not in page
    with platform.apps.noting_build("shop", "900d" * 10, log):
        pass
    assert "data-build-failed" not in owner.get("/dashboard/apps/shop").text


def test_a_release_page_names_its_phases_files_output_and_failure(platform, owner):
    platform.scheduler.run_result = type(platform.scheduler.run_result)(exit_status=3)
    with pytest.raises(Exception):
        deploy(platform, {"web": "serve", "release": "./migrate"})
    page = owner.get("/dashboard/apps/shop/releases/v2").text
    assert "status-failed" in page and "exit status 3" in page
    assert "$GITPAAS_HOME/apps/shop/releases/v2/release.json" in page
    assert "Migrating…" in page, "the release command's output"
    assert 'data-phase="release" data-state="done"' not in page
    assert "Only once the release command exited 0" in page
    assert "Roll back to v2" not in page, "a failed release is not a rollback target"
    assert str(platform.settings.home) not in page
    assert owner.get("/dashboard/apps/shop/releases/v99").status_code == 404
    assert owner.get("/dashboard/apps/shop/releases/latest").status_code == 404


def test_the_diff_of_two_releases_names_what_changed(platform, owner):
    events.change_config(platform, "shop", Actor(OWNER), RecordingOutput(),
                         set_values={"COLOR": "blue", "GREETING": "bonjour"}, unset_keys=["SECRET_KEY"])
    page = owner.get("/dashboard/apps/shop/diff?older=v2&newer=1").text  # either order, either spelling
    assert "v1 → v2" in page and "Both run the same slug" in page
    rows = {m[1]: m[2] for m in re.finditer(r'data-key="(\w+)">.*?<td class="kind">(\w+)</td>', page, re.S)}
    assert rows == {"COLOR": "added", "GREETING": "changed", "SECRET_KEY": "removed"}
    assert "bonjour</code></details>" in page
    assert owner.get("/dashboard/apps/shop/diff?older=1").status_code == 422


# --- live ----------------------------------------------------------------------------------------

def test_the_release_stream_sends_phases_and_output_as_they_happen_then_ends(platform, owner):
    gate = threading.Event()
    platform.scheduler.run_gate = gate
    pending = events.begin_config_change(platform, "shop", Actor(OWNER), RecordingOutput(), set_values={"A": "1"}).pending
    worker = threading.Thread(target=pending.finish, args=(RecordingOutput(),))
    worker.start()
    seen = []

    def read():
        with owner.stream("GET", "/dashboard/apps/shop/releases/v2/live") as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            for line in answer.iter_lines():
                seen.append(line)
                if seen[-2:-1] == ["event: end"]:
                    return
    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 10
    while not any('data-state="running"' in line for line in seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any('data-state="running"' in line for line in seen), "the release phase shows under way"
    assert not any(line.startswith("event: end") for line in seen)
    gate.set()
    worker.join(10)
    reader.join(10)
    text = "\n".join(seen)
    assert "data: Migrating…" in text and "data: done" in text
    assert 'data-phase="swap" data-state="done"' in text and "event: end\ndata: succeeded" in text


def test_the_app_stream_sends_the_timeline_and_processes(platform, owner):
    lines = []
    with owner.stream("GET", "/dashboard/apps/shop/live") as answer:
        for line in answer.iter_lines():
            lines.append(line)
            if line.startswith("event: processes"):
                break
    text = "\n".join(lines)
    assert "event: timeline" in text and 'data-version="1"' in text


def test_a_stream_needs_a_session_and_the_app_and_release_to_be_the_users(platform, tokens, owner):
    for path in ("/dashboard/apps/shop/live", "/dashboard/apps/shop/releases/v1/live"):
        answer = browser(platform).get(path)
        assert answer.status_code == 401 and "log in again" in answer.text
    for path in ("/dashboard/apps/hidden/live", "/dashboard/apps/hidden/releases/v1/live",
                 "/dashboard/apps/shop/releases/v9/live", "/dashboard/apps/shop/releases/vX/live"):
        answer = owner.get(path)
        assert answer.status_code == 404 and not answer.headers["content-type"].startswith("text/event-stream"), path


def test_a_stranger_can_act_on_nothing_of_an_app_they_cannot_use(platform, tokens):
    stranger = browser(platform)
    login(stranger, tokens[STRANGER])
    token = csrf_of(stranger.get("/dashboard/").text)
    for action in ("rollback", "retry", "restart", "config-set"):
        answer = stranger.post(f"/dashboard/apps/shop/actions/{action}",
                               data={"csrf": token, "confirmed": "yes", "version": "1", "key": "A", "value": "1"})
        assert answer.status_code == 404
    assert platform.apps.releases("shop").versions() == [1]


def test_a_reconnecting_release_stream_resumes_where_it_was(platform, owner):
    output = platform.apps.releases("shop").output_path(1)
    output.write_text("first line\nsecond line\n")
    with owner.stream("GET", "/dashboard/apps/shop/releases/v1/live",
                      headers={"last-event-id": str(len("first line\n"))}) as answer:
        text = "\n".join(answer.iter_lines())
    assert "data: second line" in text and "first line" not in text
    assert "id: " + str(len("first line\nsecond line\n")) in text


def test_failure_reasons_and_logs_on_pages_name_no_server_path(platform, owner):
    release = platform.apps.releases("shop").get(1)
    release.failure = {"reason": f"could not tag the slug image: {platform.settings.home}/apps/shop is full",
                       "exit_status": None}
    platform.apps.releases("shop").save(release)
    for path in ("/dashboard/apps/shop", "/dashboard/apps/shop/releases/v1"):
        page = owner.get(path).text
        assert "could not tag the slug image" in page and str(platform.settings.home) not in page, path
    with owner.stream("GET", "/dashboard/apps/shop/releases/v1/live") as answer:
        streamed = "\n".join(answer.iter_lines())
    assert "could not tag the slug image" in streamed and str(platform.settings.home) not in streamed


# --- the diff, pure ------------------------------------------------------------------------------

def test_releasediff_names_added_removed_and_changed_things():
    def release(version, **fields):
        return Release(version=version, description="d", app={"id": "a", "name": "shop"}, user={}, **fields)
    older = release(1, slug={"id": "s1"}, commit="c1", process_types={"web": "a", "worker": "w"},
                    config_vars={"A": "1", "B": "2"}, addon_plan_names=["heroku-redis:mini"])
    newer = release(2, slug={"id": "s2"}, commit="c2", process_types={"web": "b", "web2": None},
                    config_vars={"A": "1", "B": "3", "C": "4"}, addon_plan_names=[])
    found = releasediff.diff(older, newer)
    assert not found.same_slug and not found.unchanged
    assert [(c.name, c.kind) for c in found.runs] == [("commit", "changed"), ("slug", "changed")]
    assert [(c.name, c.kind) for c in found.process_types] == [("web", "changed"), ("web2", "added"), ("worker", "removed")]
    assert [(c.name, c.kind, c.before, c.after) for c in found.config_vars] == [("B", "changed", "2", "3"),
                                                                                  ("C", "added", None, "4")]
    assert [(c.name, c.kind) for c in found.addons] == [("heroku-redis:mini", "removed")]
    assert releasediff.diff(older, older).unchanged
