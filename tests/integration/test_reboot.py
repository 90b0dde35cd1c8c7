"""A server a team can live on, part 1: it comes back. The Docker engine is really restarted here
(as a reboot does), nginx really stopped, containers really removed — then `gitpaas boot`, or
nothing at all, and the apps must answer again."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from conftest import FAULTS
from harness import GITPAAS, ApiServer, restart_engine, wait_for

from gitpaas import labels
from gitpaas.router.nginx import NginxRouter

WORKER = "worker: python3 -c 'import time; time.sleep(100000)'\n"


def containers_of(docker_client, home, app: str) -> dict[str, str]:
    """The app's formation containers: dyno name → container id."""
    found = docker_client.containers.list(all=True, filters=labels.filters(
        {labels.HOME: str(home.path), labels.APP: app, labels.ROLE: "process"}))
    return {c.labels[labels.DYNO]: c.id for c in found if not c.name.endswith("-retiring")}


def answers(home, app: str, text: str) -> bool:
    try:
        return home.get(app).text == text
    except OSError:
        return False


def test_boot_brings_every_app_back_after_a_reboot_and_twice_changes_nothing(home, docker_client):
    for app, body in (("alpha", "one"), ("beta", "two")):
        home.create_app(app)
        assert home.push(app, "web", files={"BODY": body, "Procfile": "web: python3 /app/server.py\n" + WORKER}
                         ).returncode == 0
    home.gitpaas("ps:scale", "worker=1", "-a", "beta")
    assert answers(home, "alpha", "one from web.1\n")

    # The reboot: nginx is gone, the engine restarts; one container was removed and one stopped for good.
    NginxRouter(home.settings).stop()
    beta = containers_of(docker_client, home, "beta")
    docker_client.containers.get(containers_of(docker_client, home, "alpha")["web.1"]).remove(force=True)
    docker_client.containers.get(beta["worker.1"]).stop(timeout=1)  # "unless-stopped": it stays down
    restart_engine()
    FAULTS["injected"] += 4  # nginx stopped, a container removed, one stopped, the engine restarted
    assert not answers(home, "alpha", "one from web.1\n")

    started = time.monotonic()
    booted = home.gitpaas("boot")
    assert "started the router" in booted.stdout
    assert "alpha: started web.1 of v1" in booted.stdout
    assert "beta: started worker.1 of v1" in booted.stdout
    wait_for(lambda: answers(home, "alpha", "one from web.1\n") and answers(home, "beta", "two from web.1\n"),
             "both apps to answer after boot", timeout=30 - (time.monotonic() - started))
    states = {d["name"]: d["state"] for d in home.json("ps", "-a", "beta")}
    assert states == {"web.1": "up", "worker.1": "up"}
    assert "started the router" in (home.path / "logs" / "boot.log").read_text()

    before = {app: containers_of(docker_client, home, app) for app in ("alpha", "beta")}
    generation = (home.path / "router" / "generation.conf").read_text()
    again = home.gitpaas("boot")
    assert "nothing to do" in again.stdout
    assert {app: containers_of(docker_client, home, app) for app in ("alpha", "beta")} == before
    assert (home.path / "router" / "generation.conf").read_text() == generation, "the router was not even reloaded"


def bodies(home, app: str, requests: int = 6) -> set[str]:
    """What the app answered to ``requests`` requests in a row (the router takes turns)."""
    seen = set()
    for _ in range(requests):
        try:
            seen.add(home.get(app).text)
        except OSError:
            pass
    return seen


def web_addresses(docker_client, home, app: str) -> dict[str, tuple[str, str, dict]]:
    """Each web process's address: the one it keeps, the one it has now, and its published ports."""
    found = {}
    for dyno, container_id in containers_of(docker_client, home, app).items():
        if dyno.startswith("web."):
            attrs = docker_client.api.inspect_container(container_id)
            (network,) = attrs["NetworkSettings"]["Networks"].values()
            found[dyno] = ((network.get("IPAMConfig") or {}).get("IPv4Address"), network["IPAddress"],
                           attrs["HostConfig"]["PortBindings"] or {})
    return found


