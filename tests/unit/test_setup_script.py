"""scripts/setup.sh at least parses, and the scripts pass shellcheck where shellcheck is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "setup.sh"


def test_setup_script_parses():
    result = subprocess.run(["bash", "-n", str(SETUP)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_setup_script_passes_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    scripts = sorted(str(path) for path in (REPO / "scripts").glob("*.sh"))  # -x: they source pidfile.sh
    result = subprocess.run(["shellcheck", "-x", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_systemd_unit_runs_the_api_server():
    from configparser import ConfigParser

    unit = ConfigParser(strict=False, interpolation=None)
    unit.read(REPO / "packaging" / "gitpaas.service")
    exec_start = unit["Service"]["ExecStart"].split()
    assert exec_start[0] == "@GITPAAS@" and exec_start[1] == "server" and "--publish" in exec_start
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert unit["Service"]["Restart"] == "on-failure", "a crashed API server comes back (and settles its release)"
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "for name in gitpaas-boot gitpaas; do" in setup and "packaging/$name.service" in setup
    assert "/run/systemd/system" in setup


def test_the_boot_unit_runs_gitpaas_boot_once_after_the_engine():
    from configparser import ConfigParser

    unit = ConfigParser(strict=False, interpolation=None)
    unit.read(REPO / "packaging" / "gitpaas-boot.service")
    assert unit["Service"]["ExecStart"].split() == ["@GITPAAS@", "boot"]
    assert unit["Service"]["Type"] == "oneshot"
    assert "docker.service" in unit["Unit"]["After"] and "gitpaas.service" in unit["Unit"]["Before"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_sourcing_the_script_runs_no_step_whatever_its_dollar_zero():
    """Sourced with $0 the script's own path (as `bash -c 'source "$0"' setup.sh` gives), it still
    only defines its steps: nothing is installed, started or built."""
    result = subprocess.run(["bash", "-c", 'source "$0" && echo sourced', str(SETUP)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sourced\n"


def test_a_pidfile_left_by_a_killed_engine_is_removed_before_dockerd_starts(tmp_path):
    """The CI failure of stop 34: dockerd found /var/run/docker/containerd/containerd.pid naming a pid
    that had come round to another process, took it for its containerd and timed out waiting on it.
    Only a pidfile whose process is alive, runs the command named and, where one is named, has that
    argument, is kept."""
    sleeper = subprocess.Popen(["sleep", "60"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        files = {
            "reused": str(sleeper.pid),  # alive, but a sleep, not a containerd
            "kept": str(sleeper.pid),  # alive and the command named
            "kept_with_argument": str(sleeper.pid),  # ... with the argument named
            "another_instance": str(sleeper.pid),  # the command named, but not with that argument
            "dead": str(dead.pid),
            "garbage": "12ab",
        }
        for name, text in files.items():
            (tmp_path / name).write_text(text)  # no newline, as dockerd writes them
        args = [
            f"{tmp_path / 'reused'}:containerd",
            f"{tmp_path / 'kept'}:sleep",
            f"{tmp_path / 'kept_with_argument'}:sleep:60",
            f"{tmp_path / 'another_instance'}:sleep:61",
            f"{tmp_path / 'dead'}:dockerd",
            f"{tmp_path / 'garbage'}:dockerd",
            f"{tmp_path / 'absent'}:dockerd",
        ]
        result = subprocess.run(
            ["bash", "-c", 'source "$1" && shift && clear_stale_pidfiles "$@"', "bash", str(SETUP), *args],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "kept_with_argument"]
    assert f"removing {tmp_path / 'reused'} (a containerd that is no longer running left it)" in result.stdout
    assert "absent" not in result.stdout and "==>" not in result.stdout.replace("==> removing", "")
