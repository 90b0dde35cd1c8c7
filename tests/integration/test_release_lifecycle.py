"""The full release lifecycle against the real engine: config vars, rollback, retry, output, cancel,
timeouts, concurrency, recovery after kill -9, retention and app.json's postdeploy."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

from gitpaas import labels
from harness import wait_for

WEB = "web: python3 /app/server.py\n"




def container_env(docker_client, home, app: str) -> list[dict[str, str]]:
    found = docker_client.containers.list(filters=labels.filters(
        {labels.HOME: str(home.path), labels.APP: app, labels.ROLE: "process"}))
    return [dict(item.split("=", 1) for item in c.attrs["Config"]["Env"]) for c in found
            if not c.name.endswith("-retiring")]


def running_release(home, app: str):
    for dyno in home.json("ps", "-a", app):
        if dyno["type"] == "release":
            return dyno
    return None


# --- config vars -----------------------------------------------------------------------------

def test_config_set_and_unset_release_with_exact_values(home, docker_client):
    home.create_app("conf")
    assert home.push("conf", "web", files={
        "Procfile": WEB + 'release: echo "release sees GREETING=$GREETING"\n'}).returncode == 0
    tricky = 'two words = "quoted" \'single\'\nsecond line ünïcødé ✓ $HOME'
    result = home.gitpaas("config:set", "GREETING=hello world", f"TRICKY={tricky}", "-a", "conf")
    assert "Setting GREETING, TRICKY and restarting conf... done, v2" in result.stdout
    assert "release sees GREETING=hello world" in result.stdout, "the release phase ran with the new config"

    assert home.gitpaas("config:get", "TRICKY", "-a", "conf").stdout == tricky + "\n"
    assert home.json("config", "-a", "conf") == {"GREETING": "hello world", "TRICKY": tricky}
    release = home.release("conf", 2)
    assert release["description"] == "Set GREETING, TRICKY config vars"
    assert release["status"] == "succeeded" and release["current"] is True
    assert release["slug"] == home.release("conf", 1)["slug"], "same slug, no build"
    assert (env := container_env(docker_client, home, "conf")) and env[0]["TRICKY"] == tricky
    assert stat.S_IMODE(os.stat(home.path / "apps/conf/config.json").st_mode) == 0o600
    image_env = docker_client.images.get(release["image"]).attrs["Config"]["Env"] or []
    assert not any(item.startswith(("GREETING=", "TRICKY=")) for item in image_env), "never baked into images"

    unset = home.gitpaas("config:unset", "TRICKY", "-a", "conf")
    assert "done, v3" in unset.stdout
    assert home.release("conf", 3)["description"] == "Remove TRICKY config vars"
    assert home.json("config", "-a", "conf") == {"GREETING": "hello world"}
    assert "TRICKY" not in container_env(docker_client, home, "conf")[0]

    bad = home.gitpaas("config:set", "1BAD=x", "-a", "conf", check=False)
    assert bad.returncode == 2 and "invalid config var name '1BAD'" in bad.stderr
    assert home.gitpaas("config:get", "NOPE", "-a", "conf", check=False).returncode == 2


def test_config_change_whose_release_fails_is_kept_but_not_running(home, docker_client):
    home.create_app("keepconf")
    assert home.push("keepconf", "web", files={
        "Procfile": WEB + 'release: test "$BREAK" != 1 || { echo "BREAK is set: refusing"; exit 4; }\n'}).returncode == 0
    result = home.gitpaas("config:set", "BREAK=1", "-a", "keepconf", check=False)
    assert result.returncode == 7
    assert ("the config change is saved, but release v2 failed: release command exited with status 4. "
            "The processes keep running v1 with the previous config") in result.stderr
    assert home.gitpaas("config:get", "BREAK", "-a", "keepconf").stdout == "1\n"
    assert home.release("keepconf", 2)["status"] == "failed"
    assert "BREAK" not in container_env(docker_client, home, "keepconf")[0]
    assert home.get("keepconf").text == "hello v1 from web.1\n"


# --- rollback --------------------------------------------------------------------------------

def test_rollback_to_the_previous_and_to_a_specific_release(home, docker_client):
    home.create_app("back")
    for body in ("one", "two"):
        assert home.push("back", "web", files={"BODY": body}).returncode == 0
    home.gitpaas("config:set", "COLOR=blue", "-a", "back")  # v3: slug of v2, COLOR=blue
    assert home.push("back", "web", files={"BODY": "four"}).returncode == 0  # v4
    assert home.get("back").text == "four from web.1\n"

    result = home.gitpaas("rollback", "-a", "back")
    assert "done, v5 (Rollback to v3)" in result.stdout
    assert "Running release command" in result.stdout and "Building" not in result.stdout
    assert home.get("back").text == "two from web.1\n"
    assert container_env(docker_client, home, "back")[0]["COLOR"] == "blue"
    assert docker_client.images.get(home.release("back", 5)["image"]).id == \
        docker_client.images.get(home.release("back", 2)["image"]).id, "the same slug image, not a rebuild"

    home.gitpaas("rollback", "v1", "-a", "back")
    assert home.get("back").text == "one from web.1\n"
    assert home.release("back", 6)["description"] == "Rollback to v1"
    assert home.json("config", "-a", "back") == {}, "config vars come back as they were in v1"
    assert "COLOR" not in container_env(docker_client, home, "back")[0]


def test_ineligible_rollback_targets_are_refused(home):
    home.create_app("noback")
    assert home.push("noback", "web").returncode == 0
    refused = home.gitpaas("rollback", "-a", "noback", check=False)
    assert refused.returncode == 2 and "no release before v1 is eligible for rollback" in refused.stderr
    assert home.push("noback", "web", files={"Procfile": WEB + "release: exit 3\n"}).returncode != 0  # v2 failed
    failed = home.gitpaas("rollback", "v2", "-a", "noback", check=False)
    assert failed.returncode == 2
    assert "cannot roll back to v2: v2 failed (release command exited with status 3)" in failed.stderr
    assert home.release("noback", 2)["eligible_for_rollback"] is False
    missing = home.gitpaas("rollback", "v9", "-a", "noback", check=False)
    assert missing.returncode == 3 and "has no release v9" in missing.stderr
    assert [r["version"] for r in home.json("releases", "-a", "noback")] == [2, 1], "refusals create nothing"


# --- retry, timeout, live output, cancel -----------------------------------------------------

def test_timeout_then_retry_without_a_build(home, docker_client):
    home.create_app("retry")
    assert home.push("retry", "web").returncode == 0
    push = home.push("retry", "web", files={"BODY": "slow", "Procfile": WEB + "release: echo warming; sleep 20\n"},
                     env={"GITPAAS_RELEASE_TIMEOUT": "2"})
    assert push.returncode != 0
    assert "release v2 failed: release command timed out after 2 s and was killed" in push.stderr
    assert home.get("retry").text == "hello v1 from web.1\n"

    result = home.gitpaas("releases:retry", "-a", "retry", env={"GITPAAS_RELEASE_TIMEOUT": "60"})
    assert "done, v3 (Retry of v2)" in result.stdout and "Building" not in result.stdout
    assert home.release("retry", 3)["status"] == "succeeded"
    assert home.get("retry").text == "slow from web.1\n"
    assert docker_client.images.get(home.release("retry", 3)["image"]).id == \
        docker_client.images.get(home.release("retry", 2)["image"]).id


def test_output_of_a_pending_release_is_followed_live(home):
    home.create_app("live")
    assert home.push("live", "web").returncode == 0
    push = home.start_push("live", "web", files={
        "BODY": "v2", "Procfile": WEB + "release: echo first; sleep 4; echo second\n"})
    wait_for(lambda: running_release(home, "live"), "the release command to start")
    assert home.release("live", 2)["status"] == "pending"
    follow = home.gitpaas("releases:output", "v2", "-a", "live")
    assert follow.stdout == "first\nsecond\n"
    assert push.wait(timeout=120) == 0
    assert home.release("live", 2)["status"] == "succeeded"


def test_ps_shows_and_ps_stop_cancels_a_running_release_command(home, docker_client):
    home.create_app("cancel")
    assert home.push("cancel", "web").returncode == 0
    push = home.start_push("cancel", "web", files={"BODY": "v2", "Procfile": WEB + "release: sleep 120\n"})
    dyno = wait_for(lambda: running_release(home, "cancel"), "release.NNNN in ps")
    assert dyno["name"].startswith("release.") and dyno["release"]["version"] == 2
    assert dyno["name"] in home.gitpaas("ps", "-a", "cancel").stdout
    stopped = home.gitpaas("ps:stop", dyno["name"], "-a", "cancel")
    assert "release command stopped" in stopped.stdout
    _, stderr = push.communicate(timeout=120)
    assert push.returncode != 0 and "release v2 failed: release command stopped" in stderr
    assert home.release("cancel", 2)["failure"]["reason"] == "release command stopped"
    assert home.get("cancel").text == "hello v1 from web.1\n"
    assert [d["release"]["version"] for d in home.json("ps", "-a", "cancel")] == [1]


# --- concurrency and recovery ----------------------------------------------------------------

def test_two_concurrent_pushes_are_serialized_without_duplicates(home):
    home.create_app("race")
    assert home.push("race", "web").returncode == 0
    home.clone("race", "race-b")
    slow = WEB + "release: sleep 3\n"
    first = home.start_push("race", "web", files={"BODY": "from a", "Procfile": slow})
    wait_for(lambda: running_release(home, "race"), "the first push's release phase")
    second = home.start_push("race", "web", files={"BODY": "from b", "Procfile": slow}, clone="race-b")
    _, err_a = first.communicate(timeout=300)
    _, err_b = second.communicate(timeout=300)
    assert first.returncode == 0, err_a
    assert "Waiting for another release of race to finish" in err_b
    assert second.returncode != 0
    assert "main moved to" in err_b and "while this push waited; fetch, merge and push again" in err_b
    versions = [r["version"] for r in home.json("releases", "-a", "race")]
    assert versions == [2, 1], "the refused push created no release"
    assert home.get("race").text == "from a from web.1\n"
    assert home.remote_ref("race") == home.head("race")


def test_different_apps_deploy_in_parallel(home):
    for name in ("par-a", "par-b"):
        home.create_app(name)
    pushes = [home.start_push(name, "web", files={"BODY": name, "Procfile": WEB + "release: sleep 2\n"})
              for name in ("par-a", "par-b")]
    results = [p.communicate(timeout=300) for p in pushes]
    assert [p.returncode for p in pushes] == [0, 0], results
    assert not any("Waiting for another release" in err for _, err in results)
    assert home.get("par-a").text == "par-a from web.1\n" and home.get("par-b").text == "par-b from web.1\n"


def hook_pid(home) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        # (`python -S …/forkserver/hook_client.py hook pre-receive`, or `python -m gitpaas.hook` it became)
        hook = b"gitpaas.hook" in cmdline or b"forkserver/hook_client.py\0hook" in cmdline
        if hook and f"GITPAAS_HOME={home.path}".encode() in environ:
            return int(entry.name)
    return None


def forkserver_pid(home) -> int | None:
    try:
        return int((home.path / "forkserver" / "pid").read_text())
    except (OSError, ValueError):
        return None


def deploy_pid(home) -> int | None:
    """The process running a push's deploy: the home's fork server's child, or else the hook's own."""
    server = forkserver_pid(home)
    if server is None:
        return hook_pid(home)
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == server:
                return int(entry.name)
        except OSError:
            continue
    return None


def test_recovery_after_kill_9_mid_release(home, docker_client):
    home.create_app("crash")
    assert home.push("crash", "web").returncode == 0
    push = home.start_push("crash", "web", files={"BODY": "v2", "Procfile": WEB + "release: sleep 300\n"})
    wait_for(lambda: running_release(home, "crash"), "the release command")
    os.kill(wait_for(lambda: deploy_pid(home), "the process deploying"), signal.SIGKILL)
    push.communicate(timeout=60)
    assert push.returncode != 0
    assert home.release("crash", 2)["status"] == "pending", "nothing settled it yet"

    listing = home.gitpaas("releases", "-a", "crash")
    assert "v2 never finished (gitpaas was stopped mid-release) and is now marked failed" in listing.stderr
    record = home.release("crash", 2)
    assert record["status"] == "failed" and record["failure"]["reason"].startswith("interrupted")
    assert not docker_client.containers.list(all=True, filters=labels.filters(
        {labels.HOME: str(home.path), labels.RELEASE: "2"})), "the orphaned release container is gone"
    assert [(d["name"], d["release"]["version"]) for d in home.json("ps", "-a", "crash")] == [("web.1", 1)]
    assert home.get("crash").text == "hello v1 from web.1\n"
    assert home.push("crash", "web", files={"BODY": "after"}).returncode == 0
    assert home.get("crash").text == "after from web.1\n"


def test_a_push_whose_hook_is_killed_outright_is_hung_up_on(home, docker_client):
    """The hook hands the deploy to the home's fork server; killed with SIGKILL (it cannot pass the
    signal on), its deploy is hung up on, as a dropped connection would: recorded failed, cleaned up."""
    home.create_app("hang")
    assert home.push("hang", "web").returncode == 0
    wait_for(lambda: forkserver_pid(home), "the home's fork server")
    push = home.start_push("hang", "web", files={"BODY": "v2", "Procfile": WEB + "release: sleep 300\n"})
    wait_for(lambda: running_release(home, "hang"), "the release command")
    deploying = wait_for(lambda: deploy_pid(home), "the process deploying")
    os.kill(wait_for(lambda: hook_pid(home), "the hook process"), signal.SIGKILL)
    push.communicate(timeout=60)
    assert push.returncode != 0
    wait_for(lambda: home.release("hang", 2)["status"] == "failed", "the deploy to be hung up", timeout=60)
    assert home.release("hang", 2)["failure"]["reason"].startswith("interrupted")
    wait_for(lambda: not Path(f"/proc/{deploying}").exists(), "the deploying process to end")
    assert not docker_client.containers.list(all=True, filters=labels.filters(
        {labels.HOME: str(home.path), labels.RELEASE: "2"})), "the release container is gone"
    assert home.get("hang").text == "hello v1 from web.1\n"


# --- retention -------------------------------------------------------------------------------

def test_retention_prunes_old_slugs_but_keeps_records(home, docker_client):
    home.create_app("keep")
    for body in ("one", "two", "three", "four"):
        assert home.push("keep", "web", files={"BODY": body}).returncode == 0
    result = home.gitpaas("releases:retention", "--keep", "2", "-a", "keep")
    assert "Pruned: v2, v1" in result.stdout
    assert [r["version"] for r in home.json("releases", "-a", "keep")] == [4, 3, 2, 1]
    for version in (1, 2):
        record = home.release("keep", version)
        assert record["slug_pruned"] is True and record["eligible_for_rollback"] is False
        assert not docker_client.images.list(name=record["image"])
    refused = home.gitpaas("rollback", "v1", "-a", "keep", check=False)
    assert refused.returncode == 2 and "v1's slug image was pruned" in refused.stderr
    home.gitpaas("rollback", "v3", "-a", "keep")
    assert home.get("keep").text == "three from web.1\n"
    # the policy holds for new releases too: v5 (rollback) and v4 are kept, v3's tag goes
    assert home.release("keep", 3)["slug_pruned"] is True
    assert home.get("keep").text == "three from web.1\n", "v5 shares v3's image and still runs"


def test_processes_being_retired_do_not_keep_old_releases_eligible(home, docker_client):
    """--keep 2 means the current and the previous release, even while the old processes are still
    being stopped in the background (here: a long drain keeps them around)."""
    home.create_app("drain")
    home.gitpaas("releases:retention", "--keep", "2", "-a", "drain")
    slow_retirement = {"GITPAAS_DRAIN_SECONDS": "120"}
    for body in ("one", "two", "three", "four"):
        assert home.push("drain", "web", files={"BODY": body}, env=slow_retirement).returncode == 0
    states = sorted((d["name"], d["release"]["version"], d["state"]) for d in home.json("ps", "-a", "drain"))
    assert states == [("web.1", 1, "stopping"), ("web.1", 2, "stopping"), ("web.1", 3, "stopping"),
                      ("web.1", 4, "up")]
    eligible = [r["version"] for r in home.json("releases", "-a", "drain") if r["eligible_for_rollback"]]
    assert eligible == [4, 3]
    for version in (1, 2):
        assert not docker_client.images.list(name=home.release("drain", version)["image"])
    assert home.get("drain").text == "four from web.1\n"


def retirers_of(home) -> dict[str, int]:
    """Container id → pid of the process holding its claim in the home's retiring/ folder."""
    folder = str(home.path / "retiring") + "/"
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            targets = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        found.update({target[len(folder):]: int(entry.name) for target in targets if target.startswith(folder)})
    return found


