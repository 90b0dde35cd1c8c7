"""Which buildpacks build an app, and getting each onto the server as a folder (git runs for real)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gitpaas.build.buildpack_list import (
    BUNDLED,
    BUNDLED_DIR,
    Buildpack,
    chosen_entries,
    kind_of,
    resolve,
)
from gitpaas.errors import BuildFailed

TEST_BUILDPACKS = Path(__file__).resolve().parents[1] / "buildpacks"
GIT = ["git", "-c", "user.name=tests", "-c", "user.email=tests@gitpaas.invalid"]


def test_buildpack_url_wins_then_the_file_then_detection():
    assert chosen_entries("nodejs\npython\n", {"BUILDPACK_URL": " static "}) == (["static"], "BUILDPACK_URL")
    assert chosen_entries("nodejs\npython\n", {}) == (["nodejs", "python"], ".buildpacks")
    assert chosen_entries("# nothing\n", {"BUILDPACK_URL": ""}) == ([], None)
    assert chosen_entries(None, {}) == ([], None)


@pytest.mark.parametrize("entry, kind", [
    ("python", "bundled"), ("heroku/nodejs", "bundled"), ("/srv/buildpacks/go", "folder"),
    ("https://github.com/heroku/heroku-buildpack-python.git", "git"), ("https://example.invalid/bp#v3", "git"),
    ("file:///srv/bp.git", "git"), ("git@example.invalid:team/bp.git", "git"), ("ssh://host/bp", "git"),
    ("/srv/bare/bp.git", "git"),
])
def test_kind_of_an_entry(entry, kind):
    assert kind_of(entry) == kind


def test_every_bundled_buildpack_is_complete():
    for name in BUNDLED:
        assert resolve(name, Path("/nonexistent")).path == BUNDLED_DIR / name
        assert os.access(BUNDLED_DIR / name / "bin" / "release", os.X_OK)
    assert resolve("heroku/python", Path("/nonexistent")).path == BUNDLED_DIR / "python"


def test_bad_entries_name_the_buildpack_and_the_cause(tmp_path):
    with pytest.raises(BuildFailed, match=r"^build failed: buildpack cobol: not a bundled buildpack \(python, nodejs"):
        resolve("cobol", tmp_path)
    with pytest.raises(BuildFailed, match=f"buildpack {tmp_path}/nope: no such folder on the server"):
        resolve(f"{tmp_path}/nope", tmp_path)
    no_compile = TEST_BUILDPACKS / "no-compile"
    with pytest.raises(BuildFailed, match=f"buildpack {no_compile}: bin/compile is missing"):
        resolve(str(no_compile), tmp_path)
    not_executable = tmp_path / "bp"
    shutil.copytree(TEST_BUILDPACKS / "greeting", not_executable)
    (not_executable / "bin" / "compile").chmod(0o644)
    with pytest.raises(BuildFailed, match=r"bin/compile is not executable \(chmod \+x bin/compile\)"):
        resolve(str(not_executable), tmp_path)


def _bare_buildpack_repo(tmp_path: Path) -> tuple[Path, str]:
    work = tmp_path / "work"
    shutil.copytree(TEST_BUILDPACKS / "greeting", work)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "v1"], ["tag", "v1"]):
        subprocess.run([*GIT, *args], cwd=work, check=True, capture_output=True)
    (work / "bin" / "compile").write_text("#!/bin/sh\necho v2\n")
    subprocess.run([*GIT, "commit", "-qam", "v2"], cwd=work, check=True, capture_output=True)
    first = subprocess.run(["git", "rev-parse", "v1"], cwd=work, check=True, capture_output=True, text=True)
    bare = tmp_path / "bp.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True)
    return bare, first.stdout.strip()


def test_a_git_url_is_cloned_at_its_ref_even_from_inside_a_git_hook(tmp_path, monkeypatch):
    bare, first_commit = _bare_buildpack_repo(tmp_path)
    clones = tmp_path / "clones"
    clones.mkdir()
    # The pre-receive hook runs with git's variables set for the app's repository; they must not leak.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "somewhere-else.git"))
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(tmp_path / "quarantine"))
    newest = resolve(f"file://{bare}", clones)
    assert "echo v2" in (newest.path / "bin" / "compile").read_text()
    tagged = resolve(f"file://{bare}#v1", clones)
    assert "greeting" in (tagged.path / "bin" / "compile").read_text()
    pinned = resolve(f"file://{bare}#{first_commit[:12]}", clones)
    assert "greeting" in (pinned.path / "bin" / "compile").read_text()
    assert len({newest.path, tagged.path, pinned.path}) == 3


def test_a_git_url_that_cannot_be_cloned_says_why(tmp_path):
    with pytest.raises(BuildFailed) as caught:
        resolve("file:///nonexistent/bp.git", tmp_path)
    assert caught.value.reason == ("buildpack file:///nonexistent/bp.git: git clone failed: "
                                   "fatal: '/nonexistent/bp.git' does not appear to be a git repository")
    bare, _ = _bare_buildpack_repo(tmp_path)
    with pytest.raises(BuildFailed, match="git clone failed: .*no-such-branch"):
        resolve(f"file://{bare}#no-such-branch", tmp_path)


def test_folder_names_inside_the_build_container_are_readable():
    assert Buildpack("python", BUNDLED_DIR / "python").folder_name == "python"
    assert Buildpack("https://github.com/heroku/heroku-buildpack-python.git#v2", Path("/x")).folder_name == \
        "heroku-buildpack-python"
    assert Buildpack("/srv/my buildpacks/go/", Path("/x")).folder_name == "go"
    assert Buildpack("git@host:x/.git", Path("/x")).folder_name == "buildpack"
