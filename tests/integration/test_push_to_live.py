"""git push → slug image → release phase gate → formation swap → vNN on disk, for real."""

from __future__ import annotations

import os
import re
import signal
import stat
import threading
import time

import pytest

from gitpaas import labels
from harness import APPS, wait_for
from schema import validate


def deployed(result) -> bool:
    return result.returncode == 0


def test_gitpaas_speaks_the_engines_api_version_found_by_a_ping_not_by_asking_its_version(docker_client, monkeypatch):
    """(gitpaas.dockerutil.negotiated_client: the engine answers ``/_ping`` in 1.5 ms here, ``/version``
    in 8 ms, as it runs ``runc --version`` to answer it)"""
    from docker.api.client import APIClient
    from docker.constants import DEFAULT_DOCKER_API_VERSION
    from docker.utils import version_lt

    from gitpaas.dockerutil import docker_client as gitpaas_client
    engine = docker_client.version()["ApiVersion"]

    def asked(self):
        raise AssertionError("gitpaas asked the engine's /version")
    monkeypatch.setattr(APIClient, "_retrieve_server_version", asked)
    ours = gitpaas_client()
    try:
        assert ours.api.api_version == (engine if version_lt(engine, DEFAULT_DOCKER_API_VERSION)
                                        else DEFAULT_DOCKER_API_VERSION)
        assert isinstance(ours.containers.list(limit=1), list)  # (spoken to in that version)
    finally:
        ours.close()


def test_first_deploy_answers_and_is_recorded(home, docker_client):
    home.create_app("first")
    push = home.push("first", "web")
    assert deployed(push), push.stderr
    out = push.stderr
    for header in ("-----> Building on the trixie stack with a Dockerfile", "-----> Release v1 created", "-----> Running release command",
                   "release phase for hello v1", "-----> Deployed v1"):
        assert header in out
    assert home.get("first").text == "hello v1 from web.1\n"

    assert re.search(r"-----> Deployed v1 in \d+\.\d s: receive \d+\.\d, build \d+\.\d, release \d+\.\d, "
                     r"health \d+\.\d, swap \d+\.\d", out), out[-600:]

    record = home.release("first", 1)
    assert record["status"] == "succeeded" and record["current"] is True
    assert record["description"] == f"Deploy {home.head('first')[:7]}"
    assert set(record["timings"]) == {"receive", "build", "release", "health", "swap", "total"}
    assert record["timings"]["total"] >= record["timings"]["build"] + record["timings"]["health"]
    assert "Timings:" in home.gitpaas("releases:info", "v1", "-a", "first").stdout
    assert record["commit"] == home.head("first")
    assert set(record["process_types"]) == {"web", "release"}
    assert record["image"].endswith("/first:v1")
    validate("release", {key: record[key] for key in record if key in {
        "id", "version", "description", "status", "current", "created_at", "updated_at", "user", "slug", "app",
        "eligible_for_rollback", "output_stream_url", "addon_plan_names", "artifacts"}})
    assert (home.path / "apps/first/releases/v1/output.log").read_text() == "release phase for hello v1\n"

    # every Docker object carries the home and the app
    objects = home.docker_objects(docker_client, "first")
    assert len(objects["containers"]) == 1 and objects["images"]
    container = objects["containers"][0]
    assert container.labels[labels.DYNO] == "web.1" and container.labels[labels.RELEASE] == "1"
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
    assert env["DYNO"] == "web.1" and env["PORT"] == "5000"

    releases = home.json("releases", "-a", "first")
    assert [r["version"] for r in releases] == [1]
    info = home.json("apps:info", "-a", "first")
    assert info["current_release"] == "v1" and info["web_url"] == f"http://first.localhost:{home.port}/"
    assert info["formation"] == [{"type": "web", "quantity": 1, "command": "python3 /app/server.py"}]
    for dyno in home.json("ps", "-a", "first"):
        validate("dyno", dyno)
        assert dyno["name"] == "web.1" and dyno["state"] == "up" and dyno["release"]["version"] == 1


