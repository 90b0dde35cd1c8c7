"""The README's first command deploys the bundled example with git push, and works again, from any checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_demo(home, base):
    """scripts/demo.sh with its work repo (a checkout's .demo/example) under ``base``."""
    return subprocess.run(["bash", str(REPO / "scripts/demo.sh")], capture_output=True, text=True, timeout=600,
                          env={**home.env, "GITPAAS_DEMO_WORKDIR": str(base / "demo")})


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


def test_demo_from_another_checkout_deploys_on_top_of_the_last_release(home, tmp_path):
    """Each checkout keeps its own work repo with its own history; every run commits on top of the
    app's main, so the push fast-forwards whichever checkout deployed last."""
    for version, checkout in ((1, "first"), (2, "second"), (3, "first")):
        result = run_demo(home, tmp_path / checkout)
        assert result.returncode == 0, f"v{version} from the {checkout} checkout:\n{result.stdout}{result.stderr}"
        assert f"v{version} (current)" in result.stdout
    assert home.get("example").json()["message"] == "Hello from gitpaas!"
    history = subprocess.run(["git", "--git-dir", str(home.path / "apps/example/repo.git"), "rev-list", "main"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert len(history) == 3
