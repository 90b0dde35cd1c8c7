"""scripts/setup.sh at least parses, and passes shellcheck where shellcheck is installed."""

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
    result = subprocess.run(["shellcheck", str(SETUP)], capture_output=True, text=True)
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
