"""The Platform API endpoints the Heroku CLI's everyday commands reach beyond apps and releases —
domains, collaborators, maintenance, webhooks and their deliveries, log drains, authorizations,
regions, features — in Heroku's shapes (validated against the schema), and gitpaas's variant of
the resources the gitpaas CLI reads from another machine. In-process, on the fakes."""

from __future__ import annotations

import http.server
import re
import threading
import time

import pytest
from fakes import deploy, make_platform
from schema import validate
from test_api_security import signed_in_client

from gitpaas import appview, operations
from gitpaas.api import account, addons, drains, pg_backups, routes, streams, webhooks
from gitpaas.client.api import VARIANT
from gitpaas.notify.drains import (
    AppDrains,
    Drains,
    Forwarding,
    syslog_frame,
    validate_drain_url,
)
from gitpaas.router.render import render_app_config, render_maintenance

OWNER = "owner@example.com"
FRIEND = "friend@example.com"
STRANGER = "stranger@example.com"


@pytest.fixture
def platform(tmp_path, monkeypatch):
    made = make_platform(tmp_path, webhook_private_targets=True)
    operations.create_app(made, "shop", owner=OWNER)
    operations.add_collaborator(made, "shop", FRIEND)
    deploy(made)
    for module in (routes, webhooks, account, drains, streams, addons, pg_backups):
        monkeypatch.setattr(module, "platform_of", lambda request: made)
    return made


@pytest.fixture
def client(platform):
    return signed_in_client(platform, (OWNER, FRIEND, STRANGER))


def test_domains_are_added_routed_and_removed_in_herokus_shape(client, platform):
    added = client.request("POST", "/apps/shop/domains", user=OWNER, json_body={"hostname": "www.shop.test",
                                                                                 "sni_endpoint": None})
    assert added.status == 201
    validate("domain", added.json())
    assert (added.json()["cname"], added.json()["status"]) == ("shop.localhost", "none")
    assert "www.shop.test" in platform.router.routes["shop"][0]
    listed = client.request("GET", "/apps/shop/domains", user=OWNER).json()
    for domain in listed:
        validate("domain", domain)
    assert [d["kind"] for d in listed] == ["heroku", "custom"]
    own = client.request("DELETE", "/apps/shop/domains/shop.localhost", user=OWNER)
    assert own.status == 422 and "cannot be removed" in own.json()["message"]
    assert client.request("DELETE", "/apps/shop/domains/www.shop.test", user=OWNER).status == 200
    assert platform.apps.get("shop").domains == []
    assert client.request("DELETE", "/apps/shop/domains/nope.test", user=OWNER).status == 404


def test_collaborators_are_added_and_removed(client, platform):
    client.request("POST", "/apps/shop/collaborators", user=OWNER, json_body={"user": STRANGER})
    assert STRANGER in platform.apps.get("shop").collaborators
    listed = client.request("GET", "/apps/shop/collaborators", user=OWNER).json()
    for entry in listed:
        validate("collaborator", entry)
    removed = client.request("DELETE", f"/apps/shop/collaborators/{STRANGER}", user=OWNER)
    assert removed.status == 200 and STRANGER not in platform.apps.get("shop").collaborators
    unknown = client.request("POST", "/apps/shop/collaborators", user=OWNER, json_body={"user": "nobody@example.com"})
    assert unknown.status == 404


def test_maintenance_mode_is_set_through_the_app_and_routed(client, platform):
    on = client.request("PATCH", "/apps/shop", user=OWNER, json_body={"maintenance": True}).json()
    validate("app", on)
    assert on["maintenance"] is True and platform.apps.get("shop").maintenance
    assert platform.router.maintenance == {"shop"}
    client.request("PATCH", "/apps/shop", user=OWNER, json_body={"maintenance": False})
    assert not platform.apps.get("shop").maintenance and platform.router.maintenance == set()


