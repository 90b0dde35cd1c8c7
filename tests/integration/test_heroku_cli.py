"""The official Heroku CLI (npm package `heroku`, v11), unchanged, against a real gitpaas server with
real deploys: every everyday command works and prints what it prints against Heroku."""

from __future__ import annotations

import json
import re
import os
import subprocess
import threading
from pathlib import Path

import pytest

from harness import ApiServer, free_port, wait_for
from schema import validate

REPO = Path(__file__).resolve().parents[2]
CLI_DIR = REPO / ".cache" / "heroku-cli"
CLI = CLI_DIR / "node_modules" / ".bin" / "heroku"
WEB = "web: python3 /app/server.py\n"


@pytest.fixture(scope="session")
def heroku_cli() -> Path:
    """Install the CLI from the npm registry once (into .cache/, which git ignores)."""
    if not CLI.exists():
        CLI_DIR.mkdir(parents=True, exist_ok=True)
        (CLI_DIR / "package.json").write_text('{"private": true}\n')
        result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "heroku@11"],
                                cwd=CLI_DIR, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.fail(f"could not install the Heroku CLI from npm: {result.stderr[-2000:]}")
    return CLI


@pytest.fixture
def heroku(home, heroku_cli, tmp_path):
    api = ApiServer(home)
    cli_home = tmp_path / "cli-home"
    (cli_home / ".cache" / "heroku").mkdir(parents=True)
    (cli_home / ".cache" / "heroku" / "terms-of-service").touch()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("HEROKU_") and key not in ("GITPAAS_HOME",)}
    env.update({
        "HOME": str(cli_home), "XDG_CONFIG_HOME": str(cli_home / ".config"),
        "XDG_CACHE_HOME": str(cli_home / ".cache"), "XDG_DATA_HOME": str(cli_home / ".local/share"),
        "HEROKU_HOST": api.url, "HEROKU_API_KEY": api.token, "HEROKU_PARTICLEBOARD_URL": api.url,
        "HEROKU_SKIP_NEW_VERSION_CHECK": "true", "HEROKU_DISABLE_AUTOUPDATE": "1", "DISABLE_TELEMETRY": "true",
        "NO_COLOR": "1",
        # the rendezvous of `heroku run` serves its own certificate: the CLI is told to trust it
        "NODE_EXTRA_CA_CERTS": str(api.rendezvous_certificate),
    })

    def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([str(heroku_cli), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"heroku {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result
    run.api = api
    run.env = env
    run.cwd = tmp_path
    yield run
    api.stop()


def test_everyday_commands_of_the_heroku_cli(home, heroku):
    api = heroku.api
    created = heroku("apps:create", "herokuish")
    assert "Creating herokuish... done" in created.stderr + created.stdout
    push = home.push("herokuish", "web", url=api.git_url("herokuish"))
    assert push.returncode == 0, push.stderr

    assert "herokuish" in heroku("apps").stdout
    info = heroku("apps:info", "-a", "herokuish").stdout
    assert "=== herokuish" in info and "Owner:          dev@example.com" in info and "Dynos:          web: 1" in info
    assert json.loads(heroku("apps:info", "-a", "herokuish", "--json").stdout)["app"]["name"] == "herokuish"

    setting = heroku("config:set", "GREETING=hello world", "-a", "herokuish")
    assert "Setting GREETING and restarting herokuish... done, v2" in setting.stderr
    assert "=== herokuish Config Vars" in heroku("config", "-a", "herokuish").stdout
    assert heroku("config:get", "GREETING", "-a", "herokuish").stdout == "hello world\n"

    releases = heroku("releases", "-a", "herokuish").stdout
    assert "=== herokuish Releases - Current: v2" in releases
    assert "Set GREETING config vars" in releases and "Deploy " in releases
    release_info = heroku("releases:info", "v2", "-a", "herokuish").stdout
    assert "=== Release v2" in release_info and "GREETING: hello world" in release_info
    assert heroku("releases:output", "v1", "-a", "herokuish").stdout == "release phase for hello v1\n"

    unsetting = heroku("config:unset", "GREETING", "-a", "herokuish")
    assert "Unsetting GREETING and restarting herokuish... done, v3" in unsetting.stderr

    rollback = heroku("rollback", "v2", "-a", "herokuish")
    assert "Rolling back herokuish to v2... done, v4" in rollback.stderr
    assert "release phase for hello v1" in rollback.stdout, "the release command's output is streamed"
    assert heroku("config:get", "GREETING", "-a", "herokuish").stdout == "hello world\n"
    retry = heroku("releases:retry", "-a", "herokuish")
    assert "Retrying v4 on herokuish... done, v5" in retry.stderr
    wait_for(lambda: home.release("herokuish", 5)["status"] == "succeeded", "the retried release")

    assert "web.1: up" in heroku("ps", "-a", "herokuish").stdout
    scale = heroku("ps:scale", "web=2", "-a", "herokuish")
    assert "now running web at 2" in scale.stderr
    assert {home.get("herokuish").text for _ in range(8)} == {"hello v1 from web.1\n", "hello v1 from web.2\n"}
    assert "now running web at 1" in heroku("ps:scale", "web-1", "-a", "herokuish").stderr
    assert "Restarting all dynos on herokuish... done" in heroku("ps:restart", "-a", "herokuish").stderr
    assert "Stopping dyno web.1 on herokuish... done" in heroku("ps:stop", "web.1", "-a", "herokuish").stderr
    wait_for(lambda: home.get("herokuish").status_code == 200, "web.1 after ps:stop")

    typed = heroku("ps:type", "web=standard-2x", "-a", "herokuish")
    assert "Scaling dynos on herokuish... done" in typed.stderr
    assert re.search(r"web\s+Standard-2X\s+1", typed.stdout), typed.stdout
    assert [d["size"] for d in home.json("ps", "-a", "herokuish") if d["state"] == "up"] == ["Standard-2X"]
    assert re.search(r"release\s+Standard-1X\s+0", heroku("ps:type", "-a", "herokuish").stdout)
    heroku("ps:type", "release=eco", "-a", "herokuish")
    assert re.search(r"release\s+eco\s+0\s+256 MB", home.gitpaas("ps:type", "-a", "herokuish").stdout)
    wait_for(lambda: home.get("herokuish").status_code == 200, "web.1 at its new size")

    home.get("herokuish", "/seen-by-heroku-logs")
    logs = heroku("logs", "-n", "50", "-a", "herokuish").stdout
    assert "app[web.1]:" in logs and "/seen-by-heroku-logs" in logs
    assert "No add-ons for app herokuish" in heroku("addons", "-a", "herokuish").stdout

    # stacks: `heroku stack` answered Not Found before there were several
    assert heroku("stack", "-a", "herokuish").stdout.splitlines() == [
        "=== herokuish Available Stacks", "", "  bookworm", "  forky", "* trixie"]
    setting = heroku("stack:set", "bookworm", "-a", "herokuish")
    assert "Setting stack to bookworm... done" in setting.stderr
    assert "You will need to redeploy herokuish for the change to take effect." in setting.stdout
    assert "  bookworm (active on next deploy)" in heroku("stack", "-a", "herokuish").stdout
    push = home.push("herokuish", "web", files={"BODY": "on bookworm"}, url=api.git_url("herokuish"))
    assert push.returncode == 0 and "Building on the bookworm stack" in push.stderr, push.stderr
    assert "* bookworm" in heroku("stack", "-a", "herokuish").stdout
    assert re.search(r"Stack:\s+bookworm", heroku("apps:info", "-a", "herokuish").stdout)

    destroyed = heroku("apps:destroy", "-a", "herokuish", "--confirm", "herokuish")
    assert "Destroying herokuish (including all add-ons)... done" in destroyed.stderr
    assert api.call("GET", "/apps/herokuish").status_code == 404


def test_logs_tail_follows_live_and_a_release_command_output_streams(home, heroku):
    api = heroku.api
    heroku("apps:create", "tailing")
    assert home.push("tailing", "web", url=api.git_url("tailing")).returncode == 0
    tail = subprocess.Popen([str(CLI), "logs", "--tail", "-a", "tailing"], env=heroku.env, cwd=heroku.cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    seen: list[str] = []

    def read_tail() -> None:
        for line in tail.stdout:
            seen.append(line)
    threading.Thread(target=read_tail, daemon=True).start()
    try:
        # `logs --tail` starts with the lines already written: once one arrives, it is following.
        wait_for(lambda: any("app[web.1]:" in line for line in seen), "heroku logs --tail to print", timeout=30)
        home.get("tailing", "/written-after-tail-started")
        wait_for(lambda: any("/written-after-tail-started" in line for line in seen),
                 "the tail to print a line written after it started", timeout=30)
    finally:
        tail.terminate()
        tail.wait(timeout=10)

    # a pending release's output, followed by `heroku releases:output` until the command ends
    assert home.push("tailing", "web", url=api.git_url("tailing"),
                     files={"Procfile": WEB + 'release: echo "phase of $STEP"; test -z "$SLOW" || sleep 4; echo end\n'}
                     ).returncode == 0
    heroku("config:set", "SLOW=1", "STEP=two", "-a", "tailing")
    output = heroku("releases:output", "v3", "-a", "tailing")
    assert output.stdout == "phase of two\nend\n"
    wait_for(lambda: home.release("tailing", 3)["status"] == "succeeded", "v3 to succeed after its output ended")


def test_add_ons_with_the_heroku_cli(home, heroku):
    """`heroku addons:create heroku-postgresql`: a real PostgreSQL beside the app, attached in a
    release the app restarts on with DATABASE_URL; listed, shown and destroyed as on Heroku."""
    api = heroku.api
    heroku("apps:create", "withdb")
    assert home.push("withdb", "web", url=api.git_url("withdb")).returncode == 0

    # the first add-on of the machine builds the PostgreSQL image from Debian's packages
    created = heroku("addons:create", "heroku-postgresql", "-a", "withdb", timeout=900)
    assert "Creating heroku-postgresql on withdb... free" in created.stderr, created.stderr
    name = re.search(r"^Created (postgresql-[a-z]+-[0-9]+) as DATABASE_URL$", created.stdout, re.M)
    assert name, created.stdout
    name = name.group(1)
    assert "Release v2 attaches it as DATABASE: the app restarts with DATABASE_URL" in created.stdout
    assert "heroku addons:docs heroku-postgresql" in created.stdout
    wait_for(lambda: home.release("withdb", 2)["status"] == "succeeded", "the release that attaches it")
    assert home.release("withdb", 2)["description"] == f"Attach DATABASE ({name})"
    database_url = heroku("config:get", "DATABASE_URL", "-a", "withdb").stdout.strip()
    assert re.fullmatch(rf"postgres://[^:]+:[^@]+@{name}:5432/\w+", database_url), database_url
    assert f"DATABASE_URL={database_url}\n" in home.get("withdb", "/env").text, "the app runs with it"

    listed = heroku("addons", "-a", "withdb").stdout
    assert re.search(rf"heroku-postgresql \({name}\)\s+local\s+free\s+free\s+created", listed), listed
    assert "└─ as DATABASE" in listed
    info = heroku("addons:info", name).stdout
    assert f"=== {name}" in info
    for key, value in (("Plan", "heroku-postgresql:local"), ("Price", "free"), ("Max Price", "free"),
                       ("Attachments", "withdb::DATABASE"), ("Owning app", "withdb"), ("State", "created")):
        assert re.search(rf"^{key}: +{value}$", info, re.M), (key, info)
    assert f"DATABASE_URL: {database_url}" in heroku("config", "-a", "withdb").stdout

    destroyed = heroku("addons:destroy", name, "-a", "withdb", "--confirm", "withdb", timeout=300)
    assert f"Destroying {name} on withdb... done" in destroyed.stderr, destroyed.stderr
    wait_for(lambda: home.release("withdb", 3)["status"] == "succeeded", "the release that detaches it")
    assert home.release("withdb", 3)["description"] == f"Detach DATABASE ({name})"
    assert "No add-ons for app withdb." in heroku("addons", "-a", "withdb").stdout
    assert "DATABASE_URL" not in heroku("config", "-a", "withdb").stdout
    assert "DATABASE_URL=" not in home.get("withdb", "/env").text
    missing = heroku("addons:info", name, check=False)
    assert missing.returncode != 0 and "Couldn't find that add on." in missing.stderr, missing.stderr


def test_one_off_dynos_and_the_rest_of_the_everyday_commands(home, heroku):
    """`heroku run` and `run:detached` through the rendezvous, and every everyday command that used
    to answer Not Found or Method Not Allowed: each works, or says in one line why gitpaas does not."""
    api = heroku.api
    heroku("apps:create", "everyday")
    assert home.push("everyday", "web", url=api.git_url("everyday")).returncode == 0

    ran = heroku("run", "-a", "everyday", "--", "sh", "-c", "echo hello from $DYNO")
    assert re.fullmatch(r"hello from run\.\d{4}\n", ran.stdout), ran.stdout
    assert re.search(r"Running .* on everyday\.\.\. up, run\.\d{4}", ran.stderr), ran.stderr
    failed = heroku("run", "--exit-code", "-a", "everyday", "--", "sh", "-c", "exit 4", check=False)
    assert failed.returncode == 4 and "Process exited with code 4" in failed.stderr
    detached = heroku("run:detached", "-a", "everyday", "--", "sh", "-c", "echo in the background; sleep 300")
    name = re.search(r"(run\.\d{4})", detached.stderr + detached.stdout).group(1)
    wait_for(lambda: "in the background" in heroku("logs", "--dyno", name, "-a", "everyday").stdout,
             "the detached dyno's output in `heroku logs --dyno`")
    assert re.search(rf"{name} \(Standard-1X\): up", heroku("ps", "-a", "everyday").stdout)
    heroku("ps:stop", name, "-a", "everyday")
    wait_for(lambda: name not in heroku("ps", "-a", "everyday").stdout, "the one-off to stop")

    heroku("maintenance:on", "-a", "everyday")
    assert heroku("maintenance", "-a", "everyday").stdout == "on\n"
    assert home.get("everyday").status_code == 503
    heroku("maintenance:off", "-a", "everyday")
    assert home.get("everyday").status_code == 200

    added = heroku("domains:add", "www.everyday.test", "-a", "everyday")
    assert "DNS Target everyday.localhost" in added.stdout and "enqueued" not in added.stdout
    assert home.get("www.everyday.test").status_code == 200
    heroku("domains:remove", "www.everyday.test", "-a", "everyday")
    heroku("domains:add", "api.everyday.test", "-a", "everyday")
    heroku("domains:clear", "-a", "everyday")
    assert home.json("domains", "-a", "everyday") == [{"hostname": "everyday.localhost", "kind": "default"}]

    hook = heroku("webhooks:add", "-i", "api:release", "-l", "notify", "-u", "https://hooks.example.com/in",
                  "-a", "everyday")
    assert "=== Webhooks Signing Secret" in hook.stdout
    refused = heroku("webhooks:add", "-i", "api:dyno", "-l", "notify", "-u", "https://hooks.example.com/x",
                     "-a", "everyday", check=False)
    assert refused.returncode != 0 and "gitpaas sends api:release events only" in refused.stderr
    hook_id = re.search(r"([0-9a-f-]{36})\s+https://hooks\.example\.com/in", heroku("webhooks", "-a", "everyday").stdout)
    heroku("webhooks:deliveries", "-a", "everyday")
    heroku("webhooks:remove", hook_id.group(1), "-a", "everyday")
    assert "has no webhooks" in heroku("webhooks", "-a", "everyday").stdout

    assert "Successfully added drain https://logs.example.com/in" in heroku(
        "drains:add", "https://logs.example.com/in", "-a", "everyday").stdout
    assert "https://logs.example.com/in (d." in heroku("drains", "-a", "everyday").stdout
    heroku("drains:remove", "https://logs.example.com/in", "-a", "everyday")

    made = heroku("authorizations:create", "-d", "ci job", "--short").stdout.strip()
    assert api.call("GET", "/account", token=made).status_code == 200
    auth_id = next(a["id"] for a in json.loads(heroku("authorizations", "--json").stdout) if a["description"] == "ci job")
    heroku("authorizations:revoke", auth_id)
    assert api.call("GET", "/account", token=made).status_code == 401

    assert re.search(r"local\s+this gitpaas server", heroku("regions").stdout)
    assert "=== App Features everyday" in heroku("features", "-a", "everyday").stdout
    heroku("labs", "-a", "everyday")
    nolab = heroku("labs:enable", "preboot", "-a", "everyday", check=False)
    assert nolab.returncode != 0 and "gitpaas has no labs features" in nolab.stderr

    renamed = heroku("apps:rename", "elsewhere", "-a", "everyday", check=False)
    assert renamed.returncode != 0 and "gitpaas cannot rename an app" in renamed.stderr
    assert home.get("everyday").status_code == 200 and api.call("GET", "/apps/elsewhere").status_code == 404


def test_pipelines_create_add_info_promote_and_diff_with_the_heroku_cli(home, heroku):
    """The CLI's pipelines commands, unchanged. `pipelines:diff` asks GitHub (through Heroku's own
    kolkrabbi service, which no setting redirects) which repository an app comes from; without one
    it stops, as it does on Heroku for an app not connected to GitHub — after gitpaas answered every
    question it asked gitpaas (the coupling, the pipeline, its apps, their releases and slugs)."""
    api = heroku.api
    for name in ("flow-staging", "flow-prod"):
        heroku("apps:create", name)
    home.gitpaas("config:set", "GREETING=from-production", "-a", "flow-prod")
    created = heroku("pipelines:create", "flow", "-a", "flow-staging", "--stage", "staging")
    assert "Creating flow pipeline... done" in created.stderr
    assert "Adding flow-staging to flow pipeline as staging... done" in created.stderr
    heroku("pipelines:add", "flow", "-a", "flow-prod", "--stage", "production")
    assert "flow" in heroku("pipelines").stdout.splitlines()
    info = heroku("pipelines:info", "flow").stdout
    assert "=== flow" in info and "owner: dev@example.com" in info
    assert [line.split() for line in info.splitlines() if line.strip().startswith("flow-")] == [
        ["flow-staging", "staging"], ["flow-prod", "production"]]
    described = json.loads(heroku("pipelines:info", "flow", "--json").stdout)
    validate("pipeline", described["pipeline"], require_all=False)
    for app in described["apps"]:
        validate("pipeline-coupling", app["pipelineCoupling"])
    assert sorted(a["name"] for a in described["apps"]) == ["flow-prod", "flow-staging"]

    push = home.push("flow-staging", "web", url=api.git_url("flow-staging"), files={
        "Procfile": WEB + 'release: echo "greeting is $GREETING"\n', "BODY": "promoted"})
    assert push.returncode == 0, push.stderr
    promote = heroku("pipelines:promote", "-a", "flow-staging")
    assert "Starting promotion to production..." in promote.stdout
    assert "Promotion successful" in promote.stdout and "flow-prod: succeeded" in promote.stdout
    wait_for(lambda: home.release("flow-prod", 1)["status"] == "succeeded", "the promoted release")
    staging, production = home.release("flow-staging", 1), home.release("flow-prod", 1)
    assert production["description"] == "Promote flow-staging v1" and production["slug"] == staging["slug"]
    assert heroku("releases:output", "v1", "-a", "flow-prod").stdout == "greeting is from-production\n"
    assert home.get("flow-prod").text.startswith("promoted from web.1")
    promotion = api.call("GET", "/pipeline-couplings").json()
    for coupling in promotion:
        validate("pipeline-coupling", coupling)

    enabled = heroku("reviewapps:enable", "-p", "flow", "--autodestroy")
    assert "Enabling auto destroy..." in enabled.stdout and "Configuring pipeline... done" in enabled.stderr
    review = home.json("pipelines:info", "flow")["review"]
    assert review["enabled"] and review["app"] == "flow-staging" and review["autodestroy"]
    heroku("reviewapps:disable", "-p", "flow")
    assert not home.json("pipelines:info", "flow")["review"]["enabled"]

    # Upstream is refused by the CLI itself; pipelines:diff stops at GitHub. Kolkrabbi is sent to a
    # closed port on loopback (the CLI honours HTTPS_PROXY), so nothing leaves this machine.
    refused = heroku("pipelines:promote", "-a", "flow-prod", check=False)
    assert refused.returncode != 0 and "Cannot promote" in refused.stderr
    closed = free_port()
    diff = subprocess.run([str(CLI), "pipelines:diff", "-a", "flow-staging"], capture_output=True, text=True,
                          env={**heroku.env, "HTTPS_PROXY": f"http://127.0.0.1:{closed}", "NO_PROXY": "127.0.0.1,localhost"},
                          cwd=heroku.cwd, stdin=subprocess.DEVNULL, timeout=120)
    assert diff.returncode != 0 and "does not seem to be connected to GitHub" in diff.stderr, diff.stderr
    assert "Traceback" not in diff.stderr
