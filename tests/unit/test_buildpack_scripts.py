"""The bundled buildpacks' bin/detect and bin/release, run with bash on this machine (no Docker),
and what the builder writes into the build container besides the app."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from gitpaas.build.buildpack import ENV_DIR, staged_path, write_staging_tar
from gitpaas.build.buildpack_list import BUNDLED, BUNDLED_DIR, Buildpack, bundled
from gitpaas.build.buildpack_protocol import parse_release


def detect(name: str, app: Path) -> tuple[int, str]:
    result = subprocess.run([str(BUNDLED_DIR / name / "bin" / "detect"), str(app)], check=False, capture_output=True,
                            text=True)
    return result.returncode, result.stdout.strip()


def release(name: str, app: Path) -> dict[str, str]:
    result = subprocess.run([str(BUNDLED_DIR / name / "bin" / "release"), str(app)], capture_output=True, text=True,
                            check=True)
    return parse_release(result.stdout, name)


@pytest.mark.parametrize("files, first_match", [
    (["requirements.txt", "Procfile"], ("python", "Python")),
    (["pyproject.toml"], ("python", "Python")),
    (["Pipfile", "Pipfile.lock"], ("python", "Python")),
    (["poetry.lock", "pyproject.toml", "package.json"], ("python", "Python")),
    (["uv.lock"], ("python", "Python")),
    (["requirements.txt", "manage.py"], ("python", "Python (Django)")),
    (["package.json", "index.html"], ("nodejs", "Node.js")),
    (["index.html"], ("static", "Static site")),
    (["public/app.css"], ("static", "Static site")),
    (["Procfile", "bin/web"], ("procfile", "Procfile")),
    (["README.md"], None),
])
def test_detection_order_picks_the_first_match(tmp_path, files, first_match):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    matches = [(name, output) for name in BUNDLED for status, output in [detect(name, tmp_path)] if status == 0]
    assert (matches[0] if matches else None) == first_match


def test_default_process_types(tmp_path):
    assert release("python", tmp_path) == {}
    assert release("procfile", tmp_path) == {}
    assert release("nodejs", tmp_path) == {"web": "npm start"}
    assert release("static", tmp_path) == {"web": "python3 -m http.server $PORT --directory /app"}
    (tmp_path / "public").mkdir()
    assert release("static", tmp_path) == {"web": "python3 -m http.server $PORT --directory /app/public"}


def test_staging_holds_the_buildpacks_without_git_and_env_dir_byte_for_byte(tmp_path):
    custom = tmp_path / "custom"
    (custom / "bin").mkdir(parents=True)
    (custom / "bin" / "compile").write_text("#!/bin/sh\n")
    (custom / ".git").mkdir()
    (custom / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    buildpacks = [bundled("python"), Buildpack("/srv/custom", custom)]
    buffer = io.BytesIO()
    write_staging_tar(buffer, buildpacks, {"GREETING": "héllo =\n 'quoted' ", "EMPTY": ""})
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        members = {member.name: member for member in tar.getmembers()}
        assert tar.extractfile(members["gitpaas/env/GREETING"]).read() == "héllo =\n 'quoted' ".encode()
        assert tar.extractfile(members["gitpaas/env/EMPTY"]).read() == b""
    assert members["gitpaas/env"].mode == 0o700 and members["gitpaas/env/GREETING"].mode == 0o600
    assert staged_path(0, buildpacks[0]) == "/gitpaas/buildpacks/1-python"
    assert "gitpaas/buildpacks/1-python/bin/compile" in members
    assert members["gitpaas/buildpacks/1-python/bin/compile"].mode & 0o111
    assert "gitpaas/buildpacks/2-custom/bin/compile" in members
    assert not [name for name in members if "/.git" in name]
    assert ENV_DIR == "/gitpaas/env"


# --- WEB_CONCURRENCY, set at run time from the dyno's limits (as Heroku's Python buildpack does) --------

WEB_CONCURRENCY_SH = BUNDLED_DIR / "python" / "profile" / "WEB_CONCURRENCY.sh"


def concurrency(tmp_path: Path, files: dict[str, str], cpus: int = 2, **env: str) -> tuple[str, str]:
    """WEB_CONCURRENCY and DYNO_RAM after sourcing the script with ``files`` as the cgroup folder."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    script = f'. {WEB_CONCURRENCY_SH}; echo "${{WEB_CONCURRENCY:-unset}} ${{DYNO_RAM:-unset}}"'
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin", "GITPAAS_CGROUP": str(tmp_path),
                                 "GITPAAS_NPROC": f"echo {cpus}", **env})
    concurrency, ram = result.stdout.split()
    return concurrency, ram


@pytest.mark.parametrize("memory, cpus, expected", [
    (512, 2, "2"),     # standard-1X: capped by memory
    (1024, 2, "4"),    # standard-2X
    (2560, 2, "5"),    # by the CPUs: 2 × 2 + 1
    (128, 8, "1"),     # never zero
])
def test_web_concurrency_is_the_lower_of_memory_and_cpus(tmp_path, memory, cpus, expected):
    assert concurrency(tmp_path, {"memory.max": f"{memory * 1048576}\n"}, cpus) == (expected, str(memory))


def test_web_concurrency_reads_cgroup_v1_and_the_cpu_quota(tmp_path):
    assert concurrency(tmp_path, {"memory/memory.limit_in_bytes": f"{4096 * 1048576}\n",
                                  "cpu.max": "150000 100000\n"}, cpus=16) == ("5", "4096")  # 2 CPUs' worth


def test_web_concurrency_is_left_alone_when_set_or_when_nothing_limits_memory(tmp_path):
    assert concurrency(tmp_path, {"memory.max": f"{512 * 1048576}\n"}, WEB_CONCURRENCY="9") == ("9", "512")
    assert concurrency(tmp_path / "none", {"memory.max": "max\n"}) == ("unset", "unset")
