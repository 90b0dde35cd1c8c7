"""docker-local's own decisions, without an engine: how a swap converges (keep, start, check,
route, retire — on fake containers and a real listening socket), how commands are run, and how
readiness is read from a process's network namespace. The integration tests run the same code on
the real engine."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import socket
import threading
import time
from collections.abc import Callable

import pytest

from fakes import FakeRouter
from gitpaas import sizes
from gitpaas.errors import BootFailed, EnvironmentProblem
from gitpaas.output import RecordingOutput
from gitpaas.scheduler import Deployment, Process, ReleaseSpec
from gitpaas.scheduler.docker_local import retire, swap
from gitpaas.scheduler.docker_local.containers import GATE, HELD_MARKER, SPEC, Containers, Dyno, shell_command
from gitpaas.scheduler.docker_local import health
from gitpaas.scheduler.docker_local.health import Listening, listening_in_container, tcp_sockets_in_use
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

        self.held_now: list[Dyno] = []
        self.released: list[str] = []
        self.started: list[str] = []  # (not held)
        self.gates_gone: set[str] = set()  # process names whose held container no longer waits
        self.settled: list[str] = []

    def dynos(self, app: str) -> list[Dyno]:
        return list(self.dynos_now)

    def dynos_and_held(self, app: str) -> tuple[list[Dyno], list[Dyno]]:
        return list(self.dynos_now), list(self.held_now)

    def refresh(self, dyno: Dyno) -> Dyno | None:
        return dyno if dyno in self.dynos_now else None

    def release_held(self, dyno: Dyno) -> Dyno | None:
        self.held_now.remove(dyno)
        if dyno.name in self.gates_gone:
            self.stopped.append(dyno.process.id)
            return None
        self.released.append(dyno.process.id)
        self.dynos_now.append(dyno)
        return dyno

    def settle(self, dynos: list[Dyno]) -> None:
        self.settled.extend(d.process.id for d in dynos)

    def start(self, release: ReleaseSpec, process_type: str, index: int, size: str | None = None, *,
              held: bool = False) -> Dyno:
        name = f"{process_type}.{index}"
        if not held:
            self.started.append(f"{name}@v{release.version}")
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
        (self.held_now if held else self.dynos_now).append(dyno)
        return dyno

    def spec(self, release: ReleaseSpec, size: str | None, process_type: str) -> str:
        """How docker-local would set the container up: here, its size and image are what differ."""
        return f"{sizes.get(size).name} {release.image_of(process_type)}"

    def stop(self, dynos: list[Dyno], grace: float) -> None:
        for dyno in dynos:
            self.stopped.append(dyno.process.id)
            (self.held_now if dyno in self.held_now else self.dynos_now).remove(dyno)

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
                        lambda _containers, _settings, dynos: retired.extend(d.process.id for d in dynos) or dynos)
    settings = Settings(home=tmp_path / "home", http_port=8080, boot_timeout=0.3, startup_window=0)

    def converge(version: int, formation: dict[str, int], replace=frozenset(), checks=None, sizes=None,
                 held: bool | Callable[[swap.Held], None] = False):
        """``held``: start the new processes held first, as a release phase does (a callable is given
        the Held before the swap, to stand for what happens meanwhile)."""
        release = ReleaseSpec(app="shop", version=version, id=f"id-{version}", image=f"img:v{version}",
                              process_types={"web": "serve", "worker": "work"}, env={},
                              healthchecks=checks or {})
        deployment = Deployment(release=release, formation=formation, hosts=["shop.localhost"], replace=replace,
                                sizes=sizes or {})
        holding = swap.Held(containers, deployment) if held else None
        if callable(held):
            held(holding)
        return swap.converge(containers, router, settings, deployment, RecordingOutput(), holding)
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


def test_a_process_being_retired_whose_retirer_is_gone_is_handed_to_a_new_one_by_the_next_swap(world, tmp_path):
    containers, router, retired, converge = world
    converge(1, {"web": 1})
    for name, version in (("web.1", 1), ("web.2", 1)):  # v1's, marked -retiring: one's retirer was killed
        process = Process(id=f"{name}@gone-v{version}", app="shop", type="web", index=int(name[-1]),
                          release_version=version, release_id=f"id-{version}", command="", state="stopping",
                          created_at="2026-12-01T00:00:00Z")
        containers.dynos_now.append(Dyno(process, FakeContainer(name + "-retiring", "x"), None))
    (tmp_path / "home").mkdir()
    alive = retire.claim(tmp_path / "home", ["web.2@gone-v1"])  # (the other's retirer lives)
    try:
        converge(2, {"web": 1})
    finally:
        retire.release_claims(alive)
    assert retired == ["web.1@v1", "web.1@gone-v1"]


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


def test_processes_held_during_the_release_phase_are_released_not_started_again(world):
    containers, router, retired, converge = world
    converge(1, {"web": 1})
    report = converge(2, {"web": 1, "worker": 1}, held=lambda holding: holding.take())
    assert report.started == ["web.1", "worker.1"] and retired == ["web.1@v1"]
    assert containers.released == ["web.1@v2", "worker.1@v2"] == containers.settled
    assert containers.started == ["web.1@v1"], "held ones are not started a second time"
    assert containers.held_now == []
    new_web = next(d for d in containers.dynos_now if d.process.id == "web.1@v2")
    assert router.routes["shop"] == (["shop.localhost"], [new_web.address])


def test_a_held_container_that_no_longer_waits_is_started_as_any_other(world):
    containers, router, retired, converge = world
    containers.gates_gone.add("web.1")  # its gate exited (no /bin/sh, no writable /tmp) or it was removed
    report = converge(1, {"web": 1, "worker": 1}, held=True)
    assert report.started == ["web.1", "worker.1"]
    assert containers.released == ["worker.1@v1"] and containers.started == ["web.1@v1"]
    assert sorted(d.name for d in containers.dynos_now) == ["web.1", "worker.1"] and containers.held_now == []


def test_held_containers_the_swap_does_not_want_are_removed(world, tmp_path):
    containers, router, retired, converge = world
    converge(1, {"web": 1, "worker": 1})
    release = ReleaseSpec(app="shop", version=2, id="id-2", image="img:v2",
                          process_types={"web": "serve", "worker": "work"}, env={}, healthchecks={})
    holding = swap.Held(containers, Deployment(release=release, formation={"web": 2, "worker": 1},
                                               hosts=["shop.localhost"]))
    # (the swap wants one web, and its worker at another size than the one held)
    wanted = Deployment(release=release, formation={"web": 1, "worker": 1}, hosts=["shop.localhost"],
                        sizes={"worker": "standard-2x"})
    report = swap.converge(containers, router, Settings(home=tmp_path / "h", startup_window=0), wanted,
                           RecordingOutput(), holding)
    assert report.started == ["web.1", "worker.1"]
    assert containers.released == ["web.1@v2"], "a held container of another size is not the one wanted"
    assert "worker.1@v2" in containers.started and containers.held_now == []
    assert {"web.2@v2", "worker.1@v2"} <= set(containers.stopped)


def test_held_containers_left_by_a_release_phase_that_never_finished_are_removed(world):
    containers, router, retired, converge = world
    converge(1, {"web": 1})
    swap.Held(containers, Deployment(
        release=ReleaseSpec(app="shop", version=2, id="id-2", image="img:v2", process_types={"web": "serve"}, env={},
                            healthchecks={}), formation={"web": 1}, hosts=["shop.localhost"])).take()
    assert [d.process.id for d in containers.held_now] == ["web.1@v2"]  # (its gitpaas process died here)
    converge(1, {"web": 2})
    assert "web.1@v2" in containers.stopped and containers.held_now == []
    assert sorted(d.process.id for d in containers.dynos_now) == ["web.1@v1", "web.2@v1"]


def test_a_released_process_that_cannot_be_settled_fails_the_swap(world, monkeypatch):
    containers, router, retired, converge = world
    converge(1, {"web": 1})

    def settle(dynos):
        raise RuntimeError("the engine refused the restart policy")
    monkeypatch.setattr(containers, "settle", settle)
    with pytest.raises(RuntimeError, match="restart policy"):
        converge(2, {"web": 1}, held=True)
    assert "web.1@v2" in containers.stopped and [d.process.id for d in containers.dynos_now] == ["web.1@v1"]
    assert retired == [] and len(router.routes["shop"][1]) == 1


def test_a_failed_swap_removes_the_released_and_the_still_held(world):
    containers, router, retired, converge = world
    converge(1, {"web": 1})
    containers.deaf.add("web.1")
    with pytest.raises(BootFailed):
        converge(2, {"web": 1}, held=True)
    assert "web.1@v2" in containers.stopped and containers.held_now == []
    assert [d.process.id for d in containers.dynos_now] == ["web.1@v1"]


def test_a_discarded_hold_removes_what_it_started_and_starts_no_more(world, monkeypatch):
    containers, router, retired, converge = world
    real_start, entered, go = containers.start, threading.Event(), threading.Event()

    def start(release, process_type, index, size=None, *, held=False):
        entered.set()
        go.wait(5)  # (web.1's start is under way when the release command fails)
        return real_start(release, process_type, index, size, held=held)
    monkeypatch.setattr(containers, "start", start)
    deployment = Deployment(release=ReleaseSpec(app="shop", version=1, id="id-1", image="img:v1",
                                                process_types={"web": "serve"}, env={}, healthchecks={}),
                            formation={"web": 2}, hosts=["shop.localhost"])
    holding = swap.Held(containers, deployment)
    assert entered.wait(5)
    discarding = threading.Thread(target=holding.discard)
    discarding.start()
    deadline = time.monotonic() + 5
    while not holding._stop.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    go.set()
    discarding.join(5)
    assert containers.stopped == ["web.1@v1"], "the one under way is removed, web.2 never started"
    assert containers.held_now == [] and containers.dynos_now == []


def test_a_hold_that_fails_to_start_leaves_the_swap_to_start_them(world, monkeypatch):
    containers, router, retired, converge = world
    real_start = containers.start

    def start(release, process_type, index, size=None, *, held=False):
        if held:
            raise BootFailed(f"{process_type}.{index}", "could not start: no")
        return real_start(release, process_type, index, size)
    monkeypatch.setattr(containers, "start", start)
    report = converge(1, {"web": 1}, held=True)
    assert report.started == ["web.1"] and containers.started == ["web.1@v1"] and containers.released == []


def test_an_interrupted_release_of_held_ones_removes_the_one_being_released_and_the_rest(world, monkeypatch):
    containers, router, retired, converge = world
    converge(1, {"web": 1})

    def interrupted(dyno):
        raise KeyboardInterrupt  # (Ctrl-C while web.1's word was being written)
    monkeypatch.setattr(containers, "release_held", interrupted)
    with pytest.raises(KeyboardInterrupt):
        converge(2, {"web": 1, "worker": 1}, held=True)
    assert {"web.1@v2", "worker.1@v2"} <= set(containers.stopped) and containers.held_now == []
    assert [d.process.id for d in containers.dynos_now] == ["web.1@v1"]


def test_held_ones_a_swap_took_are_its_own_whether_it_succeeds_or_fails(world, tmp_path, monkeypatch):
    containers, router, retired, converge = world
    release = ReleaseSpec(app="shop", version=1, id="id-1", image="img:v1",
                          process_types={"web": "serve", "worker": "work"}, env={}, healthchecks={})
    deployment = Deployment(release=release, formation={"web": 1, "worker": 1}, hosts=["shop.localhost"])
    settings = Settings(home=tmp_path / "h", startup_window=0)

    holding = swap.Held(containers, deployment)
    swap.converge(containers, router, settings, deployment, RecordingOutput(), holding)
    holding.discard()  # (what the pipeline does should anything fail after the swap)
    assert containers.stopped == [] and sorted(d.name for d in containers.dynos_now) == ["web.1", "worker.1"]

    release2 = ReleaseSpec(**{**release.__dict__, "version": 2, "id": "id-2", "image": "img:v2"})
    deployment2 = Deployment(release=release2, formation={"web": 1, "worker": 1}, hosts=["shop.localhost"])
    holding = swap.Held(containers, deployment2)
    deadline = time.monotonic() + 10
    while len(holding.dynos) < 2 and time.monotonic() < deadline:  # (both held ones started)
        time.sleep(0.01)
    real = containers.dynos_and_held
    monkeypatch.setattr(containers, "dynos_and_held", lambda app: (_ for _ in ()).throw(RuntimeError("engine: 500")))
    with pytest.raises(RuntimeError, match="500"):  # (the listing fails before the swap took them)
        swap.converge(containers, router, settings, deployment2, RecordingOutput(), holding)
    holding.discard()  # (what the pipeline does: so they are removed)
    monkeypatch.setattr(containers, "dynos_and_held", real)
    assert sorted(containers.stopped) == ["web.1@v2", "worker.1@v2"] and containers.held_now == []
    assert sorted(d.process.id for d in containers.dynos_now) == ["web.1@v1", "worker.1@v1"]


def test_the_swap_lists_the_apps_processes_while_held_ones_are_still_starting(world, monkeypatch):
    """The listing (what to keep, what to retire) does not wait for the held starts, the longest
    step of a release; the held ones are released all the same, and the old one retired."""
    containers, router, retired, converge = world
    converge(1, {"web": 1})
    order: list[str] = []
    listed = threading.Event()
    real_list, real_start = containers.dynos_and_held, containers.start

    def listing(app):
        order.append("listed")
        listed.set()
        return real_list(app)

    def slow_start(*args, **kwargs):
        listed.wait(10)  # (the engine's start still under way when the swap lists)
        order.append("started")
        return real_start(*args, **kwargs)
    monkeypatch.setattr(containers, "dynos_and_held", listing)
    monkeypatch.setattr(containers, "start", slow_start)
    report = converge(2, {"web": 1}, held=True)
    assert order == ["listed", "started"]
    assert report.started == ["web.1"] and retired == ["web.1@v1"]
    assert "web.1@v2" in [d.process.id for d in containers.dynos_now] and containers.held_now == []


def test_a_hold_goes_on_past_a_process_that_cannot_be_held(world, monkeypatch):
    containers, router, retired, converge = world
    real_start = containers.start

    def start(release, process_type, index, size=None, *, held=False):
        if held and process_type == "web":
            raise BootFailed("web.1", "cannot be held")
        return real_start(release, process_type, index, size, held=held)
    monkeypatch.setattr(containers, "start", start)
    converge(1, {"web": 1, "worker": 1}, held=True)
    assert containers.released == ["worker.1@v1"] and containers.started == ["web.1@v1"]


def run_gate(tmp_path, stdin: str, shell: str = "sh", marker_dir=None) -> tuple[int, str, str]:
    """The real gate, run by a real shell, with its marker in ``marker_dir`` (tmp_path) instead of /tmp."""
    marker = (marker_dir or tmp_path) / ".gitpaas-released"
    gate = GATE.replace(HELD_MARKER, str(marker))
    done = subprocess.run([shell, "-c", gate, "gitpaas-held", "sh", "-c", "echo ran; read -r rest || echo no-stdin"],
                          input=stdin, capture_output=True, text=True, timeout=10)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("shell", [s for s in ("sh", "dash", "bash") if shutil.which(s)])
def test_the_gate_runs_the_command_only_after_the_word_go_and_once_released_at_once(tmp_path, shell):
    assert run_gate(tmp_path, "", shell) == (70, "", ""), "stdin ended without the word: nothing runs"
    assert run_gate(tmp_path, "stop\n", shell) == (70, "", ""), "another word: nothing runs"
    assert not (tmp_path / ".gitpaas-released").exists()

    (tmp_path / ".gitpaas-released.wait").unlink()
    gate = GATE.replace(HELD_MARKER, str(tmp_path / ".gitpaas-released"))
    waiting = subprocess.Popen([shell, "-c", gate, "gitpaas-held", "sh", "-c", "echo ran; read -r rest || echo no-stdin"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / ".gitpaas-released.wait").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (tmp_path / ".gitpaas-released.wait").exists(), "it says it waits, while it waits"
        time.sleep(0.1)
        assert waiting.poll() is None and not (tmp_path / ".gitpaas-released").exists()
        out, err = waiting.communicate("go\nmore input the app must not get\n", timeout=10)
    finally:
        waiting.kill()
    assert (waiting.returncode, out, err) == (0, "ran\nno-stdin\n", ""), "the command runs, with no stdin of its own"
    assert (tmp_path / ".gitpaas-released").exists(), "its release is recorded"
    assert run_gate(tmp_path, "", shell) == (0, "ran\nno-stdin\n", ""), \
        "restarted by the engine: released already, it runs at once"


def test_the_gate_exits_quietly_where_it_cannot_record_that_it_waits(tmp_path):
    assert run_gate(tmp_path, "go\n", marker_dir=tmp_path / "missing") == (70, "", "")


@pytest.mark.parametrize("config, command, expected", [
    ({"Cmd": ["python3", "app.py"]}, None, ["python3", "app.py"]),
    ({"Entrypoint": ["/entry.sh"], "Cmd": ["serve"]}, None, ["/entry.sh", "serve"]),
    ({"Entrypoint": ["/entry.sh"], "Cmd": ["serve"]}, ["/bin/sh", "-c", "exec web"], ["/entry.sh", "/bin/sh", "-c", "exec web"]),
    ({"Cmd": ["x"], "Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost:5000"]}}, None, None),
    ({"Cmd": ["x"], "Healthcheck": {"Test": ["NONE"]}}, None, ["x"]),
    ({}, None, None),
])
def test_what_a_held_container_runs_and_which_images_are_not_held(config, command, expected, tmp_path):
    class Images:
        def get(self, name):
            return type("Image", (), {"attrs": {"Config": config}})()
    client = type("Client", (), {"images": Images()})()
    assert Containers(client, Settings(home=tmp_path)).holdable("img", command) == expected


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


def test_socket_counters_are_read_from_the_process_network_namespace():
    counts = tcp_sockets_in_use(os.getpid())
    assert set(counts) == {"tcp", "tcp6"} and all(isinstance(n, int) and n >= 0 for n in counts.values())
    assert tcp_sockets_in_use(0) is None
    assert tcp_sockets_in_use(2 ** 22 + 17) is None, "no such process: cannot tell"


def test_listening_reads_a_socket_table_only_when_the_counters_say_it_may_have_changed(monkeypatch):
    counters: list[dict | None] = []
    tables_read: list[tuple] = []
    monkeypatch.setattr(health, "tcp_sockets_in_use", lambda pid: counters.pop(0))

    def read(pid, port, tables=("tcp", "tcp6")):
        tables_read.append(tables)
        return listening.pop(0)
    monkeypatch.setattr(health, "listening_in_container", read)
    clock = [100.0]
    monkeypatch.setattr(health.time, "monotonic", lambda: clock[0])
    watch = Listening(4242, 5000)

    counters[:] = [{"tcp": 0, "tcp6": 0}] * 3
    listening = []
    assert [watch(), watch(), watch()] == [False] * 3
    assert tables_read == [], "no socket at all: no table is read"

    counters[:] = [{"tcp": 1, "tcp6": 0}] * 3  # (an outgoing connection, say)
    listening = [False, False]
    assert [watch(), watch()] == [False, False]
    assert tables_read == [("tcp",)], "read once when the counters moved, and only the table holding a socket"
    clock[0] += health.TABLES_POLL + 0.001
    assert watch() is False
    assert tables_read == [("tcp",)] * 2, "read again when TABLES_POLL has passed"

    counters[:] = [{"tcp": 1, "tcp6": 1}]  # the listener (dual-stack)
    listening = [True]
    assert watch() is True
    assert tables_read[-1] == ("tcp", "tcp6")

    counters[:] = [None]  # (its /proc is gone, or unreadable): the tables say which
    listening = [None]
    assert watch() is None
    assert tables_read[-1] == ("tcp", "tcp6")


#: when the neighbours started: 2026-12-03T06:00:00.5Z
STARTED_NS = 1_796_277_600_500_000_000


class _Events:
    """The engine's event stream: ``die`` once ``dies`` is set (then it ends), until closed."""

    def __init__(self) -> None:
        self.dies, self.closed = threading.Event(), threading.Event()
        self.earlier: list[dict] = []  # replayed first: dies from before the neighbour's start

    def __iter__(self):
        yield from self.earlier
        while not self.closed.is_set():
            if self.dies.wait(0.01):
                yield {"status": "die", "timeNano": STARTED_NS + 5_000_000_000}
                return

    def close(self) -> None:
        self.closed.set()