def test_second_deploy_swaps_to_the_new_release(home, docker_client):
    home.create_app("swap")
    assert deployed(home.push("swap", "web"))
    server_log = home.path / "logs" / "forkserver.log"
    assert (home.path / "forkserver" / "socket").exists(), "the home's fork server runs by now"
    before = server_log.read_text()
    push = home.push("swap", "web", files={"BODY": "hello v2"})
    assert deployed(push), push.stderr
    # git ran the installed hook (its client without `site`), and the server took it as it was
    assert "ran on its own" not in server_log.read_text()[len(before):]
    assert "release phase for hello v2" in push.stderr
    assert "Retiring 1 old process in the background (SIGTERM, SIGKILL after 5 s)" in push.stderr
    assert home.get("swap").text == "hello v2 from web.1\n"
    assert home.release("swap", 2)["current"] is True
    assert home.release("swap", 1)["current"] is False
    def only_v2():
        return [c.labels[labels.RELEASE] for c in home.docker_objects(docker_client, "swap")["containers"]] == ["2"]
    deadline = time.monotonic() + 30
    while not only_v2():
        assert time.monotonic() < deadline, "the v1 container was retired"
        time.sleep(0.2)
    table = home.gitpaas("releases", "-a", "swap").stdout
    assert "v2 (current)" in table and "v1" in table and "succeeded" in table


def test_failing_release_command_rejects_the_push_and_keeps_the_old_release(home, docker_client):
    home.create_app("gate")
    assert deployed(home.push("gate", "web"))
    good = home.head("gate")
    push = home.push("gate", "web", files={
        "BODY": "broken v2",
        "Procfile": "web: python3 /app/server.py\nrelease: echo 'migrating...'; echo 'relation users missing' >&2; exit 1\n",
    })
    assert push.returncode != 0
    assert "pre-receive hook declined" in push.stderr
    assert "release v2 failed: release command exited with status 1" in push.stderr
    assert "gitpaas releases:output v2 -a gate" in push.stderr
    assert "gate keeps running v1, untouched" in push.stderr
    assert home.remote_ref("gate") == good, "the branch was not updated"

    record = home.release("gate", 2)
    assert record["status"] == "failed" and record["current"] is False
    assert record["failure"] == {"reason": "release command exited with status 1", "exit_status": 1}
    assert record["eligible_for_rollback"] is False
    output = home.gitpaas("releases:output", "v2", "-a", "gate", check=False)
    assert output.stdout == "migrating...\nrelation users missing\n"
    assert output.returncode == 1 and "v2 failed: release command exited with status 1" in output.stderr
    assert home.release("gate", 1)["current"] is True
    assert home.get("gate").text == "hello v1 from web.1\n"
    # no release container is left behind, and v1 is what runs
    containers = home.docker_objects(docker_client, "gate")["containers"]
    assert [c.labels[labels.RELEASE] for c in containers] == ["1"]


def test_killed_release_container_fails_the_release(home, docker_client):
    home.create_app("killed")
    assert deployed(home.push("killed", "web"))

    def kill_release_container():
        selector = labels.filters({labels.HOME: str(home.path), labels.ROLE: "release"})
        for _ in range(300):
            for container in docker_client.containers.list(filters=selector):
                container.kill()
                return
            time.sleep(0.1)
    killer = threading.Thread(target=kill_release_container)
    killer.start()
    push = home.push("killed", "web", files={"BODY": "v2", "Procfile": "web: python3 /app/server.py\nrelease: sleep 120\n"})
    killer.join()
    assert push.returncode != 0
    assert "release v2 failed: release command stopped" in push.stderr
    assert home.release("killed", 2)["status"] == "failed"
    assert home.get("killed").text == "hello v1 from web.1\n"
    assert not docker_client.containers.list(all=True, filters=labels.filters(
        {labels.HOME: str(home.path), labels.ROLE: "release"}))


@pytest.mark.parametrize("builder", ["buildkit", "classic"])
def test_build_failure_rejects_the_push_with_the_log_tail(home, builder):
    home.create_app("buildfail")
    assert deployed(home.push("buildfail", "web"))
    push = home.push("buildfail", "build-fails", env={"GITPAAS_DOCKER_BUILDER": builder})
    assert push.returncode != 0
    assert "error: assets/missing.css not found" in push.stderr
    failed = [line for line in push.stderr.splitlines() if "build failed: " in line]
    ending = {"buildkit": "exit code: 3", "classic": "returned a non-zero code: 3"}[builder]
    assert len(failed) == 1 and "exit 3" in failed[0] and failed[0].rstrip().endswith(ending), push.stderr
    assert "Full build log:" in push.stderr
    assert "buildfail keeps running v1, untouched" in push.stderr
    assert [r["version"] for r in home.json("releases", "-a", "buildfail")] == [1], "a failed build makes no release"
    assert home.get("buildfail").text == "hello v1 from web.1\n"


