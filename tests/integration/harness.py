"""A gitpaas home for one test: the real CLI, real `git push`, real HTTP through the router."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import requests

from gitpaas import labels
from gitpaas.operations import purge_home
from gitpaas.platform import Platform
from gitpaas.scheduler.docker_local.containers import Containers
from gitpaas.scheduler.docker_local.containers import free_loopback_port as free_port
from gitpaas.settings import Settings

APPS = Path(__file__).resolve().parents[1] / "apps"
GITPAAS = str(Path(sys.executable).with_name("gitpaas"))


@dataclass
class Home:
    path: Path
    port: int
    work: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, base: Path, **extra_env: str) -> "Home":
        port = free_port()
        env = {**os.environ, "GITPAAS_HOME": str(base / "home"), "GITPAAS_HTTP_PORT": str(port),
               "GITPAAS_STOP_TIMEOUT": "5", "GITPAAS_BOOT_TIMEOUT": "30", **extra_env}
        return cls(path=base / "home", port=port, work=base / "work", env=env)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    # --- the CLI -------------------------------------------------------------------------
    def gitpaas(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([GITPAAS, *args], capture_output=True, text=True, env={**self.env, **(env or {})},
                                timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"gitpaas {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def json(self, *args: str):
        return json.loads(self.gitpaas(*args, "--json").stdout)

    def create_app(self, name: str) -> str:
        self.gitpaas("apps:create", name)
        return name

    # --- git -----------------------------------------------------------------------------
    def push(self, app: str, source: str | Path, files: dict[str, str] | None = None, branch: str = "main",
             env: dict | None = None, message: str | None = None, clone: str | None = None,
             url: str | None = None) -> subprocess.CompletedProcess:
        """Commit ``source`` (a folder under tests/apps, or a path) plus ``files`` and git push it
        (to the app's local repository, or to ``url``)."""
        process = self.start_push(app, source, files, branch, env, message, clone, url)
        stdout, stderr = process.communicate(timeout=900)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def start_push(self, app: str, source: str | Path, files: dict[str, str] | None = None, branch: str = "main",
                   env: dict | None = None, message: str | None = None, clone: str | None = None,
                   url: str | None = None) -> subprocess.Popen:
        """Like ``push`` but returns the running ``git push`` (``clone`` names a separate work repo)."""
        repo = self.work / (clone or app)
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True)
            self._git(repo, "init", "-q", "-b", "main")
        for item in repo.iterdir():
            if item.name != ".git":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        source_dir = Path(source) if Path(source).is_absolute() else APPS / source
        shutil.copytree(source_dir, repo, dirs_exist_ok=True)
        for name, text in (files or {}).items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
        self._git(repo, "add", "-A")
        self._git(repo, "commit", "-q", "--allow-empty", "-m", message or f"push {source}")
        git_url = url or str(self.path / "apps" / app / "repo.git")
        return subprocess.Popen(["git", "push", git_url, f"HEAD:refs/heads/{branch}"], cwd=repo, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**self.env, **(env or {})})

    def clone(self, app: str, name: str) -> None:
        """A second work repo of ``app`` (another developer's clone)."""
        self.work.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", str(self.path / "apps" / app / "repo.git"), str(self.work / name)],
                       check=True, capture_output=True)

    def head(self, app: str) -> str:
        return self._git(self.work / app, "rev-parse", "HEAD").stdout.strip()

    def remote_ref(self, app: str, branch: str = "main") -> str | None:
        out = self._git(self.work / app, "ls-remote", str(self.path / "apps" / app / "repo.git"),
                        f"refs/heads/{branch}").stdout.split()
        return out[0] if out else None

    @staticmethod
    def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-c", "user.name=gitpaas tests", "-c", "user.email=tests@gitpaas.invalid",
                               *args], cwd=cwd, capture_output=True, text=True, check=True)

    # --- HTTP through the router ---------------------------------------------------------
    def get(self, app_or_host: str, path: str = "/") -> requests.Response:
        host = app_or_host if "." in app_or_host else f"{app_or_host}.localhost"
        return requests.get(f"http://127.0.0.1:{self.port}{path}", headers={"Host": host}, timeout=10)

    # --- records and Docker objects ------------------------------------------------------
    def release(self, app: str, version: int) -> dict:
        return json.loads((self.path / "apps" / app / "releases" / f"v{version}" / "release.json").read_text())

    def docker_objects(self, client: docker.DockerClient, app: str | None = None) -> dict[str, list]:
        wanted = {labels.HOME: str(self.path)}
        if app:
            wanted[labels.APP] = app
        selector = labels.filters(wanted)
        return {
            # (gitpaas's own listing: a container removed while being listed, as a retired process, is not listed)
            "containers": Containers(client, self.settings).find(app),
            "images": client.images.list(filters=selector),
            "networks": client.networks.list(filters=labels.filters({labels.HOME: str(self.path)})) if not app else [],
            "volumes": client.volumes.list(filters=selector),
        }

    def purge(self) -> None:
        purge_home(Platform(self.settings))