class _RunEngine:
    """A Docker client for one-off runs. ``running`` are the summaries its container listing
    answers (with ``restarts`` by id); a container sharing another's network fails to start when
    ``neighbour_gone``; with ``neighbour_dies``, the shared process dies while the command runs."""

    def __init__(self, running: list[dict], restarts: dict[str, int] | None = None, neighbour_gone: bool = False,
                 neighbour_dies: str = "", status: int = 0, start_error: BaseException | None = None) -> None:
        self.made: list[dict] = []
        self.removed: list[dict] = []
        self.killed: list[dict] = []
        self.events_asked: list[dict] = []
        self.stream = _Events()
        engine = self

        class Made:
            def __init__(self, args: dict) -> None:
                self.args, self.attrs = args, {"State": {"OOMKilled": False}}
                self.ended, self.exited = threading.Event(), False

            def start(self) -> None:
                if neighbour_gone and "network_mode" in self.args:
                    import docker
                    raise docker.errors.APIError("cannot join network of a non running container")
                if start_error is not None:
                    raise start_error
                if neighbour_dies == "at start" and "network_mode" in self.args:
                    engine.stream.dies.set()
                elif neighbour_dies != "while it runs":
                    self.ended.set()

            def logs(self, stream: bool, follow: bool):
                yield b"migrating\n"
                if neighbour_dies == "while it runs":
                    engine.stream.dies.set()
                self.ended.wait(5)
                self.exited = True
                if neighbour_dies == "after it exits":
                    engine.stream.dies.set()
                    time.sleep(0.1)

            def wait(self) -> dict:
                return {"StatusCode": 137 if self.args in engine.killed else status}

            def reload(self) -> None:
                pass

            def kill(self) -> None:
                if self.exited:
                    import docker
                    raise docker.errors.APIError("409: container is not running")
                engine.killed.append(self.args)
                self.ended.set()

            def remove(self, force: bool) -> None:
                engine.removed.append(self.args)

        class Running:
            def __init__(self, summary: dict) -> None:
                self.id, self.name = summary["Id"], summary["Names"][0][1:]
                self.labels = summary.get("Labels") or {}
                self.attrs = {"State": {"Running": True, "Restarting": False,
                                        "StartedAt": "2026-12-03T06:00:00.500000000Z"},
                              "RestartCount": (restarts or {}).get(self.id, 0)}

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

            @staticmethod
            def get(container_id: str) -> Running:
                return Running(next(summary for summary in running if summary["Id"] == container_id))

        class images:
            @staticmethod
            def get(name: str):
                return type("Image", (), {"attrs": {"Config": {"User": ""}}})()

        self.api, self.containers, self.images = api, containers, images

    def events(self, **kwargs) -> _Events:
        self.events_asked.append(kwargs)
        return self.stream


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


