"""docker-local's own decisions, without an engine: how a swap converges (keep, start, check,
route, retire — on fake containers and a real listening socket), how commands are run, and how
readiness is read from a process's network namespace. The integration tests run the same code on
the real engine."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from fakes import FakeRouter
from gitpaas import sizes
from gitpaas.errors import BootFailed
from gitpaas.output import RecordingOutput
from gitpaas.scheduler import Deployment, Process, ReleaseSpec
from gitpaas.scheduler.docker_local import swap
from gitpaas.scheduler.docker_local.containers import SPEC, Dyno, shell_command
from gitpaas.scheduler.docker_local.health import listening_in_container
from gitpaas.settings import Settings


class FakeContainer:
    def __init__(self, name: str, spec: str, running: bool = True) -> None:
        self.name = name
        self.status = "running" if running else "exited"
        self.attrs = {"State": {"Pid": 0, "Restarting": False}}
        self.labels = {SPEC: spec}

    def reload(self) -> None:
        pass

    def logs(self, tail: int) -> bytes:
        return b"Traceback: it broke\n"


def answer_503(listener: socket.socket) -> None:
    """A server that answers at once (so "accepts connections" is known without waiting), but never healthy."""
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return  # closed at the end of the test
        with connection:
            connection.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")


class FakeContainers:
    """Containers in memory; a web one listens on a real loopback socket unless told it never will."""

    def __init__(self) -> None:
        self.dynos_now: list[Dyno] = []
        self.stopped: list[str] = []
        self.deaf: set[str] = set()  # process names that never listen
        self.sockets: list[socket.socket] = []

    def dynos(self, app: str) -> list[Dyno]:
        return list(self.dynos_now)

    def refresh(self, dyno: Dyno) -> Dyno | None:
        return dyno if dyno in self.dynos_now else None

    def start(self, release: ReleaseSpec, process_type: str, index: int, size: str | None = None) -> Dyno:
        name = f"{process_type}.{index}"
        address = None
        if process_type == "web":
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            if name not in self.deaf:
                listener.listen()
                threading.Thread(target=answer_503, args=(listener,), daemon=True).start()
            self.sockets.append(listener)
            address = listener.getsockname()
        process = Process(id=f"{name}@v{release.version}", app=release.app, type=process_type, index=index,
                          release_version=release.version, release_id=release.id, command="", state="up",
                          created_at="2026-12-01T00:00:00Z", size=sizes.get(size).name)
        dyno = Dyno(process, FakeContainer(name, self.spec(release, size, process_type)), address)
        self.dynos_now.append(dyno)
        return dyno

    def spec(self, release: ReleaseSpec, size: str | None, process_type: str) -> str:
        """How docker-local would set the container up: here, its size and image are what differ."""
        return f"{sizes.get(size).name} {release.image_of(process_type)}"

    def stop(self, dynos: list[Dyno], grace: float) -> None:
        for dyno in dynos:
            self.stopped.append(dyno.process.id)
            self.dynos_now.remove(dyno)

    def tail(self, container) -> str:
        return "Traceback: it broke"

    def close(self) -> None:
        for listener in self.sockets:
            listener.close()


@pytest.fixture
def world(tmp_path, monkeypatch):
    containers = FakeContainers()
    router = FakeRouter(tmp_path / "routes")
    retired: list[str] = []
    monkeypatch.setattr(swap, "retire_in_background",
                        lambda _containers, _settings, dynos: retired.extend(d.process.id for d in dynos))
    settings = Settings(home=tmp_path / "home", http_port=8080, boot_timeout=0.3, startup_window=0)

    def converge(version: int, formation: dict[str, int], replace=frozenset(), checks=None, sizes=None):
        release = ReleaseSpec(app="shop", version=version, id=f"id-{version}", image=f"img:v{version}",
                              process_types={"web": "serve", "worker": "work"}, env={},
                              healthchecks=checks or {})
        deployment = Deployment(release=release, formation=formation, hosts=["shop.localhost"], replace=replace,
                                sizes=sizes or {})
        return swap.converge(containers, router, settings, deployment, RecordingOutput())
    yield containers, router, retired, converge
    containers.close()


def test_a_new_release_starts_beside_the_old_then_routes_then_retires_it(world):
    containers, router, retired, converge = world
    converge(1, {"web": 1})
    report = converge(2, {"web": 1, "worker": 1})
    assert report.started == ["web.1", "worker.1"] and report.retired == ["web.1"]
    assert retired == ["web.1@v1"]
    new_web = next(d for d in containers.dynos_now if d.process.id == "web.1@v2")
    assert router.routes["shop"] == (["shop.localhost"], [new_web.address])


def test_processes_of_the_wanted_release_are_kept_and_extras_retired(world):
    containers, router, retired, converge = world
    converge(1, {"web": 3})
    report = converge(1, {"web": 1})
    assert report.started == [] and sorted(report.retired) == ["web.2", "web.3"]
    assert len(router.routes["shop"][1]) == 1


def test_replace_starts_fresh_processes_even_of_the_same_release(world):
    containers, router, retired, converge = world
    converge(1, {"web": 2})
    report = converge(1, {"web": 2}, replace=frozenset({"web.2"}))
    assert report.started == ["web.2"] and report.retired == ["web.2"]


def test_a_dead_container_is_replaced_and_removed_not_retired(world):
    """After a reboot, a container that did not come back (exited, not restarting) is replaced."""
    containers, router, retired, converge = world
    converge(1, {"web": 1, "worker": 1})
    worker = next(d for d in containers.dynos_now if d.process.type == "worker")
    worker.container.status = "exited"
    report = converge(1, {"web": 1, "worker": 1})
    assert report.started == ["worker.1"] and retired == [] and containers.stopped == ["worker.1@v1"]


def test_a_container_set_up_by_an_older_gitpaas_is_replaced(world):
    """No spec label (an older gitpaas: root, a shared network, no limits): replaced, not kept."""
    containers, router, retired, converge = world
    converge(1, {"web": 1})
    containers.dynos_now[0].container.labels.clear()
    report = converge(1, {"web": 1})
    assert report.started == ["web.1"] and report.retired == ["web.1"] and retired == ["web.1@v1"]


def test_a_size_change_replaces_the_processes_of_that_type(world):
    containers, router, retired, converge = world
    converge(1, {"web": 1, "worker": 1})
    report = converge(1, {"web": 1, "worker": 1}, sizes={"worker": "Standard-2X"})
    assert report.started == ["worker.1"] and report.retired == ["worker.1"]
    assert [d.process.size for d in containers.dynos_now if d.process.type == "worker"] == ["standard-1x",
                                                                                              "standard-2x"]


def test_a_new_process_that_never_listens_is_stopped_and_nothing_else_changes(world):
    containers, router, retired, converge = world
    converge(1, {"web": 1})
    routes_before = dict(router.routes)
    containers.deaf.add("web.1")
    with pytest.raises(BootFailed) as caught:
        converge(2, {"web": 1})
    assert caught.value.version == 2 and "did not accept connections on PORT 5000 within 0.3 s" in str(caught.value)
    assert caught.value.log_tail == "Traceback: it broke"
    assert containers.stopped == ["web.1@v2"]
    assert router.routes == routes_before and retired == []
    assert [d.process.id for d in containers.dynos_now] == ["web.1@v1"]


def test_a_failing_app_json_check_fails_the_swap(world):
    containers, router, retired, converge = world
    checks = {"web": [{"path": "/health", "name": "ready", "content": None, "attempts": 1, "wait": 0,
                       "timeout": 0.5, "initial_delay": 0}]}
    with pytest.raises(BootFailed, match="failed health check 'ready' after 1 attempt: GET /health answered 503"):
        converge(1, {"web": 1}, checks=checks)
    assert router.routes == {}


@pytest.mark.parametrize("command, expected", [
    ("python3 app.py --port $PORT", "exec python3 app.py --port $PORT"),
    ("gunicorn app:app > /dev/null", "exec gunicorn app:app > /dev/null"),
    ("./migrate && ./serve", "./migrate && ./serve"),
    ("trap '' TERM; sleep 10", "trap '' TERM; sleep 10"),
    ("FOO=1 python3 app.py", "FOO=1 python3 app.py"),
    ("echo $(date)", "echo $(date)"),
    ("if true; then x; fi", "if true; then x; fi"),
])
def test_simple_commands_are_execd_so_the_app_gets_signals(command, expected):
    assert shell_command(command) == ["/bin/sh", "-c", expected]


def test_listening_sockets_are_read_from_the_process_network_namespace():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert listening_in_container(os.getpid(), port) is False, "bound is not listening"
        listener.listen()
        assert listening_in_container(os.getpid(), port) is True
    assert listening_in_container(0, port) is None
    assert listening_in_container(2 ** 22 + 17, port) is None, "no such process: cannot tell"


class _RunEngine:
    """A Docker client for one-off runs: ``running`` are the summaries its container listing
    answers; a container sharing another's network fails to start when ``neighbour_gone``."""

    def __init__(self, running: list[dict], neighbour_gone: bool = False) -> None:
        self.made: list[dict] = []
        self.removed: list[dict] = []
        engine = self

        class Made:
            def __init__(self, args: dict) -> None:
                self.args, self.attrs = args, {"State": {"OOMKilled": False}}

            def start(self) -> None:
                if neighbour_gone and "network_mode" in self.args:
                    import docker
                    raise docker.errors.APIError("cannot join network of a non running container")

            def logs(self, stream: bool, follow: bool):
                return iter([b"migrated\n"])

            def wait(self) -> dict:
                return {"StatusCode": 0}

            def reload(self) -> None:
                pass

            def remove(self, force: bool) -> None:
                engine.removed.append(self.args)

        class api:
            @staticmethod
            def containers(filters: dict) -> list[dict]:
                assert filters["status"] == ["running"] and "gitpaas.role=process" in filters["label"]
                return running

        class containers:
            @staticmethod
            def create(**args) -> Made:
                engine.made.append(args)
                return Made(args)

        class images:
            @staticmethod
            def get(name: str):
                return type("Image", (), {"attrs": {"Config": {"User": ""}}})()

        self.api, self.containers, self.images = api, containers, images


