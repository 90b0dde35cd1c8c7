"""A server a team can live on, part 2: apps cannot touch each other, and every process has limits.
Proven from inside real containers: what one app's process can reach, who it runs as, what the
engine does when it exceeds its memory."""

from __future__ import annotations

import ipaddress

from gitpaas import labels
from harness import wait_for

EATER = ("import sys, time\n"
         "time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)  # (a worker passes its startup window first)\n"
         "blocks = []\n"
         "for _ in range(2000):\n"
         "    blocks.append(bytearray(1024 * 1024))  # 1 MB more each step, until the engine says no\n"
         "    time.sleep(0.002)\n"
         "time.sleep(1000)\n")


def web_container(docker_client, home, app: str):
    (found,) = [c for c in docker_client.containers.list(filters=labels.filters(
        {labels.HOME: str(home.path), labels.APP: app, labels.ROLE: "process"})) if not c.name.endswith("-retiring")]
    return found


def run_in(container, script: str) -> tuple[int, str]:
    result = container.exec_run(["python3", "-c", script])
    return result.exit_code, result.output.decode(errors="replace")


def test_one_apps_processes_cannot_reach_or_resolve_another_apps(home, docker_client):
    for app in ("alpha", "beta"):
        home.create_app(app)
        assert home.push(app, "web", files={"BODY": app}).returncode == 0
    alpha, beta = web_container(docker_client, home, "alpha"), web_container(docker_client, home, "beta")
    networks = beta.attrs["NetworkSettings"]["Networks"]
    assert list(networks) == [f"gitpaas-{home.settings.home_id}-beta"], "each app has its own network"
    beta_ip = next(iter(networks.values()))["IPAddress"]

    code, out = run_in(beta, "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:5000/').read())")
    assert code == 0 and "beta from web.1" in out, "the probe itself works"
    code, out = run_in(alpha, f"import urllib.request; urllib.request.urlopen('http://{beta_ip}:5000/', timeout=3)")
    assert code != 0 and ("timed out" in out or "unreachable" in out.lower() or "refused" in out), out
    code, out = run_in(alpha, f"import socket; socket.gethostbyname({beta.name!r})")
    assert code != 0 and "gaierror" in out
    # the router still reaches both
    assert home.get("alpha").text == "alpha from web.1\n" and home.get("beta").text == "beta from web.1\n"


def test_web_processes_keep_addresses_of_their_own_and_on_a_network_the_engine_chose_are_published(home,
                                                                                                   docker_client):
    home.create_app("kept")
    assert home.push("kept", "web", files={"Procfile": "web: python3 /app/server.py\nworker: sleep infinity\n"}
                     ).returncode == 0
    home.gitpaas("ps:scale", "worker=1", "-a", "kept")
    network = docker_client.networks.get(home.settings.app_network("kept"))
    (config,) = network.attrs["IPAM"]["Config"]
    upper = list(ipaddress.ip_network(config["Subnet"]).subnets(prefixlen_diff=1))[1]
    addresses = {}
    for container in docker_client.containers.list(filters=labels.filters(
            {labels.HOME: str(home.path), labels.APP: "kept", labels.ROLE: "process"})):
        (endpoint,) = container.attrs["NetworkSettings"]["Networks"].values()
        addresses[container.labels[labels.PROCESS_TYPE]] = ipaddress.ip_address(endpoint["IPAddress"])
        assert not container.attrs["HostConfig"]["PortBindings"], "no port published: the router goes straight there"
    # the web process keeps one of the upper half; the engine hands the worker one of the lower
    assert addresses["web"] in upper and addresses["worker"] not in upper, (config, addresses)

    # A network made otherwise (by hand, or by a gitpaas before app networks had a subnet of their
    # own): the engine keeps no address there, so the web process is published on loopback
    made = docker_client.networks.create(home.settings.app_network("byhand"), driver="bridge",
                                         labels={labels.HOME: str(home.path), labels.APP: "byhand"})
    home.create_app("byhand")
    assert home.push("byhand", "web", files={"BODY": "by hand"}).returncode == 0
    (web,) = [c for c in docker_client.containers.list(filters=labels.filters(
        {labels.HOME: str(home.path), labels.APP: "byhand", labels.ROLE: "process"}))]
    assert web.attrs["NetworkSettings"]["Networks"].keys() == {made.name}
    assert web.attrs["HostConfig"]["PortBindings"]["5000/tcp"][0]["HostIp"] == "127.0.0.1"
    assert home.get("byhand").text == "by hand from web.1\n"