def _summary(settings, dyno: str, suffix: str = "") -> dict:
    return {"Id": dyno + suffix + "-id", "Names": [f"/gp-shop.{dyno}{suffix}"], "Labels": {"gitpaas.dyno": dyno},
            "NetworkSettings": {"Networks": {settings.app_network("shop"): {}}}}


def test_a_release_command_shares_a_steady_web_processs_network_and_has_no_host_name_of_its_own(tmp_path):
    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path)})
    elsewhere = {"Id": "elsewhere", "Names": ["/other"], "Labels": {"gitpaas.dyno": "web.0"},
                 "NetworkSettings": {"Networks": {"bridge": {}}}}
    engine = _RunEngine([elsewhere, _summary(settings, "web.1", "-retiring"), _summary(settings, "clock.1"),
                         _summary(settings, "web.10"), _summary(settings, "web.3"),
                         _summary(settings, "web.1", "-crashed")], restarts={"web.1-crashed-id": 3})
    _settings, result, lines = _release_run(tmp_path, engine)
    assert result.exit_status == 0 and not result.lost_network and lines == ["migrating"]
    [made] = engine.made
    assert made["network_mode"] == "container:web.3-id", \
        "web first, the lowest index; not one off the app's network, being retired, or restarted by the engine"
    assert "network" not in made and "hostname" not in made
    assert made["labels"]["gitpaas.role"] == "release" and made["environment"]["DYNO"] == "release.1234"
    assert engine.removed == [made] and engine.stream.closed.is_set(), "removed, and the watch ended"
    assert engine.events_asked[0]["filters"] == {"container": "web.3-id", "event": "die"}


