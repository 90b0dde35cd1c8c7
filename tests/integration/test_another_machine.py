"""The gitpaas CLI on "another machine": its own HOME, no GITPAAS_HOME, only a login to a real
`gitpaas server` on loopback — and the whole life of an app from there: create, git push through
`git:remote`'s credential helper, config, releases, rollback, logs, one-off dynos, maintenance,
drains, destroy."""

from __future__ import annotations

import http.server
import json
import os
import pty
import re
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import APPS, GITPAAS, ApiServer, wait_for

WEB = "web: python3 /app/server.py\n"


@dataclass
class Terminal:
    returncode: int
    output: bytes


class Laptop:
    """A team member's machine: a HOME of its own, the gitpaas command, git; nothing of the server's."""

    def __init__(self, base: Path) -> None:
        self.home = base / "laptop"
        self.repo = self.home / "blog"
        self.repo.mkdir(parents=True)
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("GITPAAS_", "XDG_", "GIT_"))}
        self.env.update({"HOME": str(self.home), "GIT_TERMINAL_PROMPT": "0",
                         "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
                         "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com"})

    def gitpaas(self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 300):
        result = subprocess.run([GITPAAS, *args], capture_output=True, text=True, env=self.env, cwd=self.repo,
                                input=stdin if stdin is not None else "", timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"gitpaas {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def on_terminal(self, args: list[str], typed: bytes, timeout: float = 120) -> "Terminal":
        """Run gitpaas with a pseudo-terminal as its stdin, stdout and stderr, typing ``typed`` once
        it says the dyno is up; everything it printed, and its exit status."""
        controller, terminal = pty.openpty()
        process = subprocess.Popen([GITPAAS, *args], env={**self.env, "TERM": "xterm"}, cwd=self.repo,
                                   stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True)
        os.close(terminal)
        output, typed_yet = b"", False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the process closed the terminal: it ended
                    break
                output += chunk
                if not typed_yet and b"... up, run." in output:
                    time.sleep(1)
                    os.write(controller, typed)
                    typed_yet = True
            elif process.poll() is not None:
                break
        os.close(controller)
        return Terminal(process.wait(timeout=30), output)

    def git(self, *args: str, check: bool = True):
        result = subprocess.run(["git", *args], capture_output=True, text=True, env=self.env, cwd=self.repo, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result


@pytest.fixture
def server(home):
    api = ApiServer(home)
    yield api
    api.stop()


@pytest.fixture
def laptop(tmp_path):
    return Laptop(tmp_path)


def one_error_line(result) -> str:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.rstrip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith(" !    "), result.stderr
    return lines[0]


def test_another_machine_drives_the_whole_lifecycle(home, server, laptop):
    # --- log in: the token from standard input, kept 0600 in a 0700 folder ---------------------
    assert "not logged in" in one_error_line(laptop.gitpaas("whoami", check=False))
    login = laptop.gitpaas("login", "--server", server.url, stdin=server.token + "\n")
    assert f"Logged in to {server.url} as dev@example.com" in login.stdout
    stored = laptop.home / ".config" / "gitpaas" / "credentials.json"
    assert stored.stat().st_mode & 0o777 == 0o600 and stored.parent.stat().st_mode & 0o777 == 0o700
    assert laptop.gitpaas("whoami").stdout == "dev@example.com\n"

    # --- create, and push through the credential helper ------------------------------------------
    created = laptop.gitpaas("apps:create", "blog")
    assert created.stdout.splitlines()[1:] == [f"http://blog.localhost:{home.port}/ | {server.url}/blog.git",
                                               f"Deploy with: git push {server.url}/blog.git main"]
    for item in (APPS / "web").iterdir():
        (laptop.repo / item.name).write_bytes(item.read_bytes())
    laptop.git("init", "-q", "-b", "main")
    laptop.git("add", "-A")
    laptop.git("commit", "-q", "-m", "first")
    remote = laptop.gitpaas("git:remote", "-a", "blog")
    assert f"Added git remote gitpaas: {server.url}/blog.git" in remote.stdout
    config_text = (laptop.repo / ".git" / "config").read_text()
    assert server.token not in config_text and "git:credential" in config_text
    push = laptop.git("push", "gitpaas", "main")
    assert "Release v1 created" in push.stderr and "release phase for hello v1" in push.stderr, push.stderr
    assert home.get("blog").text == "hello v1 from web.1\n"

    # --- the same output as on the server, and the same --json -----------------------------------
    listed = laptop.gitpaas("apps").stdout
    assert f"=== Apps in {server.url}" in listed and re.search(r"blog\s+v1\s+http://blog\.localhost", listed)
    info = json.loads(laptop.gitpaas("apps:info", "-a", "blog", "--json").stdout)
    on_server = json.loads(home.gitpaas("apps:info", "-a", "blog", "--json").stdout)
    assert {k: v for k, v in info.items() if k != "git_url"} == {k: v for k, v in on_server.items() if k != "git_url"}
    assert info["git_url"] == f"{server.url}/blog.git"
    assert laptop.gitpaas("ps", "-a", "blog", "--json").stdout == home.gitpaas("ps", "-a", "blog", "--json").stdout

    # --- config:set: what the pipeline says on the server, as it happens, then the same last line --
    setting = laptop.gitpaas("config:set", "GREETING=hi there", "-a", "blog")
    lines = setting.stdout.splitlines()
    assert lines[0] == "-----> Release v2 created (Set GREETING config vars)"
    assert re.fullmatch(r'-----> Running release command \(release\.\d{4}\): echo "release phase for \$\(cat /app/BODY\)"',
                        lines[1])
    assert "       release phase for hello v1" in lines and f"       Routing http://blog.localhost:{home.port}/ to v2 (1 web)" in lines
    assert lines[-1] == "Setting GREETING and restarting blog... done, v2"
    assert laptop.gitpaas("config:get", "GREETING", "-a", "blog").stdout == "hi there\n"
    laptop.gitpaas("config:set", "SECOND=1", "-a", "blog")

    remote_releases = json.loads(laptop.gitpaas("releases", "-a", "blog", "--json").stdout)
    server_releases = json.loads(home.gitpaas("releases", "-a", "blog", "--json").stdout)
    # the same records, but for where the server keeps the output and the build log (not shown off it)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("output_stream_url", "build_log")} for r in rs]  # noqa: E731
    assert strip(remote_releases) == strip(server_releases) and [r["version"] for r in remote_releases] == [3, 2, 1]
    assert str(home.path) not in json.dumps(remote_releases) and remote_releases[2]["build_log"] == "(a path on the server)"
    table = laptop.gitpaas("releases", "-a", "blog").stdout
    assert table == home.gitpaas("releases", "-a", "blog").stdout
    assert laptop.gitpaas("releases:output", "v2", "-a", "blog").stdout == "release phase for hello v1\n"

    # --- rollback and retry ----------------------------------------------------------------------
    rolled = laptop.gitpaas("rollback", "v1", "-a", "blog")
    assert rolled.stdout.splitlines()[-1] == "Rolling back blog... done, v4 (Rollback to v1)"
    assert laptop.gitpaas("config", "-a", "blog", "--json").stdout.strip() == "{}"
    retried = laptop.gitpaas("releases:retry", "-a", "blog")
    assert retried.stdout.splitlines()[-1] == "Retrying the release phase of blog... done, v5 (Retry of v4)"
    missing = laptop.gitpaas("rollback", "v99", "-a", "blog", check=False)
    assert missing.returncode == 3 and "v99" in one_error_line(missing)

    # --- logs, ps, scale, restart ---------------------------------------------------------------
    home.get("blog", "/seen-from-the-laptop")
    wait_for(lambda: "/seen-from-the-laptop" in laptop.gitpaas("logs", "-a", "blog", "-n", "50").stdout,
             "the request in the app's logs, read remotely")
    assert "Scaling blog... done, now running web=2" in laptop.gitpaas("ps:scale", "web=2", "-a", "blog").stdout
    assert "Restarting web.1, web.2 of blog... done" in laptop.gitpaas("ps:restart", "-a", "blog").stdout
    laptop.gitpaas("ps:scale", "web=1", "-a", "blog")

    # --- one-off dynos ----------------------------------------------------------------------------
    ran = laptop.gitpaas("run", "-a", "blog", "--", "sh", "-c", 'echo "out $DYNO $GREETING"; echo err >&2; exit 3',
                         check=False)
    assert ran.returncode == 3, ran.stderr
    assert re.fullmatch(r"out run\.\d{4} \n", ran.stdout), ran.stdout
    assert "err\n" in ran.stderr and re.search(r"Running .* on blog\.\.\. up, run\.\d{4}", ran.stderr)
    piped = laptop.gitpaas("run", "-a", "blog", "--env", "EXTRA=yes", "--", "sh", "-c", 'cat; echo "$EXTRA"',
                           stdin="typed on the laptop\n")
    assert piped.stdout == "typed on the laptop\nyes\n"
    # a terminal: `run bash` is a shell on a TTY (a pseudo-terminal here), its exit status returned
    shell = laptop.on_terminal(["run", "-a", "blog", "bash"], typed=b"echo $((6*7)) on $(tty)\r exit 5\r")
    assert shell.returncode == 5, shell.output
    assert re.search(rb"42 on /dev/pts/\d+", shell.output), shell.output
    # Ctrl-C without a terminal stops the dyno
    # (SIGINT as a terminal's Ctrl-C sends it: not ignored, as it is for a job run in the background)
    running = subprocess.Popen([GITPAAS, "run", "-a", "blog", "--", "sleep", "600"], env=laptop.env, cwd=laptop.repo,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(lambda: re.search(r"run\.\d{4}\s+up", laptop.gitpaas("ps", "-a", "blog").stdout), "the one-off to run")
    running.send_signal(signal.SIGINT)
    assert running.wait(timeout=60) == 130
    wait_for(lambda: "run." not in laptop.gitpaas("ps", "-a", "blog").stdout, "Ctrl-C to stop the dyno")
    # `logs --tail` follows from here too
    tail = subprocess.Popen([GITPAAS, "logs", "--tail", "-a", "blog"], env=laptop.env, cwd=laptop.repo, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    seen: list[str] = []
    threading.Thread(target=lambda: seen.extend(tail.stdout), daemon=True).start()
    try:
        wait_for(lambda: home.get("blog", "/tailed-from-the-laptop") and any(
            "/tailed-from-the-laptop" in line for line in seen), "the tail to print a new line", interval=1)
    finally:
        tail.terminate()
        tail.wait(timeout=10)
    detached = laptop.gitpaas("run:detached", "-a", "blog", "--", "sh", "-c", "echo from-the-background; sleep 300")
    name = re.search(r"done, (run\.\d{4})", detached.stdout).group(1)
    wait_for(lambda: f"app[{name}]: from-the-background" in laptop.gitpaas("logs", "-a", "blog").stdout,
             "the detached dyno's output in the logs")
    assert re.search(rf"{name}\s+up\s+v5", laptop.gitpaas("ps", "-a", "blog").stdout)
    assert f"Stopping {name} of blog... done" in laptop.gitpaas("ps:stop", name, "-a", "blog").stdout
    wait_for(lambda: name not in laptop.gitpaas("ps", "-a", "blog").stdout, "the stopped one-off to leave ps")

    # --- maintenance mode: the router's 503 page --------------------------------------------------
    assert "Enabling maintenance mode for blog... done" in laptop.gitpaas("maintenance:on", "-a", "blog").stdout
    page = home.get("blog")
    assert page.status_code == 503 and "Offline for maintenance" in page.text
    assert laptop.gitpaas("maintenance", "-a", "blog").stdout == "on\n"
    laptop.gitpaas("maintenance:off", "-a", "blog")
    assert home.get("blog").text == "hello v1 from web.1\n"

    # --- domains, access, webhooks -----------------------------------------------------------------
    assert "Adding www.blog.test to blog... done" in laptop.gitpaas("domains:add", "www.blog.test", "-a", "blog").stdout
    assert home.get("www.blog.test").text == "hello v1 from web.1\n"
    assert "www.blog.test" in laptop.gitpaas("domains", "-a", "blog").stdout
    laptop.gitpaas("domains:clear", "-a", "blog")
    assert home.get("www.blog.test").status_code == 404
    home.gitpaas("users:add", "bob@example.com")
    assert "Adding bob@example.com access to the app blog... done" in laptop.gitpaas(
        "access:add", "bob@example.com", "-a", "blog").stdout
    assert re.search(r"bob@example\.com\s+collaborator", laptop.gitpaas("access", "-a", "blog").stdout)

    # --- add-ons: the same commands, the release that attaches one followed ---------------------
    created = laptop.gitpaas("addons:create", "redis", "-a", "blog", timeout=900)
    addon = re.search(r"Creating (redis-[a-z]+-\d+) on blog\.\.\. done", created.stdout).group(1)
    assert f"{addon} is attached as REDIS: REDIS_URL is set (release v6)" in created.stdout
    assert "       release phase for hello v1" in created.stdout
    assert laptop.gitpaas("addons", "-a", "blog", "--json").stdout == home.gitpaas("addons", "-a", "blog", "--json").stdout
    assert re.search(r"^Config var: +REDIS_URL$", laptop.gitpaas("addons:info", addon, "-a", "blog").stdout, re.M)
    assert f"(add-on {addon})" in laptop.gitpaas("config", "-a", "blog").stdout
    assert laptop.gitpaas("redis:cli", "-a", "blog", "-c", "SET greeting 'from the laptop'").stdout == "OK\n"
    assert laptop.gitpaas("redis:cli", "-a", "blog", "-c", "GET greeting").stdout == "from the laptop\n"
    assert laptop.gitpaas("redis:cli", "-a", "blog", stdin="INCR n\nINCR n\n").stdout == "1\n2\n"
    refused = laptop.gitpaas("addons:destroy", addon, "-a", "blog", check=False)
    assert "run again with --confirm blog" in one_error_line(refused)
    gone = laptop.gitpaas("addons:destroy", addon, "-a", "blog", "--confirm", "blog")
    assert f"Destroying {addon} on blog... done (release v7)" in gone.stdout
    assert laptop.gitpaas("addons", "-a", "blog", "--json").stdout.strip() == "[]"

    # PostgreSQL: psql, backups (captured, listed, downloaded here, restored, scheduled, deleted)
    laptop.gitpaas("addons:create", "heroku-postgresql", "-a", "blog", timeout=900)
    made = laptop.gitpaas("pg:psql", "-a", "blog", stdin="CREATE TABLE notes (body text);\n"
                                                         "INSERT INTO notes VALUES ('from the laptop');\n")
    assert "INSERT 0 1" in made.stdout, made.stdout + made.stderr
    captured = laptop.gitpaas("pg:backups:capture", "-a", "blog")
    backup = re.search(r"Backing up DATABASE \(postgresql-[a-z]+-\d+\) on blog\.\.\. done, (b\d+)", captured.stdout).group(1)
    assert json.loads(laptop.gitpaas("pg:backups", "-a", "blog", "--json").stdout) == \
        json.loads(home.gitpaas("pg:backups", "-a", "blog", "--json").stdout)
    dump = laptop.home / "blog.dump"
    assert f"Wrote {backup} to {dump}" in laptop.gitpaas("pg:backups:download", backup, "-a", "blog", "-o", str(dump)).stdout
    assert dump.read_bytes()[:5] == b"PGDMP"
    laptop.gitpaas("pg:psql", "-a", "blog", "-c", "DELETE FROM notes")
    laptop.gitpaas("pg:backups:restore", backup, "-a", "blog", "--confirm", "blog")
    assert "from the laptop" in laptop.gitpaas("pg:psql", "-a", "blog", "-c", "SELECT body FROM notes").stdout
    assert "at 03:30 UTC, keeping 3" in laptop.gitpaas("pg:backups:schedule", "-a", "blog", "--at", "3:30",
                                                       "--retain", "3").stdout
    laptop.gitpaas("pg:backups:unschedule", "-a", "blog")
    assert f"Deleted {backup}" in laptop.gitpaas("pg:backups:delete", backup, "-a", "blog", "--confirm", "blog").stdout

    # --- what runs on the server only says so, in one line, with no path -----------------------
    for command in (["backup", "/tmp/x.tar"], ["users"], ["tokens:create", "--user", "bob@example.com"],
                    ["stack:build"], ["sshd:config"], ["pg:backups:take-due"], ["addons:rotate-credentials", "x"]):
        line = one_error_line(laptop.gitpaas(*command, check=False))
        assert "runs on the server only" in line and str(home.path) not in line

    # --- a revoked token: every command says to log in again ------------------------------------
    token_id = home.json("tokens", "--user", "dev@example.com")[0]["id"]
    destroyed = laptop.gitpaas("apps:destroy", "blog", "--confirm", "blog")
    assert "Destroying blog (including all its releases and add-ons)... done" in destroyed.stdout
    assert not (home.path / "apps" / "blog").exists()
    home.gitpaas("tokens:revoke", token_id)
    refused = laptop.gitpaas("apps", check=False)
    assert refused.returncode == 9 and "log in again with `gitpaas login`" in one_error_line(refused)
    assert "Logged out of" in laptop.gitpaas("logout").stdout
    assert not stored.exists()


class Receiver(http.server.BaseHTTPRequestHandler):
    """A drain's HTTPS endpoint, in plain HTTP on loopback (the operator allows private targets)."""

    received: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_log_drains_receive_every_line_across_a_deploy(tmp_path, docker_client):
    from harness import Home

    home = Home.make(tmp_path, GITPAAS_WEBHOOK_PRIVATE_TARGETS="1")
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    server = ApiServer(home)
    try:
        home.create_app("drained")
        assert home.push("drained", "web").returncode == 0
        url = f"http://127.0.0.1:{receiver.server_address[1]}/logs"
        added = home.gitpaas("drains:add", url, "-a", "drained").stdout
        token = re.search(r"token (d\.[0-9a-f-]+)", added).group(1)
        # (the server starts feeding a new drain within seconds: lines from then on are sent)
        wait_for(lambda: home.get("drained", "/before-the-deploy") and any(
            b"/before-the-deploy" in body for _, body in Receiver.received), "the first line drained", interval=1)
        headers, body = next((h, b) for h, b in Receiver.received if b"/before-the-deploy" in b)
        assert headers["Content-Type"] == "application/logplex-1" and headers["Logplex-Drain-Token"] == token
        assert re.match(rb"\d+ <190>1 \S+ " + token.encode() + rb" app web\.1 - ", body), body
        # a deploy replaces web.1's container: the drain follows the new one
        assert home.push("drained", "web", files={"BODY": "second"}).returncode == 0
        home.get("drained", "/after-the-deploy")
        wait_for(lambda: any(b"/after-the-deploy" in body for _, body in Receiver.received),
                 "a line of the new release's process drained", timeout=60)
        status = home.json("drains", "-a", "drained")[0]["status"]
        assert status["delivered"] >= 2 and status["failures"] == 0
        home.gitpaas("drains:remove", url, "-a", "drained")
        assert home.json("drains", "-a", "drained") == []
        # a private address without the operator's consent: refused, in one line
        strict = {**home.env, "GITPAAS_WEBHOOK_PRIVATE_TARGETS": ""}
        refused = subprocess.run([GITPAAS, "drains:add", url, "-a", "drained"], env=strict, capture_output=True,
                                 text=True)
        assert "drains may only go to public addresses" in one_error_line(refused)
    finally:
        server.stop()
        receiver.shutdown()
        home.purge()


def test_run_on_the_server_itself(home, tmp_path):
    """No login: `run` attaches to the engine directly — a shell on a terminal, a pipe, Ctrl-C."""
    home.create_app("local")
    assert home.push("local", "web").returncode == 0
    server_side = Laptop(tmp_path / "server-shell")
    server_side.env.update({key: value for key, value in home.env.items() if key.startswith("GITPAAS_")})
    shell = server_side.on_terminal(["run", "-a", "local", "bash"], typed=b"stty size; exit 7\r")
    assert shell.returncode == 7 and re.search(rb"\r\d+ \d+\r\n", shell.output), shell.output
    piped = server_side.gitpaas("run", "-a", "local", "--", "sh", "-c", "wc -l; echo oops >&2; exit 2", check=False,
                                stdin="one\ntwo\n")
    assert (piped.returncode, piped.stdout.strip(), "oops" in piped.stderr) == (2, "2", True)
    assert not [p for p in home.json("ps", "-a", "local") if p["type"] == "run"], "an attached one-off is removed"


def test_pipelines_and_review_apps_from_another_machine(home, server, laptop):
    """Promotion and review apps through the API: the promoted release's story streamed as it
    happens, a review app from a branch pushed over HTTPS, the same --json as on the server."""
    laptop.gitpaas("login", "--server", server.url, stdin=server.token + "\n")
    for app in ("news-staging", "news"):
        laptop.gitpaas("apps:create", app)
    laptop.gitpaas("pipelines:create", "news", "-a", "news-staging", "--stage", "staging")
    assert "Adding news to news pipeline as production... done" in laptop.gitpaas(
        "pipelines:add", "news", "-a", "news", "--stage", "production").stdout
    laptop.gitpaas("config:set", "GREETING=production-hello", "-a", "news")
    for item in (APPS / "web").iterdir():
        (laptop.repo / item.name).write_bytes(item.read_bytes())
    (laptop.repo / "Procfile").write_text(WEB + 'release: echo "greeting is $GREETING"\n')
    (laptop.repo / "app.json").write_text(json.dumps({"scripts": {"postdeploy": "echo seeded"}}))
    laptop.git("init", "-q", "-b", "main")
    laptop.git("add", "-A")
    laptop.git("commit", "-q", "-m", "first")
    laptop.gitpaas("git:remote", "-a", "news-staging")
    assert laptop.git("push", "gitpaas", "main").returncode == 0

    promoted = laptop.gitpaas("pipelines:promote", "-a", "news-staging")
    lines = promoted.stdout.splitlines()
    assert lines[0].startswith("Promoting news-staging v1 (slug ") and lines[0].endswith(" to news")
    assert "-----> Promoting to news: v1" in lines and "       greeting is production-hello" in lines
    assert lines[-2:] == ["news: succeeded v1", "Promotion successful"]
    assert home.release("news", 1)["slug"] == home.release("news-staging", 1)["slug"]
    assert json.loads(laptop.gitpaas("pipelines:info", "news", "--json").stdout) == json.loads(
        home.gitpaas("pipelines:info", "news", "--json").stdout)
    assert "news-staging is up to date with news" in laptop.gitpaas("pipelines:diff", "-a", "news-staging").stdout

    laptop.gitpaas("reviewapps:enable", "-p", "news", "-a", "news-staging")
    laptop.gitpaas("reviewapps:config:set", "GREETING=review-hello", "-p", "news")
    assert json.loads(laptop.gitpaas("reviewapps:config", "-p", "news", "--json").stdout) == {"GREETING": "review-hello"}
    laptop.git("checkout", "-q", "-b", "fix-typo")
    (laptop.repo / "BODY").write_text("fixed")
    laptop.git("commit", "-q", "-am", "fix the typo")
    pushed = laptop.git("push", "gitpaas", "fix-typo")
    assert "greeting is review-hello" in pushed.stderr and "seeded" in pushed.stderr
    assert f"Review app for fix-typo: http://news-staging-fix-typo.localhost:{home.port}/" in pushed.stderr
    assert home.get("news-staging-fix-typo").text.startswith("fixed from web.1")
    listed = json.loads(laptop.gitpaas("reviewapps", "-p", "news", "--json").stdout)
    assert [(a["app"], a["branch"]) for a in listed] == [("news-staging-fix-typo", "fix-typo")]
    deleted = laptop.git("push", "gitpaas", ":fix-typo")
    assert "Destroyed news-staging-fix-typo" in deleted.stderr
    assert json.loads(laptop.gitpaas("reviewapps", "-p", "news", "--json").stdout) == []
    laptop.gitpaas("pipelines:remove", "-a", "news")
    assert "Destroying news pipeline... done" in laptop.gitpaas("pipelines:destroy", "news").stdout
    assert laptop.gitpaas("pipelines", "--json").stdout.strip() == "[]"