class ApiServer:
    """``gitpaas server`` for a home, on a free loopback port, with an account and its token."""

    def __init__(self, home: Home, email: str = "dev@example.com", publish: bool = False) -> None:
        self.home, self.email = home, email
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home.gitpaas("users:add", email)
        self.token = self.create_token(email)
        #: what the server printed (uvicorn's access log, tracebacks of unexpected errors): read it when a test fails
        self.log_path = home.path.parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([GITPAAS, "server", "--port", str(self.port), "--rendezvous-port", "0",
                                         "--rendezvous-host", "127.0.0.1",
                                         *(["--publish"] if publish else [])],
                                        env=home.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url + "/openapi.json", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError("gitpaas server did not start")
                time.sleep(0.1)

    @property
    def rendezvous_certificate(self) -> Path:
        """The certificate one-off dynos' rendezvous serves (what the Heroku CLI must trust)."""
        return self.home.path / "rendezvous" / "rendezvous.crt"

    def create_token(self, email: str) -> str:
        out = self.home.gitpaas("tokens:create", "--user", email).stdout
        return re.search(r"gp_[A-Za-z0-9_-]+", out).group(0)

    def call(self, method: str, path: str, token: str | None = "default", **kwargs) -> requests.Response:
        headers = {"Accept": "application/vnd.heroku+json; version=3", **kwargs.pop("headers", {})}
        if token:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        return requests.request(method, self.url + path, headers=headers, timeout=120, **kwargs)

    def git_url(self, app: str, token: str | None = "default") -> str:
        secret = self.token if token == "default" else token
        return f"http://git:{secret}@127.0.0.1:{self.port}/{app}.git" if secret else f"{self.url}/{app}.git"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def wait_for(predicate, what: str, timeout: float = 60.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy (and return that); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def restart_engine(timeout: float = 90.0) -> None:
    """Stop the Docker engine and start it again the way it was started (what a reboot does to it):
    containers are stopped with it, and the engine restarts the ones whose policy says so."""
    if Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=timeout)
    else:
        pid = int(Path("/var/run/docker.pid").read_text().strip())
        command = [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]
        environ = dict(item.decode().split("=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                       if b"=" in item)
        os.kill(pid, 15)
        wait_for(lambda: _gone(pid), "dockerd to stop", timeout=timeout)
        # Started through a shell that exits at once, as setup.sh starts it: not a child of the tests.
        with open("/var/log/gitpaas-dockerd.log", "ab") as log:
            subprocess.run(["sh", "-c", 'setsid "$@" </dev/null &', "sh", *command], env=environ, stdout=log,
                           stderr=log, check=True)
    wait_for(lambda: subprocess.run(["docker", "info"], capture_output=True).returncode == 0,
             "the Docker engine to answer again", timeout=timeout)


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody reaped (a container's init may not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return True