def test_a_release_command_gets_its_own_network_without_a_running_process_or_when_it_is_gone(tmp_path):
    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path)})
    alone = _RunEngine([])
    _release_run(tmp_path, alone)
    [made] = alone.made
    assert made["network"] == settings.app_network("shop") and "network_mode" not in made and not alone.events_asked

    gone = _RunEngine([_summary(settings, "web.1")], neighbour_gone=True)
    _settings, result, lines = _release_run(tmp_path, gone)
    shared, own = gone.made
    assert shared["network_mode"] == "container:web.1-id" and own["network"] == settings.app_network("shop")
    assert gone.removed == [shared, own] and result.exit_status == 0 and lines == ["migrating"]
    assert gone.stream.closed.is_set(), "no watch of a network it does not share"


@pytest.mark.parametrize("when", ["at start", "while it runs"])
def test_a_release_command_whose_shared_process_dies_is_killed_and_says_it_lost_its_network(tmp_path, when):
    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path)})
    engine = _RunEngine([_summary(settings, "web.1")], neighbour_dies=when)
    _settings, result, _lines = _release_run(tmp_path, engine)
    assert engine.killed == engine.made and result.lost_network == "web.1"
    assert result.exit_status == 137 and not result.stopped and not result.timed_out
    assert engine.removed == engine.made and engine.stream.closed.is_set()