def test_the_routers_maintenance_switch_is_an_include_that_may_match_nothing(tmp_path):
    text = render_app_config("shop", ["shop.localhost"], [("127.0.0.1", 5001)], port=8080,
                             maintenance_dir=tmp_path / "maintenance")
    assert f'include "{tmp_path}/maintenance/shop.con[f]";' in text
    page = render_maintenance()
    assert page.count("return 503 ") == 1 and "Retry-After" in page and "Offline for maintenance" in page
    assert "$" not in page.replace("&#36;", "")


def test_webhooks_in_herokus_shape_and_only_release_events(client, platform):
    made = client.request("POST", "/apps/shop/webhooks", user=OWNER, json_body={
        "url": "https://hooks.example.com/in", "include": ["api:release"], "level": "notify", "secret": "s3cret"})
    assert made.status == 201 and made.headers["heroku-webhook-secret"] == "s3cret"
    hook = made.json()
    assert set(hook) == {"app", "created_at", "id", "include", "level", "updated_at", "url"}
    refused = client.request("POST", "/apps/shop/webhooks", user=OWNER, json_body={
        "url": "https://hooks.example.com/x", "include": ["api:dyno"], "level": "notify"})
    assert refused.status == 422 and "gitpaas sends api:release events only" in refused.json()["message"]
    assert [h["id"] for h in client.request("GET", "/apps/shop/webhooks", user=FRIEND).json()] == [hook["id"]]
    assert client.request("GET", "/apps/shop/webhooks", user=STRANGER).status == 404
    variant = client.request("POST", "/apps/shop/webhooks", user=OWNER, headers={"accept": VARIANT}, json_body={
        "url": "https://hooks.example.com/v", "include": ["api:release"], "level": "sync"}).json()
    assert len(variant["secret"]) == 64, "the gitpaas CLI reads the new secret from its variant"
    assert client.request("DELETE", f"/apps/shop/webhooks/{hook['id']}", user=OWNER).json()["id"] == hook["id"]
    assert client.request("DELETE", f"/apps/shop/webhooks/{hook['id']}", user=OWNER).status == 404


def test_webhook_deliveries_in_herokus_shape(client, platform, monkeypatch):
    from gitpaas.notify import announce

    class NoDeliverer:  # the event is queued; nothing is sent from a unit test
        def __init__(self, *args, **kwargs) -> None:
            pass

        def wait(self) -> int:
            return 0
    monkeypatch.setattr(announce.subprocess, "Popen", NoDeliverer)
    client.request("POST", "/apps/shop/webhooks", user=OWNER, json_body={
        "url": "https://hooks.example.com/in", "include": ["api:release"], "level": "notify"})
    deploy(platform)  # a release: an event to deliver
    listed = client.request("GET", "/apps/shop/webhook-deliveries", user=OWNER,
                            headers={"range": "seq ..; order=desc,max=1000"}).json()
    assert listed, "the release's event is listed"
    for delivery in listed:
        validate("app-webhook-delivery", delivery)
    one = client.request("GET", f"/apps/shop/webhook-deliveries/{listed[0]['id']}", user=OWNER).json()
    assert one["id"] == listed[0]["id"]
    records = client.request("GET", "/apps/shop/webhook-deliveries", user=OWNER, headers={"accept": VARIANT}).json()
    assert records[0]["webhooks"][0]["url"] == "https://hooks.example.com/in"


def test_authorizations_are_the_callers_own_tokens(client, platform):
    made = client.request("POST", "/oauth/authorizations", user=OWNER, json_body={"description": "ci"})
    assert made.status == 201
    validate("oauth-authorization", made.json())
    token = made.json()["access_token"]["token"]
    assert client.request("GET", "/account", headers={"authorization": f"Bearer {token}"}).status == 200
    listed = client.request("GET", "/oauth/authorizations", user=OWNER).json()
    assert made.json()["id"] in [a["id"] for a in listed] and all(a["access_token"] is None for a in listed)
    assert client.request("DELETE", f"/oauth/authorizations/{made.json()['id']}", user=FRIEND).status == 404
    assert client.request("DELETE", f"/oauth/authorizations/{made.json()['id']}", user=OWNER).status == 200
    assert client.request("GET", "/account", headers={"authorization": f"Bearer {token}"}).status == 401
    expiring = client.request("POST", "/oauth/authorizations", user=OWNER, json_body={"expires_in": 60})
    assert expiring.status == 422 and "do not expire" in expiring.json()["message"]


