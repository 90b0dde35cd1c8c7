"""Breaking things on purpose: gitpaas killed with SIGKILL at each phase of a deploy, the disk full
during a build, the router killed, a release record truncated, concurrent changes to one app, an
app destroyed while its old processes are still being retired. After each: nothing is lost — the
records say what happened, exactly one good release is current and serves, nothing is left over."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid

import pytest
import requests

from conftest import FAULTS
from gitpaas import labels
from gitpaas.faults import POINTS
from gitpaas.router.processes import children, process_title
from harness import ApiServer, wait_for

WEB = "web: python3 /app/server.py\n"
RELEASE = "release: echo migrating\n"


def check_records(home, app: str) -> dict:
    """Every record readable and settled; exactly one current, and it is the app's release. Returns it."""
    records = home.json("releases", "-a", app, "-n", "1000")
    FAULTS["records checked"] += len(records)
    assert [r["version"] for r in records] == sorted({r["version"] for r in records}, reverse=True), "unique"
    assert all(r["status"] in ("succeeded", "failed") for r in records), [r["status"] for r in records]
    current = [r for r in records if r["current"]]
    assert len(current) == 1 and current[0]["status"] == "succeeded"
    assert home.json("apps:info", "-a", app)["current_release"] == f"v{current[0]['version']}"
    return current[0]


def serving(home, app: str) -> list[tuple[str, int]]:
    return sorted((d["name"], d["release"]["version"]) for d in home.json("ps", "-a", app) if d["state"] == "up")


@pytest.mark.parametrize("point", POINTS)
def test_a_deploy_killed_at_each_phase_is_settled_and_the_last_good_release_serves(home, docker_client, point):
    home.create_app("killed")
    assert home.push("killed", "web", files={"BODY": "good", "Procfile": WEB + RELEASE}).returncode == 0
    push = home.push("killed", "web", files={"BODY": "lost", "Procfile": WEB + RELEASE},
                     env={"GITPAAS_FAULT": point})
    FAULTS["injected"] += 1
    assert push.returncode != 0 and "pre-receive hook declined" in push.stderr

    home.gitpaas("ps", "-a", "killed")  # any command settles what the killed deploy left
    current = check_records(home, "killed")
    assert current["version"] == 1
    if point != "build":
        record = home.release("killed", 2)
        assert record["status"] == "failed" and record["failure"]["reason"].startswith("interrupted")
    assert home.get("killed").text == "good from web.1\n"
    wait_for(lambda: serving(home, "killed") == [("web.1", 1)] and not [
        c for c in docker_client.containers.list(all=True, filters=labels.filters(
            {labels.HOME: str(home.path), labels.APP: "killed", labels.RELEASE: "2"}))],
        f"only v1 to run after a kill at {point}", timeout=60)
    assert home.push("killed", "web", files={"BODY": "next", "Procfile": WEB + RELEASE}).returncode == 0
    assert home.get("killed").text == "next from web.1\n"


def test_a_full_disk_during_a_build_refuses_the_push_and_loses_nothing(home, tmp_path):
    home.path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(home.path)], check=True)
    try:
        home.create_app("cramped")
        assert home.push("cramped", "web", files={"BODY": "fits"}).returncode == 0
        noisy = ("ARG GITPAAS_STACK_IMAGE=gitpaas/stack:trixie\nFROM ${GITPAAS_STACK_IMAGE}\nWORKDIR /app\n"
                 f"COPY . /app\nRUN echo {uuid.uuid4().hex} && head -c 6000000 /dev/zero | tr '\\\\0' 'x' | fold -w 100\n"
                 'CMD ["python3", "/app/server.py"]\n')
        # BuildKit passes on a step's output only up to its log limits ("[output clipped, log limit
        # …]"): the disk is filled to its last 64 KiB first, which the build's log then fills. The
        # step is new each run: BuildKit's cache outlives the images, and a cached step prints nothing
        ballast = home.path / "ballast"
        free = os.statvfs(home.path)
        ballast.write_bytes(b"x" * (free.f_bavail * free.f_frsize - 64 * 1024))
        push = home.push("cramped", "web", files={"BODY": "too big", "Dockerfile": noisy})
        FAULTS["injected"] += 1
        assert push.returncode != 0
        assert "the disk holding gitpaas's home is full" in push.stderr
        assert "head -c 6000000 /dev/zero" in push.stderr, "the disk filled during the build"
        told = "\n".join(line for line in push.stderr.splitlines() if line.startswith("remote:"))
        assert "Traceback" not in told and str(home.path) not in told, told
        ballast.unlink()  # the operator frees space
        assert check_records(home, "cramped")["version"] == 1
        assert home.get("cramped").text == "fits from web.1\n"
        assert home.push("cramped", "web", files={"BODY": "after"}).returncode == 0
        assert home.get("cramped").text == "after from web.1\n"
    finally:
        home.purge()
        subprocess.run(["umount", "-l", str(home.path)], check=False)