@pytest.mark.parametrize("status", [0, 1])
def test_a_die_after_the_command_exited_or_from_before_the_neighbour_started_loses_nothing(tmp_path, status):
    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path)})
    exited = _RunEngine([_summary(settings, "web.1")], neighbour_dies="after it exits", status=status)
    _settings, result, _lines = _release_run(tmp_path, exited)
    assert result.exit_status == status and not result.lost_network, "it ended for its own reasons"

    stale = _RunEngine([_summary(settings, "web.1")], status=status)
    stale.stream.earlier = [{"status": "die", "timeNano": STARTED_NS - 1}, {"status": "start", "timeNano": STARTED_NS}]
    _settings, result, _lines = _release_run(tmp_path, stale)
    assert result.exit_status == status and not stale.killed and not result.lost_network


def test_a_container_that_fails_to_start_for_any_reason_is_removed_and_the_watch_ends(tmp_path):
    import requests
    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path)})
    engine = _RunEngine([_summary(settings, "web.1")], start_error=requests.ReadTimeout("the engine is slow"))
    with pytest.raises(EnvironmentProblem, match="the engine is slow"):
        _release_run(tmp_path, engine)
    assert engine.removed == engine.made and len(engine.made) == 1 and engine.stream.closed.is_set()


class _DestroyEngine:
    """An engine whose app has no container left and whose network the engine refuses to remove."""

    def __init__(self, refusal: str) -> None:
        import docker
        engine = self
        self.removed = 0

        class Network:
            name = "unset"

            def remove(self) -> None:
                engine.removed += 1
                raise docker.errors.APIError(refusal)

        class api:
            @staticmethod
            def containers(all: bool, filters: dict) -> list:
                return []

        class networks:
            @staticmethod
            def list(names: list[str]) -> list:
                network = Network()
                network.name = names[0]
                return [network]

        self.api, self.networks = api, networks


