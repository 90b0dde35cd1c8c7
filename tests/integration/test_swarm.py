"""The same pipeline on a real Docker Swarm: three engines on this machine, each in its own network
namespace (scripts/swarm-rig.sh), a registry the nodes pull slugs from, nginx here routing to the
nodes. A push deploys across the nodes, scaling spreads processes, a failing release command
leaves the old release serving, a deploy under load loses no request, and a dead node's web
processes are rescheduled by Swarm with the router following."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from harness import ApiServer, Home, wait_for
from test_zero_downtime import Load

RIG = Path(__file__).resolve().parents[2] / "scripts" / "swarm-rig.sh"
#: what the rig answers when the machine cannot run a swarm (its message names what is missing)
CANNOT = 3


@pytest.fixture(scope="module")
def rig():
    # (a rig that was up before, `make swarm-demo`'s say, is left up; one these tests started goes)
    was_up = subprocess.run(["bash", str(RIG), "status"], capture_output=True, timeout=120).returncode == 0
    up = subprocess.run(["bash", str(RIG), "up", "3"], capture_output=True, text=True, timeout=600)
    if up.returncode == CANNOT:
        message = (up.stderr.strip().splitlines() or ["(no reason given)"])[-1]
        print(f"\n\n*** SWARM TESTS SKIPPED: {message} ***\n", flush=True)
        pytest.skip(message)
    assert up.returncode == 0, f"the swarm rig did not come up:\n{up.stdout}\n{up.stderr}"
    env = dict(line.split("=", 1) for line in up.stdout.splitlines() if line.startswith("GITPAAS_SWARM_"))
    yield env
    if not was_up:
        subprocess.run(["bash", str(RIG), "down"], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def swarm_home(rig, tmp_path_factory, docker_client):
    made = Home.make(tmp_path_factory.mktemp("swarm"), GITPAAS_SCHEDULER="swarm",
                     GITPAAS_SWARM_MANAGER=rig["GITPAAS_SWARM_MANAGER"],
                     GITPAAS_SWARM_REGISTRY=rig["GITPAAS_SWARM_REGISTRY"], GITPAAS_DRAIN_SECONDS="1")
    yield made
    made.purge()


def ps(home: Home, app: str) -> list[dict]:
    """``gitpaas ps`` as rows: process, state, release, node."""
    rows = []
    for line in home.gitpaas("ps", "-a", app).stdout.splitlines():
        fields = line.split()
        if fields and re.fullmatch(r"[a-z]+\.\d+", fields[0]):
            rows.append({"process": fields[0], "state": fields[1], "release": fields[2], "node": fields[3]})
    return rows


def registry_tags(home: Home, repository: str) -> list[str]:
    """The tags the swarm's registry lists for ``repository`` whose manifest it still has."""
    registry = home.settings.swarm_registry
    ca = f"/etc/docker/certs.d/{registry}/ca.crt"
    listed = requests.get(f"https://{registry}/v2/{repository}/tags/list", verify=ca, timeout=10).json()
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    return sorted(tag for tag in listed.get("tags") or []
                  if requests.head(f"https://{registry}/v2/{repository}/manifests/{tag}", headers=accept, verify=ca,
                                   timeout=10).status_code == 200)


def bodies(home: Home, app: str, count: int = 12) -> Counter:
    return Counter(home.get(app).text.strip() for _ in range(count))


def test_a_push_deploys_across_the_nodes_and_scaling_spreads_the_processes(swarm_home):
    home = swarm_home
    home.create_app("spread")
    pushed = home.push("spread", "web", files={"BODY": "v1"})
    assert pushed.returncode == 0, pushed.stderr
    assert "Swarm: web=1 of v1" in pushed.stderr and re.search(r"web\.1 of v1 is up on gpsw-n\d", pushed.stderr)
    assert "release phase for v1" in pushed.stderr  # the release phase ran on the swarm, output streamed
    assert home.get("spread").text.strip() == "v1 from web.1"
    info = home.gitpaas("apps:info", "-a", "spread").stdout
    assert re.search(r"Scheduler:\s+swarm", info)

    home.gitpaas("ps:scale", "web=3", "-a", "spread")
    rows = [r for r in ps(home, "spread") if r["state"] == "up"]
    assert sorted(r["process"] for r in rows) == ["web.1", "web.2", "web.3"]
    assert len({r["node"] for r in rows}) >= 2, rows  # Swarm spread them
    info = home.json("apps:info", "-a", "spread")
    assert sorted(name for names in info["nodes"].values() for name in names) == ["web.1", "web.2", "web.3"]
    answered = bodies(home, "spread", 18)
    assert set(answered) == {"v1 from web.1", "v1 from web.2", "v1 from web.3"}, answered  # nginx → every node

    nodes = home.json("nodes")
    assert len(nodes) == 3 and all(n["state"] == "ready" for n in nodes)
    assert sum(len(n["processes"]) for n in nodes) == 3

    # config:set is a release like any other: a rolling update, the new value served everywhere
    home.gitpaas("config:set", "GREETING=hi", "-a", "spread")
    assert wait_for(lambda: all("GREETING=hi" in home.get("spread", "/env").text for _ in range(6)),
                    "the new config on every web process", timeout=60)

    # retention prunes the registry too: v1 and v2 (one slug) go, v3's stays
    assert home.push("spread", "web", files={"BODY": "v3"}).returncode == 0
    repository = f"gitpaas-{home.settings.home_id}/spread"
    assert registry_tags(swarm_home, repository) == ["v1", "v2", "v3"]
    home.gitpaas("releases:retention", "--keep", "1", "-a", "spread")
    assert registry_tags(swarm_home, repository) == ["v3"]
    assert set(bodies(home, "spread", 6)) <= {"v3 from web.1", "v3 from web.2", "v3 from web.3"}


