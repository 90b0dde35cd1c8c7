"""The retirer's bookkeeping and how it starts, without an engine: who retires what is a locked
file per container in the home, and the retirer is a fork of a one-thread process (else a new
interpreter) that holds nothing of its parent's but its claims. The integration tests retire real
containers with it (test_zero_downtime, test_release_lifecycle, test_reboot)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gitpaas.scheduler.docker_local import retire

A, B = "a" * 64, "b" * 64


def test_a_claim_is_a_locked_file_per_container_and_a_live_claim_is_not_claimed_twice(tmp_path):
    claimed = retire.claim(tmp_path, [A, B])
    try:
        assert sorted(claimed) == [A, B]
        assert sorted(p.name for p in (tmp_path / retire.FOLDER).iterdir()) == [A, B]
        assert retire.claim(tmp_path, [A]) == {}  # (held: a live retirer's)
        assert retire.retirers_alive(tmp_path) == {A, B}
    finally:
        retire.release_claims(claimed)


def test_a_claim_nobody_holds_is_a_retirement_cut_short_its_file_goes_and_it_can_be_claimed_again(tmp_path):
    retire.release_claims(retire.claim(tmp_path, [A]))  # (as a retirer killed with SIGKILL leaves it)
    assert (tmp_path / retire.FOLDER / A).exists()
    assert retire.retirers_alive(tmp_path) == set()
    assert not (tmp_path / retire.FOLDER / A).exists()
    again = retire.claim(tmp_path, [A])
    assert list(again) == [A]
    retire.release_claims(again)


def test_no_claims_folder_means_nobody_retires(tmp_path):
    assert retire.retirers_alive(tmp_path) == set()


def test_a_claim_held_by_another_process_is_seen_from_this_one(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from gitpaas.scheduler.docker_local import retire; "
        f"retire.claim(Path({str(tmp_path)!r}), [{A!r}]); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert retire.retirers_alive(tmp_path) == {A}
        assert retire.claim(tmp_path, [A]) == {}
    finally:
        holder.kill()
        holder.wait()
    assert retire.retirers_alive(tmp_path) == set()  # (its lock went with it)


def _report_main(argv, ready):
    """Stands in for the retirer's main in the fork: says what the process holds, then holds its claim a while."""
    ready()
    out = Path(argv[argv.index("--home") + 1]) / "report.json"
    fds = {int(n): os.readlink(f"/proc/self/fd/{n}") for n in os.listdir("/proc/self/fd")
           if os.path.exists(f"/proc/self/fd/{n}")}
    out.with_suffix(".tmp").write_text(json.dumps({
        "sid": os.getsid(0), "pid": os.getpid(), "ppid": os.getppid(), "comm": Path("/proc/self/comm").read_text().strip(),
        "fds": fds, "argv": argv}))
    out.with_suffix(".tmp").rename(out)
    time.sleep(1.5)
    return 0


def test_the_fork_is_in_a_session_of_its_own_and_holds_only_its_claims_and_dev_null(tmp_path, monkeypatch):
    monkeypatch.setattr(retire, "main", _report_main)
    monkeypatch.setattr(retire.threading, "active_count", lambda: 1)  # (threads other tests left behind)
    monkeypatch.setattr(retire.subprocess, "Popen", lambda *a, **kw: pytest.fail("not forked"))
    parents_lock = os.open(tmp_path / "app.lock", os.O_RDWR | os.O_CREAT)  # (as a deploy holds its app's lock)
    fcntl.flock(parents_lock, fcntl.LOCK_EX)
    read, write = os.pipe()  # (as a push's output is)
    claimed = retire.claim(tmp_path, [A])
    try:
        retire.spawn(tmp_path, 30.0, 1.0, claimed)
    finally:
        retire.release_claims(claimed)
    os.close(write)
    os.close(parents_lock)  # (not unlocked: a copy of the descriptor anywhere would still hold it)
    deadline = time.monotonic() + 10
    while not (tmp_path / "report.json").exists():
        assert time.monotonic() < deadline, "the forked retirer did not report"
        time.sleep(0.01)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["sid"] != os.getsid(0) and report["ppid"] != os.getpid()
    with pytest.raises(ChildProcessError):  # a grandchild: not this process's to reap (the middle one was)
        os.waitpid(report["pid"], os.WNOHANG)
    assert report["comm"] == "gitpaas-retire"
    assert report["argv"] == ["--home", str(tmp_path), "--grace", "30.0", "--drain", "1.0", A]
    held = {target for target in report["fds"].values() if target != os.devnull}
    assert held == {str(tmp_path / retire.FOLDER / A)}, report["fds"]
    # the push's output ends although the retirer runs; the app's lock is free; the claim is its
    os.set_blocking(read, False)
    assert os.read(read, 1) == b""
    other = os.open(tmp_path / "app.lock", os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(other)
    assert retire.retirers_alive(tmp_path) == {A}


def test_with_other_threads_running_the_retirer_is_a_new_interpreter_that_inherits_the_claims(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(retire.subprocess, "Popen", lambda argv, **kw: started.append((argv, kw)))
    monkeypatch.setattr(retire, "_fork", lambda *a, **kw: pytest.fail("forked beside another thread"))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    claimed = retire.claim(tmp_path, [A])
    try:
        retire.spawn(tmp_path, 30.0, 1.0, claimed)
    finally:
        retire.release_claims(claimed)
        stop.set()
        other.join()
    [(argv, kw)] = started
    assert argv[:3] == [sys.executable, "-c", retire.ENTRY] and argv[-1] == A
    assert kw["pass_fds"] == tuple(claimed.values()) and kw["start_new_session"]


def test_a_fork_that_fails_before_it_is_ready_fails_the_spawn_and_claims_nothing_for_long(tmp_path, monkeypatch):
    def broken(argv, ready):
        raise RuntimeError("no engine client")
    monkeypatch.setattr(retire, "main", broken)
    monkeypatch.setattr(retire.threading, "active_count", lambda: 1)
    claimed = retire.claim(tmp_path, [A])
    try:
        with pytest.raises(OSError, match="the retirer did not start"):
            retire.spawn(tmp_path, 30.0, 1.0, claimed)
    finally:
        retire.release_claims(claimed)
    assert retire.retirers_alive(tmp_path) == set()


class _Gone:
    """An engine on which no container exists."""
    class containers:
        @staticmethod
        def get(container_id):
            from docker.errors import NotFound
            raise NotFound(f"No such container: {container_id}")


def test_the_retirer_logs_each_outcome_and_removes_its_claims(tmp_path, monkeypatch):
    monkeypatch.setattr(retire, "negotiated_client", lambda **kw: _Gone())
    (tmp_path / "logs").mkdir()
    retire.release_claims(retire.claim(tmp_path, [A, B]))
    told = []
    assert retire.main(["--home", str(tmp_path), "--drain", "0", A, B], lambda: told.append("ready")) == 0
    assert told == ["ready"]
    lines = (tmp_path / "logs" / "retire.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [f"{A[:12]}: already gone", f"{B[:12]}: already gone"]
    assert os.listdir(tmp_path / retire.FOLDER) == []


def test_a_retirer_whose_home_was_removed_does_not_make_it_again(tmp_path, monkeypatch):
    monkeypatch.setattr(retire, "negotiated_client", lambda **kw: _Gone())
    home = tmp_path / "home"
    assert retire.main(["--home", str(home), "--drain", "0", A]) == 0
    assert not home.exists()


def test_the_new_interpreters_entry_runs_the_retirer(tmp_path):
    done = subprocess.run([sys.executable, "-c", retire.ENTRY, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: gitpaas-retire") and not done.stderr