def test_processes_run_unprivileged_with_their_sizes_limits(home, docker_client):
    home.create_app("locked")
    assert home.push("locked", "web").returncode == 0
    container = web_container(docker_client, home, "locked")
    host = container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges:true" in host["SecurityOpt"]
    assert not any("seccomp=unconfined" in option for option in host["SecurityOpt"])
    assert (host["Memory"], host["MemorySwap"], host["CpuShares"], host["PidsLimit"]) == (
        512 * 1024 * 1024, 512 * 1024 * 1024, 1024, 256)
    code, out = run_in(container, "import os; print(os.getuid(), os.getgid(), open('/proc/self/status').read())")
    assert code == 0 and out.startswith("65534 65534"), "a Dockerfile without USER runs as nobody"
    assert "\nSeccomp:\t2" in out and "\nNoNewPrivs:\t1" in out and "\nCapEff:\t0000000000000000" in out

    sized = home.gitpaas("ps:type", "web=standard-2x", "-a", "locked")
    assert "standard-2x" in sized.stdout and "1024 MB" in sized.stdout
    resized = web_container(docker_client, home, "locked")
    assert resized.id != container.id and resized.attrs["HostConfig"]["Memory"] == 1024 * 1024 * 1024
    assert home.get("locked").text.endswith("from web.1\n")
    assert [(d["name"], d["size"]) for d in home.json("ps", "-a", "locked") if d["state"] == "up"] == [
        ("web.1", "Standard-2X")]


def test_a_dockerfile_user_is_kept_and_a_buildpack_slug_runs_as_its_build_user(home, docker_client):
    home.create_app("ownuser")
    dockerfile = ("ARG GITPAAS_STACK_IMAGE=gitpaas/stack:trixie\nFROM ${GITPAAS_STACK_IMAGE}\nWORKDIR /app\n"
                  "COPY . /app\nUSER 4242:4242\nCMD [\"python3\", \"/app/server.py\"]\n")
    assert home.push("ownuser", "web", files={"Dockerfile": dockerfile}).returncode == 0
    assert run_in(web_container(docker_client, home, "ownuser"), "import os; print(os.getuid())")[1].strip() == "4242"

    home.create_app("packed")
    assert home.push("packed", "static-site").returncode == 0
    code, out = run_in(web_container(docker_client, home, "packed"),
                       "import os; open('/app/written-at-runtime', 'w').write('ok'); print(os.getuid())")
    assert code == 0 and out.strip() == "65534", "as on Heroku, a dyno may write /app, and is not root"


def test_a_process_over_its_memory_is_killed_restarted_and_reported(home, docker_client):
    home.create_app("hungry")
    files = {"eat.py": EATER, "Procfile": "web: python3 /app/server.py\nworker: python3 /app/eat.py 4\n"}
    assert home.push("hungry", "web", files=files).returncode == 0
    home.gitpaas("ps:type", "worker=eco", "-a", "hungry")
    home.gitpaas("ps:scale", "worker=1", "-a", "hungry")

    def reported():
        worker = next((d for d in home.json("ps", "-a", "hungry") if d["type"] == "worker"), None)
        table = home.gitpaas("ps", "-a", "hungry").stdout
        return worker and "R15 memory quota vastly exceeded: killed at its 256 MB limit (eco)" in table and table
    table = wait_for(reported, "the worker to be killed for memory and reported", timeout=90)
    assert "worker.1" in table
    logs = home.gitpaas("logs", "-a", "hungry").stdout
    assert "heroku[worker.1]: Error R15 (Memory quota vastly exceeded): killed at its 256 MB limit (eco)" in logs
    assert home.get("hungry").text.endswith("from web.1\n"), "the web process is untouched"


def test_a_release_command_over_its_memory_fails_its_release(home):
    home.create_app("greedy")
    assert home.push("greedy", "web", files={"BODY": "v1", "Procfile": "web: python3 /app/server.py\nrelease: true\n"}
                     ).returncode == 0
    home.gitpaas("ps:type", "release=eco", "-a", "greedy")
    push = home.push("greedy", "web", files={"BODY": "v2", "eat.py": EATER,
                                             "Procfile": "web: python3 /app/server.py\nrelease: python3 /app/eat.py\n"})
    assert push.returncode != 0
    assert "release command ran out of memory (R15): killed at its 256 MB limit (eco)" in push.stderr
    assert home.release("greedy", 2)["status"] == "failed"
    assert home.get("greedy").text == "v1 from web.1\n"