def test_a_failing_release_command_leaves_the_old_release_serving(swarm_home):
    home = swarm_home
    home.create_app("gated")
    assert home.push("gated", "web", files={"BODY": "v1"}).returncode == 0
    failed = home.push("gated", "web", files={"BODY": "v2", "Procfile": "web: python3 /app/server.py\n"
                                              "release: echo checking; exit 4\n"})
    assert failed.returncode != 0
    assert "checking" in failed.stderr and "exited with status 4" in failed.stderr
    assert home.get("gated").text.strip() == "v1 from web.1"
    assert [r["release"] for r in ps(home, "gated")] == ["v1"]
    # a web process that never listens: Swarm's health check fails it and Swarm rolls back
    broken = home.push("gated", "web", files={"BODY": "v3", "Procfile": "web: sleep 600\n"},
                       env={"GITPAAS_BOOT_TIMEOUT": "8"})
    assert broken.returncode != 0
    assert "rolled its service back" in broken.stderr or "health check" in broken.stderr, broken.stderr
    assert home.get("gated").text.strip() == "v1 from web.1"
    releases = home.json("releases", "-a", "gated")
    assert [r["status"] for r in releases][:2] == ["failed", "failed"]

    # ps:stop stops a release command running on the swarm, as it does on one machine
    slow = home.start_push("gated", "web", files={"BODY": "v4", "Procfile": "web: python3 /app/server.py\n"
                                                  "release: echo migrating; sleep 120\n"})
    name = wait_for(lambda: next((r["process"] for r in ps(home, "gated") if r["process"].startswith("release.")
                                  and r["state"] == "up"), None), "the release command to run", timeout=180, interval=0.5)
    home.gitpaas("ps:stop", name, "-a", "gated")
    _, err = slow.communicate(timeout=120)
    assert slow.returncode != 0 and "migrating" in err and "release command stopped" in err, err
    assert home.get("gated").text.strip() == "v1 from web.1"

    # ps:restart: fresh processes of the same release, one by one
    before = {d["name"]: d["id"] for d in home.json("ps", "-a", "gated") if d["state"] == "up"}
    home.gitpaas("ps:restart", "-a", "gated")
    after = {d["name"]: d["id"] for d in home.json("ps", "-a", "gated") if d["state"] == "up"}
    assert after.keys() == before.keys() == {"web.1"} and after["web.1"] != before["web.1"]
    assert home.get("gated").text.strip() == "v1 from web.1"

    # a type scaled to 0 stays deployable: a release rolls a service with no process, then it scales back
    home.gitpaas("ps:scale", "web=0", "-a", "gated")
    assert home.get("gated").status_code == 503
    home.gitpaas("config:set", "AFTER_ZERO=1", "-a", "gated")
    home.gitpaas("ps:scale", "web=1", "-a", "gated")
    assert "AFTER_ZERO=1" in home.get("gated", "/env").text


def test_no_request_fails_while_a_deploy_and_a_rollback_roll_across_the_swarm(swarm_home):
    home = swarm_home
    home.create_app("steady")
    assert home.push("steady", "web", files={"BODY": "v1"}).returncode == 0
    home.gitpaas("ps:scale", "web=2", "-a", "steady")
    with Load(home, "steady") as load:
        time.sleep(1)
        assert home.push("steady", "web", files={"BODY": "v2"}).returncode == 0
        wait_for(lambda: set(bodies(home, "steady", 6)) <= {"v2 from web.1", "v2 from web.2"}, "v2 everywhere")
        home.gitpaas("rollback", "v1", "-a", "steady")  # v1's slug again, as v3
        wait_for(lambda: set(bodies(home, "steady", 6)) <= {"v1 from web.1", "v1 from web.2"}, "v1 again")
        time.sleep(1)
    assert len(load.results) > 50
    assert load.failures() == [], Counter(str(f[0]) for f in load.failures())


def test_a_dead_nodes_web_processes_are_rescheduled_and_the_app_keeps_answering(swarm_home, rig):
    home = swarm_home
    home.create_app("survivor")
    assert home.push("survivor", "web", files={"BODY": "v1"}).returncode == 0
    home.gitpaas("ps:scale", "web=3", "-a", "survivor")
    server = ApiServer(home)  # gitpaas server: the router follows what Swarm moves
    try:
        workers = {n["hostname"] for n in home.json("nodes") if n["role"] == "worker"}
        victim = next(r["node"] for r in ps(home, "survivor") if r["node"] in workers)
        index = victim.rsplit("n", 1)[-1]
        subprocess.run(["bash", str(RIG), "stop-node", index], check=True, capture_output=True, timeout=120)
        try:
            wait_for(lambda: all(r["node"] != victim for r in ps(home, "survivor") if r["state"] == "up")
                     and len([r for r in ps(home, "survivor") if r["state"] == "up"]) == 3,
                     f"Swarm to move {victim}'s processes", timeout=120, interval=1)
            wait_for(lambda: all(home.get("survivor").status_code == 200 for _ in range(6)),
                     "the router to follow", timeout=30, interval=0.5)
            assert {r["release"] for r in ps(home, "survivor")} == {"v1"}  # nothing in the records changed
            assert [r["version"] for r in home.json("releases", "-a", "survivor")] == [1]
        finally:
            subprocess.run(["bash", str(RIG), "start-node", index], capture_output=True, timeout=180)
    finally:
        server.stop()