@pytest.mark.parametrize("refusal, destroyed", [
    ("error while removing network: network gitpaas-x-shop id 3e51 has active endpoints", True),
    ("error while removing network: permission denied", False)])
def test_destroy_leaves_a_network_the_engine_lost_count_of_and_fails_on_anything_else(tmp_path, monkeypatch, refusal,
                                                                                       destroyed):
    from gitpaas.scheduler.docker_local import DockerLocalScheduler, containers as module
    monkeypatch.setattr(module, "NETWORK_BUSY_SECONDS", 0.0)
    engine = _DestroyEngine(refusal)
    scheduler = DockerLocalScheduler(engine, Settings.from_env({"GITPAAS_HOME": str(tmp_path)}), FakeRouter(tmp_path))
    if destroyed:
        scheduler.destroy("shop")
    else:
        with pytest.raises(EnvironmentProblem, match="destroying an app: .*permission denied"):
            scheduler.destroy("shop")
    assert engine.removed >= 1


class _AddressEngine:
    """A Docker client for web starts: the app's network (its ``subnet`` and the endpoints of its
    running containers), the app's containers with the addresses they keep, and a ``run`` that
    refuses each address in ``refuse`` once with the engine's words for one taken (nothing lists
    who took it), or every address with ``chose_subnet`` (a network whose subnet the engine chose)."""

    def __init__(self, subnet: str | None, running: dict[str, str], kept: list[str], refuse: tuple[str, ...] = (),
                 chose_subnet: bool = False) -> None:
        import docker
        engine = self
        self.runs: list[dict] = []
        self.listed: list[dict] = []
        self.refuse = list(refuse)

        class Made:
            def __init__(self, args: dict) -> None:
                self.id = self.name = args["name"]
                self.status = "running"
                self.labels = args["labels"]
                config = args.get("networking_config") or {}
                self.attrs = {
                    "Created": "2026-12-04T00:00:00Z", "State": {"Running": True}, "Config": {"Labels": self.labels},
                    "HostConfig": {"PortBindings": {f"{port}": [{"HostIp": host, "HostPort": str(number)}]
                                                    for port, (host, number) in (args.get("ports") or {}).items()}},
                    "NetworkSettings": {"Networks": {
                        args["network"]: {"IPAMConfig": {"IPv4Address": config[args["network"]]["IPAMConfig"][
                            "IPv4Address"]} if config else None}}}}

            def reload(self) -> None:
                pass

        class api:
            @staticmethod
            def inspect_network(name: str) -> dict:
                ipam = {"Config": [{"Subnet": subnet, "Gateway": str(next(ipaddress.ip_network(subnet).hosts()))}]
                        if subnet else []}
                return {"Name": name, "IPAM": ipam,
                        "Containers": {key: {"IPv4Address": f"{address}/26"} for key, address in running.items()}}

            @staticmethod
            def containers(all: bool, filters: dict) -> list:
                engine.listed.append(filters)
                return [{"NetworkSettings": {"Networks": {"net": {"IPAMConfig": {"IPv4Address": address}}}}}
                        for address in kept]

            @staticmethod
            def create_endpoint_config(**kwargs):
                return docker.types.EndpointConfig("1.41", None, None, **kwargs)

        class containers:
            @staticmethod
            def run(**args):
                engine.runs.append(args)
                config = args.get("networking_config")
                wanted = config[args["network"]]["IPAMConfig"]["IPv4Address"] if config else None
                if wanted and chose_subnet:
                    raise docker.errors.APIError("400 Client Error: Bad Request (\"user specified IP address is "
                                                 "supported only when connecting to networks with user configured "
                                                 "subnets\")")
                if wanted in engine.refuse:
                    engine.refuse.remove(wanted)
                    raise docker.errors.APIError("403 Client Error: Forbidden (\"Address already in use\")")
                return Made(args)

            @staticmethod
            def list(all: bool, filters: dict) -> list:
                return []

        self.api, self.containers = api, containers