@pytest.mark.parametrize("builder", ["buildkit", "classic"])
def test_a_dockerfile_is_built_by_either_of_the_engines_builders_into_one_labelled_image(home, docker_client, builder):
    home.create_app("built")
    push = home.push("built", "web", env={"GITPAAS_DOCKER_BUILDER": builder})
    assert deployed(push), push.stderr
    said = [line.removeprefix("remote:").strip() for line in push.stderr.splitlines()]
    if builder == "buildkit":  # BuildKit's steps, told as `docker build --progress=plain` does
        [step] = [m[1] for m in map(re.compile(r"#(\d+) \[3/3\] COPY \. /app").fullmatch, said) if m]
        assert any(re.fullmatch(rf"#{step} (DONE \d+\.\ds|CACHED)", line) for line in said), "\n".join(said)
        assert not any(line.startswith("Step ") for line in said)
    else:
        assert "Step 5/5 : CMD [\"python3\", \"/app/server.py\"]" in said, said
    assert home.get("built").text == "hello v1 from web.1\n"
    image = docker_client.images.get(home.release("built", 1)["image"])
    assert image.labels[labels.HOME] == str(home.path) and image.labels[labels.APP] == "built"
    assert [i.id for i in home.docker_objects(docker_client, "built")["images"]] == [image.id]


@pytest.mark.parametrize("source, message", [
    ("bad-procfile", "Procfile line 3: expected 'name: command', got 'worker python3 worker.py'"),
    ("undetectable", "cannot tell how to build this app: it has no Dockerfile, and no bundled buildpack detects it"),
])
def test_unusable_push_is_refused_with_its_reason(home, source, message):
    home.create_app("refused")
    push = home.push("refused", source)
    assert push.returncode != 0
    assert message in push.stderr
    assert home.remote_ref("refused") is None
    assert home.json("releases", "-a", "refused") == []


def test_only_main_or_master_deploys(home):
    home.create_app("branches")
    push = home.push("branches", "web", branch="feature")
    assert push.returncode != 0
    assert "gitpaas deploys only the main or master branch, not 'feature'" in push.stderr
    assert deployed(home.push("branches", "web", branch="master"))
    assert home.get("branches").text == "hello v1 from web.1\n"


def test_a_release_command_shares_the_network_of_a_running_process_else_has_its_own(home, docker_client):
    """No network to set up for a release command when a process of the app runs: it shares that
    one's (the engine starts it in a third of the time); the first release has its own."""
    home.create_app("beside")
    procfile = ("web: python3 /app/server.py\n"
                "release: echo \"host $(cat /proc/sys/kernel/hostname)\"; "
                "python3 -c \"import urllib.request as u; print(u.urlopen('http://localhost:5000/').read().decode())\" "
                "|| echo no web here\n")
    first = home.push("beside", "web", files={"Procfile": procfile})
    assert deployed(first), first.stderr
    assert re.search(r"host beside-release-\d+\b", first.stderr) and "no web here" in first.stderr
    second = home.push("beside", "web", files={"Procfile": procfile, "BODY": "two"})
    assert deployed(second), second.stderr
    assert "host beside-web-1" in second.stderr and "hello v1 from web.1" in second.stderr, second.stderr
    assert home.get("beside").text == "two from web.1\n"
    assert not docker_client.containers.list(all=True, filters=labels.filters(
        {labels.HOME: str(home.path), labels.ROLE: "release"}))