def test_a_retirement_cut_short_is_handed_on_by_boot(home, docker_client):
    """Who retires what is on disk (retiring/<container id>, locked by its retirer, a fork named
    gitpaas-retire that holds nothing else of the push's). Killed outright, its claim is no one's;
    `gitpaas boot` hands the process to a new retirer, which finishes and removes the claim."""
    home.create_app("cut")
    assert home.push("cut", "web").returncode == 0
    assert home.push("cut", "web", files={"BODY": "two"}, env={"GITPAAS_DRAIN_SECONDS": "120"}).returncode == 0
    [old] = [c for c in docker_client.containers.list(filters=labels.filters({labels.HOME: str(home.path)}))
             if c.name.endswith("-retiring")]
    owners = wait_for(lambda: retirers_of(home), "the retirer to hold its claim")
    assert list(owners) == [old.id] and os.listdir(home.path / "retiring") == [old.id]
    assert Path(f"/proc/{owners[old.id]}/comm").read_text() == "gitpaas-retire\n"
    assert home.gitpaas("boot").stdout.count("again") == 0, "a live retirer's process is left to it"
    os.kill(owners[old.id], signal.SIGKILL)
    wait_for(lambda: not retirers_of(home), "the killed retirer's claim to go")
    booted = home.gitpaas("boot").stdout
    assert "retiring web.1 again (their retirement was interrupted)" in booted, booted
    log = home.path / "logs" / "retire.log"
    wait_for(lambda: log.exists() and "cut web.1 (v1): exited 0 after SIGTERM" in log.read_text(),
             "the new retirer to stop v1's web.1", timeout=30)
    wait_for(lambda: not os.listdir(home.path / "retiring"), "the claim to be removed")
    assert [d["state"] for d in home.json("ps", "-a", "cut")] == ["up"]
    assert home.get("cut").text == "two from web.1\n"