def test_one_region_and_no_features(client):
    regions = client.request("GET", "/regions", user=OWNER).json()
    assert [r["name"] for r in regions] == ["local"]
    # The one deviation from Heroku's schema: its provider regions are AWS's, and this one is on none.
    assert regions[0]["provider"] == {"name": "gitpaas", "region": "local"}
    validate("region", {**regions[0], "provider": {"name": "gitpaas", "region": "us-east-1"}})
    assert client.request("GET", "/regions/local", user=OWNER).status == 200
    assert client.request("GET", "/regions/eu", user=OWNER).status == 404
    assert client.request("GET", "/account/features", user=OWNER).json() == []
    assert client.request("GET", "/apps/shop/features", user=OWNER).json() == []
    enable = client.request("PATCH", "/apps/shop/features/preboot", user=OWNER, json_body={"enabled": True})
    assert enable.status == 404 and "gitpaas has no labs features" in enable.json()["message"]


def test_log_drains_in_herokus_shape(client, platform):
    made = client.request("POST", "/apps/shop/log-drains", user=OWNER, json_body={"url": "syslog://logs.example.com:514"})
    assert made.status == 201
    validate("log-drain", made.json())
    assert made.json()["token"].startswith("d.")
    bad = client.request("POST", "/apps/shop/log-drains", user=OWNER, json_body={"url": "ftp://x"})
    assert bad.status == 422
    variant = client.request("GET", "/apps/shop/log-drains", user=OWNER, headers={"accept": VARIANT}).json()
    assert variant[0]["status"] == {}
    gone = client.request("DELETE", "/apps/shop/log-drains/syslog%3A%2F%2Flogs.example.com%3A514", user=OWNER)
    assert gone.status == 200 and client.request("GET", "/apps/shop/log-drains", user=OWNER).json() == []


def test_the_gitpaas_variant_is_the_record_the_cli_prints(client, platform):
    app = client.request("GET", "/apps/shop", user=OWNER, headers={"accept": VARIANT}).json()
    assert app == {**appview.app_info(platform, "shop"), "git_url": "http://testserver/shop.git"}
    release = client.request("GET", "/apps/shop/releases/1", user=OWNER, headers={"accept": VARIANT}).json()
    record = platform.apps.releases("shop").get(1).to_dict()
    assert {k: v for k, v in release.items() if k not in ("output_stream_url", "story_stream_url")} == \
        {k: v for k, v in record.items() if k != "output_stream_url"}
    assert release["story_stream_url"].startswith("http://testserver/streams/release-story/")
    assert release["output_stream_url"].startswith("http://testserver/streams/release-output/")
    dynos = client.request("GET", "/apps/shop/dynos", user=OWNER, headers={"accept": VARIANT}).json()
    assert {d["type"] for d in dynos} == {"web"} and "restarts" in dynos[0]
    plain = client.request("GET", "/apps/shop", user=OWNER).json()
    validate("app", plain)


def test_releases_retry_and_rollback_to_previous_are_gitpaas_extensions(client, platform):
    platform.apps.config("shop").replace({"A": "1"})
    deploy(platform)
    retried = client.request("POST", "/apps/shop/releases", user=OWNER, json_body={"retry": True}).json()
    assert retried["description"] == "Retry of v2"
    wait(lambda: platform.apps.releases("shop").get(3).status == "succeeded")
    previous = client.request("POST", "/apps/shop/releases", user=OWNER, json_body={"release": "previous"}).json()
    assert previous["description"] == "Rollback to v2"
    both = client.request("POST", "/apps/shop/releases", user=OWNER, json_body={"retry": True, "release": "1"})
    assert both.status == 422


def wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- drains ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, words", [
    ("ftp://logs.example.com", "a drain is https://"), ("syslog://logs.example.com", "needs its port"),
    ("https://127.0.0.1/in", "drains may only go to public addresses"),
    ("syslog+tls://10.0.0.1:6514", "drains may only go to public addresses")])
