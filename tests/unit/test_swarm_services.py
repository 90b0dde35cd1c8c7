"""The swarm scheduler's pieces that run inside a task's container, run here with the real shell
and grep: the drain wrapper of web commands and the health check's listening test; and the
parsing of what Swarm reports."""

from __future__ import annotations

import re
import signal
import subprocess
import time

from gitpaas.scheduler.swarm.services import DRAIN, LISTENING, _http_check, _split_details, unix_time


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