def test_apps_come_back_by_themselves_when_only_the_engine_restarts(home, docker_client):
    home.create_app("steady")
    assert home.push("steady", "web", files={"BODY": "still", "Procfile": "web: python3 /app/server.py\n" + WORKER}
                     ).returncode == 0
    home.gitpaas("ps:scale", "web=2", "-a", "steady")
    before = web_addresses(docker_client, home, "steady")
    assert sorted(before) == ["web.1", "web.2"]
    for kept, now, published in before.values():
        # the router reaches each at an address it keeps, with no port published (no docker-proxy)
        assert kept and kept == now and not published, before
        assert f"{kept}:5000" in (home.path / "router" / "apps" / "steady.conf").read_text()
    restart_engine()
    FAULTS["injected"] += 1
    # the engine restarts the worker and both web processes at once, handing out the addresses it
    # picks itself anew: the web processes get theirs back, so the router, untouched, still reaches them
    wait_for(lambda: bodies(home, "steady") >= {"still from web.1\n", "still from web.2\n"}, "both to answer again",
             timeout=30)
    assert web_addresses(docker_client, home, "steady") == before


@pytest.mark.parametrize("procfile, cut_short, during", [
    ("web: python3 /app/server.py\nrelease: echo migrating; sleep 60\n",
     lambda dyno: dyno["type"] == "release", "while the release command ran"),
    ("web: sleep 20; python3 /app/server.py\n",  # v2's web takes 20 s to listen
     lambda dyno: dyno["type"] == "web" and dyno["release"]["version"] == 2, "while the new processes started"),
], ids=["release-phase", "health-checks"])
def test_an_engine_restart_during_a_deploy_fails_it_and_the_last_good_release_serves(home, procfile, cut_short,
                                                                                      during):
    home.create_app("inflight")
    assert home.push("inflight", "web", files={"BODY": "good"}).returncode == 0
    push = home.start_push("inflight", "web", files={"BODY": "never", "Procfile": procfile})
    wait_for(lambda: any(cut_short(d) for d in home.json("ps", "-a", "inflight")), f"the deploy to get {during}")
    restart_engine()
    FAULTS["injected"] += 1
    _, stderr = push.communicate(timeout=180)
    assert push.returncode != 0
    assert f"the Docker engine stopped or restarted {during}" in stderr, stderr[-1500:]
    record = home.release("inflight", 2)
    assert record["status"] == "failed" and "Docker engine" in record["failure"]["reason"]
    wait_for(lambda: answers(home, "inflight", "good from web.1\n"), "v1 to serve again", timeout=30)
    assert home.json("apps:info", "-a", "inflight")["current_release"] == "v1"
    home.gitpaas("boot")  # what was cut short is cleaned up: nothing of v2 is left
    wait_for(lambda: [(d["name"], d["release"]["version"]) for d in home.json("ps", "-a", "inflight")
                      if d["state"] != "stopping"] == [("web.1", 1)], "only v1 to run after boot")


def test_a_killed_api_server_settles_its_release_when_it_comes_back(home, docker_client):
    """The unit restarts a crashed server (Restart=on-failure); the release it was running is settled."""
    home.create_app("served")
    procfile = 'web: python3 /app/server.py\nrelease: if [ "$SLOW" = 1 ]; then sleep 120; fi\n'
    assert home.push("served", "web", files={"BODY": "v1", "Procfile": procfile}).returncode == 0
    api = ApiServer(home)
    home.gitpaas("access:add", api.email, "-a", "served")
    assert api.call("PATCH", "/apps/served/config-vars", json={"SLOW": "1"}).status_code == 200
    wait_for(lambda: any(d["type"] == "release" for d in home.json("ps", "-a", "served")),
             "v2's release command to run in the server")
    api.process.send_signal(signal.SIGKILL)
    api.process.wait(10)
    FAULTS["injected"] += 1
    assert home.release("served", 2)["status"] == "pending"

    server = subprocess.Popen([GITPAAS, "server", "--port", str(api.port)], env=home.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: home.release("served", 2)["status"] == "failed", "the restarted server to settle v2")
        assert home.release("served", 2)["failure"]["reason"].startswith("interrupted")
        # (the record is settled first, then its container removed: a `ps` in between still lists it)
        wait_for(lambda: not any(d["type"] == "release" for d in home.json("ps", "-a", "served")),
                 "its container to be removed", timeout=30)
        assert answers(home, "served", "v1 from web.1\n")
    finally:
        server.terminate()
        server.wait(15)