def _web_start(tmp_path, monkeypatch, engine: _AddressEngine, env: dict | None = None) -> Dyno:
    from gitpaas import labels
    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path), **(env or {})})
    containers = Containers(engine, settings)
    release = ReleaseSpec(app="shop", version=3, id="id-3", image="img:v3", process_types={"web": "serve"}, env={},
                          healthchecks={})
    monkeypatch.setattr(Containers, "run_args", lambda self, release, process_type, index, command, role, size=None: {
        "name": f"shop.{process_type}.{index}", "network": "gitpaas-x-shop", "environment": {},
        "labels": labels.for_app(settings, "shop", **{labels.RELEASE: 3, labels.PROCESS_TYPE: process_type,
                                                     labels.DYNO: f"{process_type}.{index}", labels.ROLE: "process"})})
    return containers.start(release, "web", 1)


def _asked(engine: _AddressEngine) -> list[str | None]:
    return [(run.get("networking_config") or {}).get("gitpaas-x-shop", {}).get("IPAMConfig", {}).get("IPv4Address")
            for run in engine.runs]


@pytest.mark.parametrize("running, kept, expected", [
    # the engine's own (an add-on .66, a worker .67) are in the lower half; a web process runs at
    # .100, and one that is stopped (a crash the engine will restart) keeps .101, holding nothing now
    ({"addon": "10.219.0.66", "worker": "10.219.0.67", "web": "10.219.0.100"}, ["10.219.0.100", "10.219.0.101"],
     "10.219.0.102"),
    ({}, [], "10.219.0.96"),  # the first: the start of the upper half
    ({"web": "10.219.0.126"}, ["10.219.0.126"], "10.219.0.96"),  # round the half after its last address
], ids=["after-the-highest-in-use", "first", "round-the-half"])
def test_a_web_process_keeps_the_next_address_of_the_upper_half_no_container_holds_or_keeps(tmp_path, monkeypatch,
                                                                                           running, kept, expected):
    from gitpaas import labels
    engine = _AddressEngine("10.219.0.64/26", running=running, kept=kept)
    dyno = _web_start(tmp_path, monkeypatch, engine)
    assert dyno.address == (expected, 5000), "the router reaches it there, with no port published"
    (run,) = engine.runs
    assert "ports" not in run and run["environment"]["PORT"] == "5000" and _asked(engine) == [expected]
    assert engine.listed == [labels.filters(labels.for_app(Settings.from_env({"GITPAAS_HOME": str(tmp_path)}),
                                                           "shop"))], "the app's containers, stopped ones too"


