"""git push over SSH: a real sshd from `gitpaas sshd:config`, real keys, the same pre-receive pipeline.

sshd runs as root on a free loopback port and accepts logins as root (the test's OS user); in
production the operator makes a `git` user (README: SSH). Each key may only run gitpaas's forced
command, which lets it push only to the apps its account owns or collaborates on.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import APPS, Home, free_port

from gitpaas.git.repo import read_ref
from gitpaas.operations import create_app
from gitpaas.platform import Platform

ALICE = "alice@example.com"
BOB = "bob@example.com"


@dataclass
class SshServer:
    home: Home
    port: int
    user: str

    def url(self, app: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}/{app}.git"


@pytest.fixture
def sshd(home, tmp_path):
    """`gitpaas sshd:config` on a free loopback port, and the sshd it describes, in the foreground."""
    port, user = free_port(), getpass.getuser()
    # tmp_path is under /tmp (writable by all), which sshd's StrictModes would refuse
    printed = home.gitpaas("sshd:config", "--port", str(port), "--listen", "127.0.0.1", "--user", user,
                           "--no-strict-modes").stdout
    command = next(line.split() for line in printed.splitlines() if line.strip().startswith("/"))
    assert command[-2:] == ["-f", str(home.path / "ssh" / "sshd_config")]
    with open(tmp_path / "sshd.log", "w") as log:
        process = subprocess.Popen([command[0], "-D", "-e", *command[1:]], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None, (tmp_path / "sshd.log").read_text()
            assert time.monotonic() < deadline, "sshd did not listen within 15 s"
            time.sleep(0.1)
    yield SshServer(home, port, user)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def make_key(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "keys" / name
    path.parent.mkdir(exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return path


def add_user_with_key(home: Home, tmp_path: Path, email: str) -> Path:
    home.gitpaas("users:add", email)
    key = make_key(tmp_path, email.split("@")[0])
    home.gitpaas("keys:add", "--user", email, str(key.with_suffix(".pub")))
    return key


def ssh_env(key: Path) -> dict[str, str]:
    return {"GIT_SSH_COMMAND": f"ssh -i {key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                               "-o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR"}


def commit(home: Home, work: str, source: str, files: dict[str, str] | None = None) -> Path:
    """Commit tests/apps/SOURCE (plus ``files``) in the work repo ``work``."""
    repo = home.work / work
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True)
        home._git(repo, "init", "-q", "-b", "main")
    for item in repo.iterdir():
        if item.name != ".git":
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    shutil.copytree(APPS / source, repo, dirs_exist_ok=True)
    for name, text in (files or {}).items():
        (repo / name).write_text(text)
    home._git(repo, "add", "-A")
    home._git(repo, "commit", "-q", "--allow-empty", "-m", f"push {source}")
    return repo


def ssh_push(server: SshServer, key: Path, app: str, repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", server.url(app), "HEAD:refs/heads/main"], check=False, cwd=repo,
                          capture_output=True, text=True, env={**server.home.env, **ssh_env(key)}, timeout=900)


def remote_lines(stderr: str) -> list[str]:
    """What the pre-receive hook said, as git relays it (``remote:`` lines, padding stripped)."""
    return [line.removeprefix("remote:").strip() for line in stderr.splitlines() if line.startswith("remote:")]


def nothing_received(home: Home, app: str) -> bool:
    """No ref, no objects (not even in quarantine) and no release: git never ran."""
    repo = home.path / "apps" / app / "repo.git"
    objects = [p for p in (repo / "objects").rglob("*") if p.is_file()]
    releases = home.path / "apps" / app / "releases"
    return (read_ref(repo, "refs/heads/main") is None and not objects
            and not (releases.is_dir() and any(releases.iterdir())))


def test_push_over_ssh_deploys_with_the_same_pipeline(sshd, home, tmp_path):
    key = add_user_with_key(home, tmp_path, ALICE)
    create_app(Platform(home.settings), "viassh", owner=ALICE)
    repo = commit(home, "viassh", "web")

    push = ssh_push(sshd, key, "viassh", repo)
    assert push.returncode == 0, push.stderr
    said = remote_lines(push.stderr)
    assert said[0].startswith("-----> Deploying viassh: main at")
    assert "-----> Building on the trixie stack with a Dockerfile" in said and "release phase for hello v1" in said
    assert said.index("release phase for hello v1") < next(i for i, line in enumerate(said)
                                                           if line.startswith("-----> Deployed v1 in"))
    assert home.get("viassh").text == "hello v1 from web.1\n"
    release = home.release("viassh", 1)
    assert release["status"] == "succeeded" and release["commit"] == home.head("viassh")
    assert release["user"]["email"] == ALICE, "the release names the account that pushed"

    # a failing release phase rejects an SSH push exactly as it does a local one
    good = home.head("viassh")
    repo = commit(home, "viassh", "web", {
        "BODY": "broken v2", "Procfile": "web: python3 /app/server.py\nrelease: echo 'migrating...'; exit 1\n"})
    push = ssh_push(sshd, key, "viassh", repo)
    assert push.returncode != 0
    assert "pre-receive hook declined" in push.stderr
    assert "migrating..." in remote_lines(push.stderr)
    assert "release v2 failed: release command exited with status 1" in push.stderr
    assert read_ref(home.path / "apps/viassh/repo.git", "refs/heads/main") == good
    assert home.release("viassh", 2)["status"] == "failed"
    assert home.get("viassh").text == "hello v1 from web.1\n"

    # and a failing build too
    push = ssh_push(sshd, key, "viassh", commit(home, "viassh", "build-fails"))
    assert push.returncode != 0 and "pre-receive hook declined" in push.stderr
    assert any("error: assets/missing.css not found" in line for line in remote_lines(push.stderr))
    assert home.get("viassh").text == "hello v1 from web.1\n"


def test_a_push_to_an_app_the_key_may_not_use_is_refused_before_anything_is_received(sshd, home, tmp_path):
    alice = add_user_with_key(home, tmp_path, ALICE)
    add_user_with_key(home, tmp_path, BOB)
    create_app(Platform(home.settings), "bobs", owner=BOB)
    repo = commit(home, "alice-work", "web")

    answers = []
    for app in ("bobs", "nothere"):
        push = ssh_push(sshd, alice, app, repo)
        assert push.returncode != 0
        assert f"gitpaas: you may not push to {app}" in push.stderr
        assert "remote:" not in push.stderr and "Deploying" not in push.stderr
        answers.append(push.stderr.replace(app, "APP"))
    assert answers[0] == answers[1], "a stranger cannot tell a foreign app from a missing one"
    assert nothing_received(home, "bobs")
    assert not (home.path / "apps" / "nothere").exists()

    # once Bob adds Alice as a collaborator, the same push deploys
    home.gitpaas("access:add", ALICE, "-a", "bobs")
    push = ssh_push(sshd, alice, "bobs", repo)
    assert push.returncode == 0, push.stderr
    assert home.get("bobs").text == "hello v1 from web.1\n"
    assert home.release("bobs", 1)["user"]["email"] == ALICE


def test_a_removed_key_is_refused(sshd, home, tmp_path):
    key = add_user_with_key(home, tmp_path, ALICE)
    create_app(Platform(home.settings), "keyless", owner=ALICE)
    fingerprint = home.json("keys")[0]["fingerprint"]
    home.gitpaas("keys:remove", fingerprint)

    push = ssh_push(sshd, key, "keyless", commit(home, "keyless", "web"))
    assert push.returncode != 0
    assert "Permission denied (publickey)" in push.stderr
    assert nothing_received(home, "keyless")


def test_an_interactive_login_is_refused(sshd, home, tmp_path):
    key = add_user_with_key(home, tmp_path, ALICE)
    ssh = ["ssh", *ssh_env(key)["GIT_SSH_COMMAND"].split()[1:], "-p", str(sshd.port), f"{sshd.user}@127.0.0.1"]
    for remote_command in ([], ["id"], ["sh", "-c", "touch /tmp/owned"]):
        result = subprocess.run([*ssh, *remote_command], check=False, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=60)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.startswith("gitpaas: ") and result.stderr.count("\n") == 1
        if not remote_command:
            assert "no shell" in result.stderr