def test_a_retirement_cut_short_is_handed_on_by_the_apps_next_deploy(home, docker_client):
    """Without a boot: the next push finds v1's web.1 still marked -retiring with nobody holding
    its claim, and hands it to a new retirer beside retiring v2's."""
    home.create_app("handon")
    assert home.push("handon", "web").returncode == 0
    assert home.push("handon", "web", files={"BODY": "two"}, env={"GITPAAS_DRAIN_SECONDS": "120"}).returncode == 0
    owners = wait_for(lambda: retirers_of(home), "the retirer to hold its claim")
    [(_, pid)] = owners.items()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not retirers_of(home), "the killed retirer's claim to go")
    third = home.push("handon", "web", files={"BODY": "three"})
    assert third.returncode == 0, third.stderr
    assert "Retiring web.1 of v1 again (a retirement cut short)" in third.stderr
    log = home.path / "logs" / "retire.log"
    for version in (1, 2):
        wait_for(lambda: log.exists() and f"handon web.1 (v{version}): exited 0 after SIGTERM" in log.read_text(),
                 f"v{version}'s web.1 to be stopped", timeout=30)
    wait_for(lambda: not os.listdir(home.path / "retiring"), "the claims to be removed")
    assert [(d["release"]["version"], d["state"]) for d in home.json("ps", "-a", "handon")] == [(3, "up")]
    assert home.get("handon").text == "three from web.1\n"


