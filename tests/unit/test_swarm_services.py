"""The swarm scheduler's pieces that run inside a task's container, run here with the real shell
and grep: the drain wrapper of web commands and the health check's listening test; and the
parsing of what Swarm reports."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

from gitpaas.scheduler.swarm.services import (
    DRAIN,
    LISTENING,
    Plan,
    Services,
    _http_check,
    _split_details,
    unix_time,
)
from gitpaas.settings import Settings


def test_the_drain_wrapper_holds_sigterm_back_for_the_drain_then_passes_it_on(tmp_path):
    marker = tmp_path / "got-term"
    app = (f"trap 'date +%s.%N > {marker}; exit 0' TERM; echo ready; "
           "while :; do sleep 0.05; done")
    wrapper = subprocess.Popen(["/bin/sh", "-c", DRAIN, "gitpaas-drain", "/bin/sh", "-c", app],
                               stdout=subprocess.PIPE, text=True, env={"GITPAAS_DRAIN": "0.6", "PATH": "/usr/bin:/bin"},
                               start_new_session=True)
    assert wrapper.stdout.readline().strip() == "ready"
    sent = time.time()
    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(timeout=10) == 0  # the app's own exit status
    assert marker.exists(), "the app never got its SIGTERM"
    assert float(marker.read_text()) - sent >= 0.5  # …and only after the drain


def test_the_wrapper_passes_the_apps_exit_status_through():
    done = subprocess.run(["/bin/sh", "-c", DRAIN, "gitpaas-drain", "/bin/sh", "-c", "exit 7"], timeout=10)
    assert done.returncode == 7


def test_the_listening_check_reads_proc_net_tcp(tmp_path):
    tcp = tmp_path / "tcp"
    tcp6 = tmp_path / "tcp6"
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    listening = "   0: 00000000:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534 0 1 1\n"
    connected = "   1: 0100007F:1388 0100007F:9C40 01 00000000:00000000 00:00000000 00000000 65534 0 2 1\n"
    tcp6.write_text(header)
    check = LISTENING.replace("/proc/net/tcp6", str(tcp6)).replace("/proc/net/tcp ", f"{tcp} ")

    tcp.write_text(header + connected)  # a connection on port 5000 is not a listener
    assert subprocess.run(["/bin/sh", "-c", check]).returncode != 0
    tcp.write_text(header + connected + listening)
    assert subprocess.run(["/bin/sh", "-c", check]).returncode == 0
    other_port = listening.replace(":1388", ":1389")
    tcp.write_text(header + other_port)
    assert subprocess.run(["/bin/sh", "-c", check]).returncode != 0


def test_swarm_times_and_log_details_are_read():
    assert unix_time("1970-01-01T00:00:10.5Z") == 10.5
    assert unix_time("1970-01-01T00:01:00Z") == 60.0
    assert unix_time("garbage") == 0.0
    details, text = _split_details("com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s,"
                                   "com.docker.swarm.task.id=t9 listening on 5000")
    assert details["com.docker.swarm.task.id"] == "t9" and text == "listening on 5000"
    assert _split_details("plain line") == ({}, "plain line")
    assert re.search(r":1388 ", LISTENING)  # 5000 in /proc's hex


def test_an_app_json_check_runs_in_bash_against_port(tmp_path):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hosts.append(self.headers["Host"])
            status, body = (200, b"all good") if self.path == "/health" else (503, b"not yet 200")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    hosts: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"PORT": str(server.server_address[1]), "PATH": "/usr/bin:/bin"}

    def check(**fields) -> int:
        command = _http_check({"path": "/health", "timeout": 3, **fields}, "shop.example.com")
        return subprocess.run(["/bin/sh", "-c", command], env=env, timeout=10).returncode

    try:
        assert check() == 0
        assert check(content="all good") == 0
        assert check(content="nope") != 0
        assert check(path="/other") != 0  # a 503, though its body says 200
        assert check(path="/x'; touch /tmp/pwned; '") != 0  # a value is an argument, never code
        assert hosts[0] == "shop.example.com"
    finally:
        server.shutdown()


# --- reading Swarm's progress (canned answers of the engine's API) ------------------------------

class FakeApi:
    def __init__(self, service: dict, tasks: list[dict]) -> None:
        self.service, self._tasks = service, tasks

    def inspect_service(self, service_id):
        return self.service

    def tasks(self, filters=None):
        return self._tasks

    def nodes(self):
        return [{"ID": "n1", "Description": {"Hostname": "gpsw-n1"}, "Status": {"State": "ready", "Addr": "10.77.0.11"}}]

    def service_logs(self, *args, **kwargs):
        return iter([b"com.docker.swarm.task.id=t2 boom\n"])


def services_on(service: dict, tasks: list[dict]) -> Services:
    client = SimpleNamespace(api=FakeApi(service, tasks))
    return Services(client, None, Settings(home=Path("/tmp/gitpaas-unit-home")))


def task(task_id: str, state: str, *, release: int = 2, desired: str = "running", created: str = "1970-01-01T00:01:40Z",
         err: str = "", exit_code: int | None = None, slot: int = 1) -> dict:
    return {"ID": task_id, "Slot": slot, "NodeID": "n1", "DesiredState": desired, "CreatedAt": created,
            "Spec": {"ContainerSpec": {"Labels": {"gitpaas.release": str(release)}}, "ForceUpdate": 0},
            "Status": {"State": state, "Err": err, "ContainerStatus": {"ExitCode": exit_code}}}


def plan(**fields) -> Plan:
    values = dict(service_id="s", process_type="web", quantity=1, before=1, version=2, force=0, rolled=True,
                  created=False, started=100.0)
    values.update(fields)
    return Plan(**values)


def test_a_service_scaled_to_zero_is_done_once_nothing_is_wanted():
    stale = {"UpdateStatus": {"State": "completed", "StartedAt": "1970-01-01T00:00:10Z"}}
    assert services_on(stale, [task("t1", "shutdown", desired="shutdown")]).progress(plan(quantity=0)).done
    assert not services_on(stale, [task("t1", "running")]).progress(plan(quantity=0)).done


def test_an_earlier_updates_rollback_is_not_this_deploys_failure():
    earlier = {"UpdateStatus": {"State": "rollback_completed", "StartedAt": "1970-01-01T00:00:10Z"}}
    progress = services_on(earlier, [task("t1", "running", release=1)]).progress(plan())
    assert not progress.failed and not progress.done


def test_swarms_rollback_fails_the_deploy_with_the_tasks_reason_and_output():
    rolling_back = {"UpdateStatus": {"State": "rollback_started", "StartedAt": "1970-01-01T00:01:50Z"}}
    tasks = [task("t1", "running", release=1), task("t2", "failed", exit_code=3, created="1970-01-01T00:01:55Z")]
    progress = services_on(rolling_back, tasks).progress(plan())
    assert progress.failed == "failed on the swarm, which rolled its service back: exited with status 3 (on gpsw-n1)"
    assert progress.process == "web.1" and progress.log_tail == "boom"


def test_a_task_no_node_can_take_fails_at_once():
    tasks = [task("t1", "pending", err="no suitable node (insufficient resources on 3 nodes)")]
    progress = services_on({}, tasks).progress(plan(rolled=False, created=True, before=0))
    assert progress.failed == "has no node to run on: no suitable node (insufficient resources on 3 nodes)"


def test_a_new_service_whose_task_fails_fails_and_an_older_crash_does_not():
    old_crash = task("t0", "failed", desired="shutdown", exit_code=1, created="1970-01-01T00:00:50Z")
    converged = services_on({}, [old_crash, task("t1", "running")]).progress(plan(rolled=False, before=0))
    assert converged.done and not converged.failed
    fresh_crash = task("t2", "failed", desired="shutdown", exit_code=1, created="1970-01-01T00:01:45Z")
    failed = services_on({}, [fresh_crash, task("t3", "starting")]).progress(plan(rolled=False, before=0))
    assert failed.failed == "could not start on the swarm: exited with status 1 (on gpsw-n1)"