def test_a_release_command_whose_shared_process_dies_fails_its_release_saying_why(home, docker_client):
    """web.1 crashes while the release command that shares its network runs: the command, which has
    lost its network for good (the engine restarts web.1 in a new one), is killed at once and its
    release fails naming the cause."""
    home.create_app("orphan")
    assert deployed(home.push("orphan", "web"))

    crashed = []
    app = {labels.HOME: str(home.path), labels.APP: "orphan"}

    def kill_web_once_the_release_runs() -> None:
        for _ in range(600):
            if docker_client.containers.list(filters=labels.filters({**app, labels.ROLE: "release"})):
                for web in docker_client.containers.list(filters=labels.filters({**app, labels.DYNO: "web.1"})):
                    if web.name.endswith("-held"):
                        continue  # v2's, started held meanwhile: not the one whose network is shared
                    os.kill(web.attrs["State"]["Pid"], signal.SIGKILL)  # a crash: the engine restarts it
                    crashed.append(web.name)
                return
            time.sleep(0.1)
    killer = threading.Thread(target=kill_web_once_the_release_runs)
    killer.start()
    started = time.monotonic()
    push = home.push("orphan", "web", files={"BODY": "two", "Procfile": "web: python3 /app/server.py\n"
                                                                     "release: echo migrating; sleep 120\n"})
    killer.join()
    assert len(crashed) == 1, "web.1 crashed while the release command ran"
    assert push.returncode != 0 and time.monotonic() - started < 60, "killed, not left to its sleep"
    assert ("release v2 failed: release command lost its network: web.1, whose network it shared, stopped "
            "while it ran") in push.stderr, push.stderr
    assert home.release("orphan", 2)["status"] == "failed"
    wait_for(lambda: home.get("orphan").text == "hello v1 from web.1\n", "the engine to restart v1's web.1")
    assert not docker_client.containers.list(all=True, filters=labels.filters({**app, labels.ROLE: "release"}))


def test_new_processes_start_held_while_the_release_command_runs_and_run_only_after_it(home, docker_client):
    """v2's web.1 is started while v2's release command runs, but held: its container is up with
    only the init and the gate's shell in it, no app code; ``ps`` does not show it and v1 serves.
    Once the command succeeds that same container runs the app and serves; when it later crashes
    the engine restarts it straight into the app, without holding it again."""
    home.create_app("held")
    assert deployed(home.push("held", "web"))
    app = {labels.HOME: str(home.path), labels.APP: "held"}
    seen: dict = {}

    def look_while_the_release_runs() -> None:
        for _ in range(300):
            for container in docker_client.containers.list(filters=labels.filters({**app, labels.RELEASE: "2"})):
                if container.name.endswith("-held") and container.status == "running":
                    time.sleep(1)  # (well into the release command's sleep)
                    seen["id"] = container.id
                    seen["commands"] = [row[-1] for row in container.top()["Processes"]]
                    seen["ps"] = [(p["name"], p["release"]["version"]) for p in home.json("ps", "-a", "held")]
                    seen["body"] = home.get("held").text
                    return
            time.sleep(0.05)
    looker = threading.Thread(target=look_while_the_release_runs)
    looker.start()
    push = home.push("held", "web", files={"BODY": "two", "Procfile": "web: python3 /app/server.py\n"
                                                                   "release: echo migrating; sleep 4\n"})
    looker.join()
    assert deployed(push), push.stderr
    assert "Meanwhile the new processes' containers start, their commands held until it succeeds" in push.stderr
    assert seen, "v2's web.1 was started, held, while the release command ran"
    # only the init and the gate's shell, waiting (the app's command is among their arguments, not running)
    assert sorted(command.split()[0] for command in seen["commands"]) == ["/bin/sh", "/sbin/docker-init"], \
        seen["commands"]
    assert ("web.1", 2) not in seen["ps"] and seen["body"] == "hello v1 from web.1\n"

    assert home.get("held").text == "two from web.1\n"
    (web,) = docker_client.containers.list(filters=labels.filters({**app, labels.RELEASE: "2", labels.DYNO: "web.1"}))
    assert web.id == seen["id"] and not web.name.endswith("-held"), "the held container is the one released"
    assert web.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert [p["name"] for p in home.json("ps", "-a", "held") if p["state"] != "stopping"] == ["web.1"]

    os.kill(web.attrs["State"]["Pid"], signal.SIGKILL)  # a crash: the engine restarts it
    wait_for(lambda: docker_client.containers.get(web.id).attrs["RestartCount"] >= 1, "the engine to restart web.1")
    wait_for(lambda: home.get("held").text == "two from web.1\n", "web.1 to serve again, not held a second time")