def test_drain_urls_that_cannot_be_used_are_refused(url, words):
    from gitpaas.errors import UsageError

    with pytest.raises(UsageError, match=words):
        validate_drain_url(url, private_targets=False, resolver=lambda host: ["93.184.216.34"])


def test_a_log_line_becomes_an_octet_counted_syslog_message():
    frame = syslog_frame("2026-12-01T10:00:00.000000+00:00 app[web.1]: GET / 200", "shop", "d.abc")
    count, _, message = frame.partition(b" ")
    assert int(count) == len(message)
    assert message == b"<190>1 2026-12-01T10:00:00.000000+00:00 d.abc app web.1 - GET / 200"


class _Endpoint(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        _Endpoint.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(_Endpoint.answers.pop(0) if _Endpoint.answers else 204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_drain_gets_every_line_and_is_retried_after_a_failure(tmp_path, monkeypatch):
    from gitpaas.notify import drains as drain_module

    monkeypatch.setattr(drain_module, "INTERVAL", 0.05)
    monkeypatch.setattr(drain_module, "MAX_PAUSE", 0.1)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Endpoint.answers[:] = [500]
    _Endpoint.bodies.clear()
    platform = make_platform(tmp_path, webhook_private_targets=True)
    operations.create_app(platform, "shop")
    store = Drains(platform.settings, "shop")
    drain = store.add(f"http://127.0.0.1:{server.server_address[1]}/in")
    lines = [f"2026-12-01T10:00:0{i}.000000+00:00 app[web.1]: line {i}" for i in range(3)]
    released = threading.Event()

    def follow():
        released.wait(5)
        yield from lines
        time.sleep(30)  # a quiet app: the follower waits
    feeding = AppDrains(platform.settings, "shop", follow)
    feeding.start()
    wait(lambda: drain.id in feeding.backlogs)
    released.set()
    wait(lambda: store.status().get(drain.id, {}).get("delivered") == 3)
    status = store.status()[drain.id]
    assert status["failures"] == 0 and "answered 500" in status["last_error"]
    delivered = b"".join(_Endpoint.bodies[1:])
    assert [re.search(rb"line \d", m).group(0) for m in delivered.split(b"<190>")[1:]] == [b"line 0", b"line 1", b"line 2"]
    feeding.stop()
    server.shutdown()


def test_forwarding_feeds_apps_with_drains_and_stops_when_the_last_goes(tmp_path):
    platform = make_platform(tmp_path, webhook_private_targets=True)
    operations.create_app(platform, "shop")
    forwarding = Forwarding(platform.settings, lambda: ["shop"], lambda app: iter(()))
    forwarding.check()
    assert forwarding.feeding == {}
    store = Drains(platform.settings, "shop")
    drain = store.add("syslog://127.0.0.1:9")
    forwarding.check()
    assert set(forwarding.feeding) == {"shop"}
    store.remove(drain.url)
    forwarding.check()
    assert forwarding.feeding == {}


def test_backups_of_a_destroyed_app_are_not_served_to_a_new_app_of_its_name(client, platform):
    from gitpaas.addons.store import Backup, BackupStore

    store = BackupStore(platform.settings)
    old = Backup("f001", "shop", "db", "postgresql", "final", created_at="2026-01-01T00:00:00Z", app_id="gone",
                 status="completed")
    store.save(old)
    store.dump_path(old).write_bytes(b"PGDMP someone else's data")
    assert client.request("GET", "/apps/shop/pg-backups", user=OWNER).json()["backups"] == []
    for method, path in (("GET", "/apps/shop/pg-backups/f001/dump"), ("DELETE", "/apps/shop/pg-backups/f001")):
        refused = client.request(method, path, user=OWNER)
        assert refused.status == 404 and b"someone else" not in refused.body
    assert client.request("POST", "/apps/shop/pg-backups/f001/actions/restore", user=OWNER, json_body={}).status == 404
    assert store.dump_path(old).exists()
    assert client.request("GET", "/apps/shop/pg-backups", user=STRANGER).status == 404
