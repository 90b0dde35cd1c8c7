"""The README's first command deploys the bundled example with git push, and works twice."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_demo(home, tmp_path):
    return subprocess.run(["bash", str(REPO / "scripts/demo.sh")], capture_output=True, text=True, timeout=600,
                          env={**home.env, "GITPAAS_DEMO_WORKDIR": str(tmp_path / "demo")})


def test_demo_deploys_the_example_and_can_run_again(home, tmp_path):
    first = run_demo(home, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    url = f"http://example.localhost:{home.port}/"
    assert f"Open {url}" in first.stdout
    assert '"message": "Hello from gitpaas!"' in first.stdout
    assert home.get("example").json()["message"] == "Hello from gitpaas!"

    second = run_demo(home, tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "v2 (current)" in second.stdout and "v1" in second.stdout
    assert home.get("example").json()["dyno"] == "web.1"