# --- app.json --------------------------------------------------------------------------------

def test_postdeploy_runs_once_after_the_first_successful_release(home):
    home.create_app("post")
    manifest = json.dumps({"name": "post", "scripts": {"postdeploy": "echo seeding the database"}, "unknown": [1]})
    first = home.push("post", "web", files={"app.json": manifest})
    assert first.returncode == 0, first.stderr
    assert "Running app.json's postdeploy script" in first.stderr and "seeding the database" in first.stderr
    info = home.json("apps:info", "-a", "post")
    assert info["postdeploy"]["status"] == "succeeded" and info["postdeploy"]["release"] == 1
    assert Path(info["postdeploy"]["log"]).read_text() == "seeding the database\n"
    second = home.push("post", "web", files={"app.json": manifest, "BODY": "v2"})
    assert second.returncode == 0 and "Running app.json's postdeploy script" not in second.stderr

    broken = home.push("post", "web", files={"app.json": '{"scripts": {"postdeploy": "x"'})
    assert broken.returncode != 0
    assert "app.json is not valid JSON: line 1 column" in broken.stderr
    assert home.get("post").text == "v2 from web.1\n"


# --- telling people ---------------------------------------------------------------------------

def test_pushes_announce_their_releases_to_webhooks(home):
    import base64
    import hashlib
    import hmac

    from test_webhooks import Receiver, free_port
    from schema import validate

    port = free_port()
    receiver = Receiver(port)
    home.env["GITPAAS_WEBHOOK_PRIVATE_TARGETS"] = "1"  # the receiver is on this machine
    try:
        home.create_app("hooks")
        added = home.gitpaas("webhooks:add", f"http://127.0.0.1:{port}/events", "--secret", "s3cret", "-a", "hooks")
        assert "webhook" in added.stdout.lower()
        assert home.push("hooks", "web").returncode == 0
        assert home.push("hooks", "web", files={"Procfile": WEB + "release: echo nope; exit 5\n"}).returncode != 0
        wait_for(lambda: len(receiver.requests) >= 2, "two webhook deliveries", timeout=60)
        events = {}
        for request in receiver.requests:
            expected = base64.b64encode(hmac.new(b"s3cret", request["body"], hashlib.sha256).digest()).decode()
            assert request["headers"]["Heroku-Webhook-Hmac-SHA256"] == expected
            event = json.loads(request["body"])
            events[event["data"]["version"]] = event
        assert events[1]["resource"] == "release" and events[1]["data"]["status"] == "succeeded"
        assert events[2]["data"]["status"] == "failed" and "nope" in events[2]["output_tail"]
        for event in events.values():
            validate("release", event["data"])
    finally:
        receiver.stop()
