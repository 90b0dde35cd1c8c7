"""The dashboard in a real browser: Debian's Chromium driven by Playwright (no browser download),
against `gitpaas server` on the real engine, git and nginx. Log in, see the app list, push with git
and watch the new release go from pending to succeeded without reloading, open the diff of two
releases, roll back from the page and see the release it made, a wrong token refused, a phone's width.

GITPAAS_SCREENSHOT=PATH also saves the app page there (the README's picture)."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from harness import APPS, ApiServer, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
#: a build and a release command slow enough to watch: each prints, waits, prints (the build step is
#: new each run: BuildKit's cache outlives the images, and a cached step is neither slow nor heard)
SLOW_BUILD = (APPS / "web" / "Dockerfile").read_text() + f"RUN echo \"building slowly\" {uuid.uuid4().hex} && sleep 3\n"
SLOW_RELEASE = ("web: python3 /app/server.py\n"
                "release: echo \"migrating for $(cat /app/BODY)\"; sleep 4; echo \"migrated\"\n")


@pytest.fixture
def chromium():
    if shutil.which("chromium") is None and not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed: run `make setup` (scripts/setup.sh installs it)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def api(home):
    server = ApiServer(home)
    yield server
    server.stop()


def test_log_in_watch_a_push_live_diff_and_roll_back_in_a_real_browser(home, api, chromium):
    assert api.call("POST", "/apps", json={"name": "shop"}).status_code == 201
    first = home.push("shop", "web", files={"BODY": "first"}, url=api.git_url("shop"))
    assert first.returncode == 0, first.stderr

    page = chromium.new_page()
    page.goto(f"{api.url}/dashboard/")
    assert "/dashboard/login" in page.url
    page.fill("input[name=token]", "gp_wrong-token")
    page.click("button[type=submit]")
    assert "That token is not valid" in page.inner_text("[role=alert]")
    assert "/dashboard/login" in page.url

    page.fill("input[name=token]", api.token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{api.url}/dashboard/")
    row = page.locator("tr[data-app=shop]")
    assert "v1" in row.inner_text() and "succeeded" in row.inner_text() and "1 / 1 up" in row.inner_text()

    page.click("text=shop")
    page.wait_for_selector("body[data-connected=yes]")  # the live stream is open
    page.evaluate("window.notReloaded = true")
    push = home.start_push("shop", "web", files={"BODY": "second", "Procfile": SLOW_RELEASE, "Dockerfile": SLOW_BUILD},
                           url=api.git_url("shop"))
    try:
        page.wait_for_selector("li.building .chip[data-phase='build'][data-state='running']", timeout=60_000)
        page.wait_for_selector("li.release[data-version='2'][data-status='pending']", timeout=120_000)
        page.wait_for_selector("li.release[data-version='2'] .chip[data-phase='build'][data-state='done']")
        page.wait_for_selector("li.release[data-version='2'] pre.tail:has-text('migrating for second')",
                               timeout=30_000)  # its output, as it comes
        page.wait_for_selector("li.release[data-version='2'][data-status='succeeded']", timeout=120_000)
    finally:
        out, err = push.communicate(timeout=300)
    assert push.returncode == 0, err
    assert page.evaluate("window.notReloaded") is True, "the page changed without reloading"
    for phase in ("receive", "build", "release", "health", "swap"):
        assert page.locator(f"li.release[data-version='2'] .chip[data-phase='{phase}']").get_attribute(
            "data-state") == "done"
    assert home.get("shop").text.startswith("second")

    page.select_option("select[name=older]", "1")  # the compare form came with the second release, live
    page.select_option("select[name=newer]", "2")
    page.click("form.compare button")
    page.wait_for_url("**/dashboard/apps/shop/diff?older=1&newer=2")
    assert "v1 → v2" in page.inner_text("h1")
    assert page.locator("#slug tr[data-name=commit]").count() == 1
    assert page.locator("#process-types tr[data-name=release]").count() == 1

    page.goto(f"{api.url}/dashboard/apps/shop/releases/v1")
    page.click("text=Roll back to v1")
    assert "Roll shop back to v1?" in page.inner_text("h1"), "it asks first"
    assert home.release("shop", 2)["current"], "nothing changed before the confirmation"
    page.click("button:has-text('Confirm')")
    page.wait_for_url("**/dashboard/apps/shop/releases/v3?created=1")
    assert "Rollback to v1" in page.inner_text("h1")
    page.wait_for_selector(".release-status .status-succeeded", timeout=120_000)  # live, no reload
    assert wait_for(lambda: home.get("shop").text.startswith("first"), "v1's body again")
    assert home.release("shop", 3)["user"]["email"] == api.email

    if os.environ.get("GITPAAS_SCREENSHOT"):  # the README's picture: the app page after the push and the rollback
        shot = chromium.new_page(viewport={"width": 1100, "height": 1300})
        shot.context.add_cookies(page.context.cookies())
        shot.goto(f"{api.url}/dashboard/apps/shop")
        shot.screenshot(path=os.environ["GITPAAS_SCREENSHOT"])

    phone = chromium.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{api.url}/dashboard/apps/shop")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling on a phone"
    assert phone.locator("li.release").count() == 3

    page.click("text=Log out")
    page.wait_for_url("**/dashboard/login?bye=1")
    page.goto(f"{api.url}/dashboard/apps/shop")
    assert "/dashboard/login" in page.url