def test_a_web_start_refused_an_address_asks_for_another_even_when_nothing_lists_who_holds_it(tmp_path, monkeypatch):
    engine = _AddressEngine("10.219.0.64/26", running={}, kept=[], refuse=("10.219.0.96", "10.219.0.97"))
    dyno = _web_start(tmp_path, monkeypatch, engine)
    assert _asked(engine) == ["10.219.0.96", "10.219.0.97", "10.219.0.98"]
    assert dyno.address == ("10.219.0.98", 5000) and "ports" not in engine.runs[-1]


def test_a_web_start_refused_the_last_free_address_is_published_and_asks_for_no_address(tmp_path, monkeypatch):
    # a /29's upper half: .4 (.5, .6 run; .7 is the broadcast address)
    engine = _AddressEngine("10.219.0.0/29", running={"a": "10.219.0.5", "b": "10.219.0.6"}, kept=[],
                            refuse=("10.219.0.4",))
    dyno = _web_start(tmp_path, monkeypatch, engine)
    assert _asked(engine) == ["10.219.0.4", None]
    assert "networking_config" not in engine.runs[-1] and dyno.address == ("127.0.0.1",
                                                                            engine.runs[-1]["ports"]["5000/tcp"][1])


@pytest.mark.parametrize("subnet, running, env, chose_subnet, asked", [
    # a network whose subnet the engine chose (made by hand, or by a gitpaas before app networks
    # had their own): its inspection shows a subnet all the same, but the engine refuses the address
    ("172.18.0.0/16", {}, {}, True, ["172.18.128.0", None]),
    ("10.219.0.64/30", {"web": "10.219.0.66"}, {}, False, [None]),  # no address left (.65 is the gateway)
    (None, {}, {}, False, [None]),  # no IPv4 subnet at all
    ("10.219.0.64/26", {}, {"GITPAAS_PUBLISH_PORTS": "1"}, False, [None]),  # asked for
], ids=["subnet-the-engine-chose", "full", "no-ipv4-subnet", "GITPAAS_PUBLISH_PORTS"])
def test_a_web_process_without_an_address_to_keep_is_published_on_a_loopback_port(tmp_path, monkeypatch, subnet,
                                                                                  running, env, chose_subnet, asked):
    engine = _AddressEngine(subnet, running=running, kept=[], chose_subnet=chose_subnet)
    dyno = _web_start(tmp_path, monkeypatch, engine, env)
    assert _asked(engine) == asked
    host, port = engine.runs[-1]["ports"]["5000/tcp"]
    assert dyno.address == ("127.0.0.1", port) and host == "127.0.0.1"


def test_a_process_seen_listening_that_this_host_cannot_reach_is_named_with_why(monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # (bound, not listening: refused)
        assert "listens only on 127.0.0.1 or localhost there (bind 0.0.0.0)" in health.unreachable(("127.0.0.1", port))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert health.unreachable(listener.getsockname()) is None

    def out_of_reach(address, timeout):
        raise OSError(113, "No route to host")  # (what a host without a route to the engine's addresses says)
    monkeypatch.setattr(health.socket, "create_connection", out_of_reach)
    said = health.unreachable(("10.219.0.96", 5000))
    assert "cannot reach it at 10.219.0.96 (No route to host)" in said and "GITPAAS_PUBLISH_PORTS=1" in said


def test_an_app_network_that_exists_is_used_without_waiting_for_the_lock_that_makes_one(tmp_path):
    """A release's command and its processes held meanwhile ask for the app's network at once, in
    two threads; the lock that serializes making it (``FileLock``, which waits by polling every
    50 ms) is taken only when it is to be made, so one never waits for the other."""
    from filelock import FileLock

    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path)})
    name = settings.app_network("shop")

    class Network:
        pass

    class Engine:
        class networks:
            @staticmethod
            def list(names: list[str]) -> list:
                network = Network()
                network.name = name
                return [network] if names == [name] else []

    containers = Containers(Engine(), settings)
    got: list[str] = []
    (tmp_path / "locks").mkdir()
    with FileLock(str(tmp_path / "locks" / "network.lock")):  # (another thread, or process, making one)
        asking = threading.Thread(target=lambda: got.append(containers.network("shop")), daemon=True)
        asking.start()
        asking.join(timeout=5)
        assert got == [name], "answered while the lock was held elsewhere"