def _release_run(tmp_path, engine: _RunEngine):
    from gitpaas.scheduler import OneOff
    from gitpaas.scheduler.docker_local import DockerLocalScheduler
    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path)})
    scheduler = DockerLocalScheduler(engine, settings, FakeRouter(tmp_path))
    scheduler.containers._networks_ready.add(settings.app_network("shop"))
    release = ReleaseSpec(app="shop", version=2, id="r2", image="shop:v2", process_types={"release": "migrate"}, env={})
    lines: list[str] = []
    result = scheduler._run_once(OneOff(release, "release", 1234, "migrate"), lines.append, timeout=60)
    return settings, result, lines


def _summary(settings, name: str) -> dict:
    return {"Id": name + "-id", "Names": ["/" + name],
            "NetworkSettings": {"Networks": {settings.app_network("shop"): {}}}}


def test_a_release_command_shares_a_running_processs_network_and_has_no_host_name_of_its_own(tmp_path):
    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path)})
    engine = _RunEngine([{**_summary(settings, "old-web.1-retiring")}, _summary(settings, "web.1"),
                         {"Id": "elsewhere", "Names": ["/other"], "NetworkSettings": {"Networks": {"bridge": {}}}}])
    _settings, result, lines = _release_run(tmp_path, engine)
    assert result.exit_status == 0 and lines == ["migrated"]
    [made] = engine.made
    assert made["network_mode"] == "container:web.1-id", "not one being retired, nor one off the app's network"
    assert "network" not in made and "hostname" not in made
    assert made["labels"]["gitpaas.role"] == "release" and made["environment"]["DYNO"] == "release.1234"
    assert engine.removed == [made]


def test_a_release_command_gets_its_own_network_without_a_running_process_or_when_it_is_gone(tmp_path):
    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path)})
    alone = _RunEngine([])
    _release_run(tmp_path, alone)
    [made] = alone.made
    assert made["network"] == settings.app_network("shop") and "network_mode" not in made

    gone = _RunEngine([_summary(settings, "web.1")], neighbour_gone=True)
    _settings, result, lines = _release_run(tmp_path, gone)
    shared, own = gone.made
    assert shared["network_mode"] == "container:web.1-id" and own["network"] == settings.app_network("shop")
    assert gone.removed == [shared, own] and result.exit_status == 0 and lines == ["migrated"]