@pytest.mark.parametrize("line", ["RUN chmod 0755 /tmp", "HEALTHCHECK --interval=1s CMD true"])
def test_a_process_that_cannot_be_held_starts_after_the_release_command_as_before(home, docker_client, line):
    """An image whose /tmp its processes cannot write (the gate cannot say it waits, nor record its
    release: it exits at once), or with a HEALTHCHECK (the engine would run it, the app's code, in a
    held container): the process is started after the release command as any other, and the push
    does not notice."""
    home.create_app("unheld")
    dockerfile = (APPS / "web" / "Dockerfile").read_text() + line + "\n"
    push = home.push("unheld", "web", files={"Dockerfile": dockerfile, "BODY": "one"})
    assert deployed(push), push.stderr
    push = home.push("unheld", "web", files={"Dockerfile": dockerfile, "BODY": "two"})
    assert deployed(push), push.stderr
    assert home.get("unheld").text == "two from web.1\n"
    containers = home.docker_objects(docker_client, "unheld")["containers"]
    current = [c for c in containers if c.labels[labels.RELEASE] == "2"]
    assert [c.name.endswith("-held") for c in current] == [False]
    assert current[0].attrs["Config"]["OpenStdin"] is False, "started after the release command, not released"


def test_dockerfile_app_without_procfile_runs_the_image_command_and_skips_the_release_phase(home):
    home.create_app("plain")
    push = home.push("plain", "web", files={"Procfile": ""})
    assert deployed(push), push.stderr
    assert "skipping the release phase" in push.stderr
    assert home.get("plain").text == "hello v1 from web.1\n"
    assert home.release("plain", 1)["process_types"] == {"web": None}
    (dyno,) = home.json("ps", "-a", "plain")
    assert dyno["command"] == "python3 /app/server.py"


def a_second_push_fails_and_the_first_serves(home, app: str, fixture: str, *said: str, **push) -> None:
    """v1 of the test app deploys; v2 (``fixture``, with ``push``'s files or env) fails its health
    check saying each of ``said``; v1 keeps serving, alone."""
    home.create_app(app)
    assert deployed(home.push(app, "web"))
    second = home.push(app, fixture, **push)
    assert second.returncode != 0
    for words in said:
        assert words in second.stderr, second.stderr[-1500:]
    assert home.release(app, 2)["status"] == "failed"
    assert home.get(app).text == "hello v1 from web.1\n"
    assert [d["release"]["version"] for d in home.json("ps", "-a", app)] == [1]


def test_web_that_never_listens_fails_the_release_and_the_old_one_keeps_serving(home):
    a_second_push_fails_and_the_first_serves(home, "deaf", "never-listens",
                                             "web.1 did not accept connections on PORT 5000 within 3 s",
                                             env={"GITPAAS_BOOT_TIMEOUT": "3"})


def test_web_that_listens_only_inside_its_container_fails_the_release_saying_so(home):
    # Seen listening from its own network namespace, but on 127.0.0.1: the router, on the host, would
    # get nothing but 502s from it (as it did when the router went through a published port)
    a_second_push_fails_and_the_first_serves(
        home, "inward", "web", "web.1 listens on PORT 5000 inside its container, but refused this server's connection",
        "listens only on 127.0.0.1 or localhost there (bind 0.0.0.0)",
        files={"Procfile": "web: python3 -m http.server --bind 127.0.0.1 $PORT\n"})