def kill_router(home) -> None:
    master = int((home.path / "router" / "nginx.pid").read_text())
    for pid in [master, *children(master)]:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not process_title(master), "nginx to die")
    FAULTS["injected"] += 1


def test_a_killed_router_comes_back_with_the_next_deploy_or_boot(home):
    home.create_app("routed")
    assert home.push("routed", "web", files={"BODY": "one"}).returncode == 0
    kill_router(home)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{home.port}/", headers={"Host": "routed.localhost"}, timeout=2)
    assert home.push("routed", "web", files={"BODY": "two"}).returncode == 0
    assert home.get("routed").text == "two from web.1\n"
    kill_router(home)
    assert "started the router" in home.gitpaas("boot").stdout
    assert home.get("routed").text == "two from web.1\n"
    assert check_records(home, "routed")["version"] == 2


def test_a_truncated_release_record_is_named_and_everything_else_still_answers(home):
    home.create_app("torn")
    for body in ("one", "two", "three"):
        assert home.push("torn", "web", files={"BODY": body}).returncode == 0
    record = home.path / "apps/torn/releases/v2/release.json"
    record.write_bytes(record.read_bytes()[:40])
    FAULTS["injected"] += 1
    listed = home.gitpaas("releases", "-a", "torn")
    assert "releases/v2/release.json is damaged (not valid JSON) and left out" in listed.stderr
    assert "v3" in listed.stdout and "v1" in listed.stdout
    info = home.gitpaas("releases:info", "v2", "-a", "torn", check=False)
    assert info.returncode == 10 and info.stderr.count("\n") == 1
    assert "torn: releases/v2/release.json is damaged (not valid JSON)" in info.stderr
    assert "Traceback" not in info.stderr and str(home.path) not in info.stderr
    api = ApiServer(home)
    try:
        home.gitpaas("access:add", api.email, "-a", "torn")
        answer = api.call("GET", "/apps/torn/releases")
        assert answer.status_code == 200 and [r["version"] for r in answer.json()] == [1, 3]
        assert "releases/v2/release.json is damaged" in answer.headers["Warning"]
        broken = api.call("GET", "/apps/torn/releases/2")
        assert broken.status_code == 500 and broken.json()["id"] == "damaged_record"
    finally:
        api.stop()
    assert home.get("torn").text == "three from web.1\n"
    assert home.push("torn", "web", files={"BODY": "four"}).returncode == 0
    FAULTS["records checked"] += 4


def test_concurrent_pushes_config_changes_and_rollbacks_leave_one_consistent_app(home):
    home.create_app("busy")
    assert home.push("busy", "web", files={"BODY": "base"}).returncode == 0
    for clone in ("a", "b"):
        home.clone("busy", clone)
    outcomes: list[int] = []

    def pusher(clone: str) -> None:
        for round_ in range(3):
            outcomes.append(home.push("busy", "web", files={"BODY": f"{clone}{round_}"}, clone=clone).returncode)

    def configurer() -> None:
        for round_ in range(3):
            outcomes.append(home.gitpaas("config:set", f"ROUND={round_}", "-a", "busy", check=False).returncode)

    def roller() -> None:
        for _ in range(2):
            outcomes.append(home.gitpaas("rollback", "-a", "busy", check=False).returncode)
    threads = [threading.Thread(target=pusher, args=(c,)) for c in ("a", "b")]
    threads += [threading.Thread(target=configurer), threading.Thread(target=roller)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    FAULTS["injected"] += 1  # one round of 11 changes racing for one app
    assert len(outcomes) == 11 and outcomes.count(0) >= 5, outcomes  # refused pushes (moved branch) are fine
    current = check_records(home, "busy")
    wait_for(lambda: serving(home, "busy") == [("web.1", current["version"])], "the current release to run alone")
    commit = home.release("busy", current["version"])["commit"]
    shipped = subprocess.run(["git", "--git-dir", str(home.path / "apps/busy/repo.git"), "show", f"{commit}:BODY"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert home.get("busy").text == f"{shipped} from web.1\n", "what serves is the current release's code"


def test_destroying_an_app_while_its_old_processes_retire_leaves_nothing(home, docker_client):
    for attempt in range(6):
        app = f"gone{attempt}"
        home.create_app(app)
        assert home.push(app, "web", files={"BODY": "one"}).returncode == 0
        assert home.push(app, "web", files={"BODY": "two"}).returncode == 0  # v1 is being retired now
        home.gitpaas("apps:destroy", app, "--confirm", app)
        FAULTS["injected"] += 1
        left = home.docker_objects(docker_client, app)
        networks = docker_client.networks.list(names=[f"gitpaas-{home.settings.home_id}-{app}"])
        assert (left["containers"], left["images"], networks) == ([], [], []), f"attempt {attempt}: {left}"
        assert not (home.path / "router" / "apps" / f"{app}.conf").exists()
