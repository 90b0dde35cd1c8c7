"""Zero-downtime swaps, health checks and graceful shutdown, against the real engine and nginx."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
import requests

from gitpaas import labels
from gitpaas.scheduler.docker_local import health
from gitpaas.scheduler.docker_local.containers import Containers
from gitpaas.stacks import DEFAULT_STACK
from harness import wait_for

WEB = "web: python3 /app/server.py\n"


class Load:
    """A steady stream of GETs through the router (a new connection each, as separate visitors make),
    bounded in count and time, recording every status and body."""

    def __init__(self, home, app: str, paths=("/", "/slow"), workers: int = 3, max_requests: int = 20000) -> None:
        self.home, self.app, self.paths = home, app, paths
        self.results: list[tuple[int | str, str]] = []
        self.stop = threading.Event()
        self.max_requests = max_requests
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(workers)]

    def _run(self, worker: int) -> None:
        deadline = time.monotonic() + 600
        path = self.paths[worker % len(self.paths)]
        while not self.stop.is_set() and time.monotonic() < deadline and len(self.results) < self.max_requests:
            try:
                response = requests.get(f"http://127.0.0.1:{self.home.port}{path}",
                                        headers={"Host": f"{self.app}.localhost", "Connection": "close"}, timeout=30)
                self.results.append((response.status_code, response.text))
            except requests.RequestException as exc:
                self.results.append((exc.__class__.__name__, str(exc)))

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def failures(self) -> list:
        return [r for r in self.results if not (isinstance(r[0], int) and 200 <= r[0] < 300)]


def test_no_request_fails_through_deploys_rollback_config_and_scaling(home):
    home.create_app("steady")
    assert home.push("steady", "web", files={"BODY": "v1"}).returncode == 0
    answers = lambda: home.get("steady").text  # noqa: E731
    with Load(home, "steady") as load:
        for body in ("v2", "v3", "v4"):
            push = home.push("steady", "web", files={"BODY": body})
            assert push.returncode == 0, push.stderr
            assert answers() == f"{body} from web.1\n"
        home.gitpaas("rollback", "-a", "steady")
        assert answers() == "v3 from web.1\n"
        home.gitpaas("config:set", "MOOD=calm", "-a", "steady")
        assert answers() == "v3 from web.1\n"
        home.gitpaas("ps:scale", "web=3", "-a", "steady")
        # round robin is shared with the load's requests, so a few of ours may keep missing one process
        seen: set[str] = set()
        for _ in range(100):
            seen.add(answers())
            if len(seen) == 3:
                break
        assert seen == {f"v3 from web.{n}\n" for n in (1, 2, 3)}
        home.gitpaas("ps:scale", "web=1", "-a", "steady")
        assert {answers() for _ in range(6)} == {"v3 from web.1\n"}
        home.gitpaas("ps:restart", "-a", "steady")
        assert answers() == "v3 from web.1\n"
        stopping = lambda: [d for d in home.json("ps", "-a", "steady") if d["state"] == "stopping"]  # noqa: E731
        wait_for(lambda: not stopping(), "the old processes to retire (while the traffic continues)")
    assert len(load.results) > 100, "the load really ran"
    assert load.failures() == [], Counter(str(f[0]) for f in load.failures())
    bodies = {text for _, text in load.results}
    assert bodies <= {f"v{n} from web.{i}\n" for n in range(1, 5) for i in (1, 2, 3)}


@pytest.mark.parametrize("network", ["app", "bridge"])
def test_a_new_process_is_seen_listening_from_its_namespace_counters(home, docker_client, monkeypatch, network):
    """The health check's assumption, against the engine: a container's socket counters move when
    its process listens, so its socket tables (a walk of the host's whole connection hash per
    read) are read only then, or every ``TABLES_POLL`` at most, not at every poll; and only the
    tables that hold a socket. On the app's own network Docker's DNS always holds one; on the
    default bridge the namespace starts empty and nothing is read at all."""
    tables_read: list[tuple] = []
    read_tables = health.listening_in_container

    def counted(pid, port, tables=tuple(health.TABLES)):
        tables_read.append(tables)
        return read_tables(pid, port, tables)
    monkeypatch.setattr(health, "listening_in_container", counted)
    listen_later = ("import os, socket, time\n"
                    "while not os.path.exists('/tmp/listen'): time.sleep(0.01)\n"
                    "s = socket.socket(); s.bind(('0.0.0.0', 5000)); s.listen(); time.sleep(120)\n")
    on = Containers(docker_client, home.settings).network("probe") if network == "app" else "bridge"
    container = docker_client.containers.run(f"gitpaas/stack:{DEFAULT_STACK}", ["python3", "-c", listen_later],
                                             labels=labels.for_app(home.settings, "probe"), network=on, detach=True)
    try:
        container.reload()
        pid = container.attrs["State"]["Pid"]
        before = {"tcp": 1, "tcp6": 0} if network == "app" else {"tcp": 0, "tcp6": 0}
        wait_for(lambda: health.tcp_sockets_in_use(pid) == before, f"the namespace's sockets at {before}")
        watch = health.Listening(pid, 5000)
        began, polls = time.monotonic(), 0
        while polls < 60:
            assert watch() is False
            polls += 1
            time.sleep(0.005)
        waited = time.monotonic() - began
        if network == "app":  # one read, then one per TABLES_POLL: not one per poll
            assert set(tables_read) == {("tcp",)}, tables_read
            # (the first poll reads; 60 polls of 5 ms outlast TABLES_POLL, so it reads again, and
            # no sooner than TABLES_POLL after each read)
            assert 2 <= len(tables_read) <= waited / health.TABLES_POLL + 1, (len(tables_read), polls, waited)
        else:
            assert tables_read == [], "no socket in the namespace: no table read"
        tables_read.clear()
        assert container.exec_run(["touch", "/tmp/listen"]).exit_code == 0
        wait_for(watch, "the listener seen", timeout=30, interval=0.005)
        assert health.tcp_sockets_in_use(pid) == {"tcp": before["tcp"] + 1, "tcp6": 0}
        assert tables_read and set(tables_read) == {("tcp",)}, tables_read
    finally:
        container.remove(force=True)


def test_http_health_check_with_wrong_content_fails_the_release(home, docker_client):
    home.create_app("checked")
    healthy = json.dumps({"healthchecks": {"web": [
        {"type": "startup", "name": "ready", "path": "/health", "content": "ok", "attempts": 2, "wait": 0.2}]}})
    first = home.push("checked", "web", files={"app.json": healthy})
    assert first.returncode == 0, first.stderr
    assert "web.1 passed health check 'ready' (GET /health)" in first.stderr
    wrong = json.dumps({"healthchecks": {"web": [
        {"type": "startup", "name": "ready", "path": "/health", "content": "healthy", "attempts": 2, "wait": 0.2}]}})
    push = home.push("checked", "web", files={"app.json": wrong, "BODY": "v2"})
    assert push.returncode != 0
    message = "web.1 failed health check 'ready' after 2 attempts: GET /health answered 200 without 'healthy'"
    assert message in push.stderr
    record = home.release("checked", 2)
    assert record["status"] == "failed" and message in record["failure"]["reason"]
    assert home.get("checked").text == "hello v1 from web.1\n"
    assert [c.labels[labels.RELEASE] for c in home.docker_objects(docker_client, "checked")["containers"]] == ["1"]


def test_a_crashing_worker_fails_the_release_even_when_web_is_fine(home):
    home.create_app("crashy")
    assert home.push("crashy", "web", files={"Procfile": WEB + "worker: sleep infinity\n"}).returncode == 0
    home.gitpaas("ps:scale", "worker=1", "-a", "crashy")
    push = home.push("crashy", "web", files={
        "BODY": "v2", "Procfile": WEB + "worker: echo 'worker: cannot connect to the queue'; exit 3\n"})
    assert push.returncode != 0
    assert "worker.1" in push.stderr and "within its" in push.stderr and "startup window" in push.stderr
    assert home.get("crashy").text == "hello v1 from web.1\n"
    up = {(d["name"], d["release"]["version"]) for d in home.json("ps", "-a", "crashy") if d["state"] == "up"}
    assert up == {("web.1", 1), ("worker.1", 1)}


def retire_log(home) -> str:
    path = home.path / "logs" / "retire.log"
    return path.read_text() if path.exists() else ""


def test_old_processes_get_sigterm_and_sigkill_after_the_grace_period(home):
    home.create_app("graceful")
    polite = WEB
    stubborn = "web: trap '' TERM; python3 /app/server.py & while true; do sleep 1; done\n"
    assert home.push("graceful", "web", files={"Procfile": polite}).returncode == 0
    assert home.push("graceful", "web", files={"Procfile": stubborn, "BODY": "v2"},
                     env={"GITPAAS_STOP_TIMEOUT": "3"}).returncode == 0
    line = wait_for(lambda: [ln for ln in retire_log(home).splitlines() if "(v1)" in ln], "v1 to be retired")[0]
    assert "graceful web.1 (v1): exited 0 after SIGTERM in" in line, line
    assert home.push("graceful", "web", files={"Procfile": polite, "BODY": "v3"},
                     env={"GITPAAS_STOP_TIMEOUT": "3"}).returncode == 0
    line = wait_for(lambda: [ln for ln in retire_log(home).splitlines() if "(v2)" in ln], "v2 to be retired")[0]
    assert "graceful web.1 (v2): killed after the 3 s grace period (exit 137)" in line, line


def test_crashes_are_restarted_and_shown(home):
    home.create_app("phoenix")
    assert home.push("phoenix", "web").returncode == 0

    def restarts() -> int:
        for line in home.gitpaas("ps", "-a", "phoenix").stdout.splitlines():
            columns = line.split()
            if columns and columns[0] == "web.1":
                return int(columns[-1])
        return -1
    assert restarts() == 0
    try:
        requests.get(f"http://127.0.0.1:{home.port}/crash", headers={"Host": "phoenix.localhost"}, timeout=5)
    except requests.RequestException:
        pass
    wait_for(lambda: restarts() >= 1, "the engine to restart web.1 and ps to count it")
    wait_for(lambda: home.get("phoenix").status_code == 200, "web.1 to answer again")


def test_domains_route_and_refuse_duplicates(home):
    home.create_app("dom-a")
    home.create_app("dom-b")
    assert home.push("dom-a", "web", files={"BODY": "site a"}).returncode == 0
    home.gitpaas("domains:add", "www.example.test", "-a", "dom-a")
    assert home.get("www.example.test").text == "site a from web.1\n"
    taken = home.gitpaas("domains:add", "www.example.test", "-a", "dom-b", check=False)
    assert taken.returncode == 2 and "www.example.test is already routed to dom-a" in taken.stderr
    bad = home.gitpaas("domains:add", "bad host;", "-a", "dom-b", check=False)
    assert bad.returncode == 2 and "invalid host name" in bad.stderr
    for takeover in ("dom-a.localhost", "api.localhost", "*.localhost", "localhost"):
        refused = home.gitpaas("domains:add", takeover, "-a", "dom-b", check=False)
        assert refused.returncode == 2 and "names this machine" in refused.stderr, takeover
    assert home.get("dom-a").text == "site a from web.1\n"
    assert [d["hostname"] for d in home.json("domains", "-a", "dom-a")] == ["dom-a.localhost", "www.example.test"]
    home.gitpaas("domains:remove", "www.example.test", "-a", "dom-a")
    assert home.get("www.example.test").status_code == 404
    assert home.get("dom-a").text == "site a from web.1\n"