def test_scaling_web_to_two_serves_from_both(home):
    home.create_app("scaled")
    assert deployed(home.push("scaled", "web", files={
        "Procfile": "web: python3 /app/server.py\nworker: sleep infinity\n"}))
    scale = home.gitpaas("ps:scale", "web=2", "worker=1", "-a", "scaled")
    assert "web=2, worker=1" in scale.stdout
    names = sorted(d["name"] for d in home.json("ps", "-a", "scaled"))
    assert names == ["web.1", "web.2", "worker.1"]
    answered = {home.get("scaled").text for _ in range(20)}
    assert answered == {"hello v1 from web.1\n", "hello v1 from web.2\n"}
    assert home.json("apps:info", "-a", "scaled")["formation"][0]["quantity"] == 2
    # a deploy keeps the scaled formation and the release number does not move for a scale
    assert [r["version"] for r in home.json("releases", "-a", "scaled")] == [1]
    assert deployed(home.push("scaled", "web", files={"BODY": "hello v2",
                                                      "Procfile": "web: python3 /app/server.py\nworker: sleep infinity\n"}))
    assert sorted(d["name"] for d in home.json("ps", "-a", "scaled") if d["state"] == "up") == [
        "web.1", "web.2", "worker.1"]
    home.gitpaas("ps:scale", "web=1", "worker=0", "-a", "scaled")
    assert {d["name"]: d["state"] for d in home.json("ps", "-a", "scaled")} == {
        "web.1": "up", "web.2": "stopping", "worker.1": "stopping"}, "taken out, then retired in the background"
    assert {home.get("scaled").text for _ in range(6)} == {"hello v2 from web.1\n"}
    bad = home.gitpaas("ps:scale", "nope=1", "-a", "scaled", check=False)
    assert bad.returncode == 2 and "no process type 'nope'" in bad.stderr


def test_two_homes_side_by_side_do_not_interfere(home, other_home, docker_client):
    for each, body in ((home, "home one"), (other_home, "home two")):
        each.create_app("twin")
        assert deployed(each.push("twin", "web", files={"BODY": body}))
    assert home.get("twin").text == "home one from web.1\n"
    assert other_home.get("twin").text == "home two from web.1\n"
    assert home.json("apps")[0]["name"] == "twin" and other_home.json("apps")[0]["name"] == "twin"
    home.gitpaas("apps:destroy", "twin", "--confirm", "twin")
    assert other_home.get("twin").text == "home two from web.1\n"
    assert other_home.docker_objects(docker_client, "twin")["containers"]


def test_destroy_leaves_nothing_behind(home, docker_client):
    home.create_app("doomed")
    assert deployed(home.push("doomed", "web"))
    refused = home.gitpaas("apps:destroy", "doomed", check=False)
    assert refused.returncode == 2 and "--confirm doomed" in refused.stderr
    assert home.get("doomed").status_code == 200
    home.gitpaas("apps:destroy", "doomed", "--confirm", "doomed")
    objects = home.docker_objects(docker_client)
    assert objects == {"containers": [], "images": [], "networks": [], "volumes": []}
    assert not (home.path / "apps" / "doomed").exists()
    assert not (home.path / "router" / "apps" / "doomed.conf").exists()
    assert home.get("doomed").status_code == 404
    assert home.gitpaas("apps:info", "-a", "doomed", check=False).returncode == 3


def test_app_names_are_checked(home):
    for bad in ("Upper", "1digit", "has_underscore", "a" * 31, "trailing-"):
        result = home.gitpaas("apps:create", bad, check=False)
        assert result.returncode == 2 and "invalid app name" in result.stderr, bad
    home.create_app("taken")
    again = home.gitpaas("apps:create", "taken", check=False)
    assert again.returncode == 4 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr


def test_the_home_is_private(home):
    """Release output echoes config vars; build logs, repositories and the router's access log are
    nobody else's either: the home is 0700 and what gitpaas writes in it is 0600."""
    home.create_app("private")
    home.gitpaas("config:set", "SECRET=hunter2", "-a", "private")
    assert home.push("private", "web", files={"Procfile": "web: python3 /app/server.py\nrelease: echo $SECRET\n"}
                     ).returncode == 0
    assert home.get("private").status_code == 200
    assert stat.S_IMODE(home.path.stat().st_mode) == 0o700
    app = home.path / "apps" / "private"
    written = [app / "config.json", app / "app.json", app / "releases" / "v1" / "release.json",
               app / "releases" / "v1" / "output.log", *app.glob("builds/*.log"),
               home.path / "router" / "logs" / "access.log", home.path / "home.json"]
    assert len(written) == 7 and "hunter2" in (app / "releases" / "v1" / "output.log").read_text()
    assert {str(path.relative_to(home.path)): oct(stat.S_IMODE(path.stat().st_mode)) for path in written
            if stat.S_IMODE(path.stat().st_mode) & 0o077} == {}
