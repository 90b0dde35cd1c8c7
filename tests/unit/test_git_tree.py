"""Reading a pushed commit out of a bare repository (files, modes, symlinks, quarantine) and the hooks."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from gitpaas.errors import PushRefused
from gitpaas.git.repo import init_bare, install_hooks
from gitpaas.git.tree import PushedTree
from gitpaas.settings import HOOK_CLIENT, Settings

UTF8_NAME = "docs/héllo wörld.txt"


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    env = {
        "PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.test",
        "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.test",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, input=input, capture_output=True, check=True)
    return done.stdout.decode().strip()


def commit_all(work: Path, message: str) -> str:
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def work(tmp_path) -> Path:
    """A work repository with one commit of every kind of entry a build context can hold."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "Procfile").write_text("web: ./run.sh\n")
    (work / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (work / "run.sh").chmod(0o755)
    (work / "app").mkdir()
    (work / "app" / "deep").mkdir()
    (work / "app" / "deep" / "main.py").write_text("print('deep')\n")
    (work / "docs").mkdir()
    (work / UTF8_NAME).write_text("ünïcode\n", encoding="utf-8")
    (work / "link-to-run").symlink_to("run.sh")
    (work / "broken-link").symlink_to("does/not/exist")
    commit_all(work, "first commit\n\nwith a body")
    return work


@pytest.fixture
def bare(tmp_path, work) -> Path:
    """The app's bare repository, the first commit pushed into it."""
    (tmp_path / "app").mkdir()
    bare = tmp_path / "app" / "repo.git"
    init_bare(bare)
    git(work, "push", "-q", str(bare), "main")
    return bare


def head(work: Path) -> str:
    return git(work, "rev-parse", "HEAD")


def read_tar(tree: PushedTree, prefix: str = "", folder: str = "") -> tuple[dict[str, tarfile.TarInfo], dict[str, bytes]]:
    """The build context ``tree`` writes: its members by name, and the contents of its files."""
    buffer = io.BytesIO()
    tree.write_tar(buffer, prefix=prefix, folder=folder)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        members = {member.name: member for member in tar.getmembers()}
        contents = {name: tar.extractfile(member).read() for name, member in members.items() if member.isfile()}
    return members, contents


def test_reads_files_of_the_pushed_commit(bare, work):
    tree = PushedTree.open(bare, head(work))
    assert tree.read_text("Procfile") == "web: ./run.sh\n"
    assert tree.read_bytes("app/deep/main.py") == b"print('deep')\n"
    assert tree.read_text(UTF8_NAME) == "ünïcode\n"
    assert tree.has("run.sh") and not tree.has("missing")
    assert tree.read_text("missing") is None
    assert tree.read_bytes("app") is None  # folders are not files (and are not listed)
    assert tree.paths() == sorted(["Procfile", "run.sh", "app/deep/main.py", UTF8_NAME, "link-to-run", "broken-link"])
    assert tree.message == "first commit\n\nwith a body"


def test_invalid_utf8_text_refuses_the_push(bare, work):
    (work / "Procfile").write_bytes(b"web: caf\xe9\n")
    sha = commit_all(work, "latin-1")
    git(work, "push", "-q", str(bare), "main")
    tree = PushedTree.open(bare, sha)
    assert tree.read_bytes("Procfile") == b"web: caf\xe9\n"
    with pytest.raises(PushRefused, match="Procfile is not valid UTF-8"):
        tree.read_text("Procfile")


def test_write_tar_keeps_modes_symlinks_and_nested_paths(bare, work):
    tree = PushedTree.open(bare, head(work))
    members, contents = read_tar(tree)
    assert set(members) == {"Procfile", "run.sh", "app/deep/main.py", UTF8_NAME, "link-to-run", "broken-link"}
    assert members["run.sh"].isfile() and members["run.sh"].mode == 0o755
    assert members["Procfile"].mode == 0o644
    assert contents["app/deep/main.py"] == b"print('deep')\n"
    assert contents[UTF8_NAME] == "ünïcode\n".encode()
    assert members["link-to-run"].issym() and members["link-to-run"].linkname == "run.sh"
    assert members["broken-link"].issym() and members["broken-link"].linkname == "does/not/exist"
    assert {member.mtime for member in members.values()} == {tree.commit.commit_time}


def test_write_tar_of_a_folder_is_that_folder_alone_as_its_root(bare, work):
    # heroku.yml's build context: the folder its Dockerfile is in
    members, contents = read_tar(PushedTree.open(bare, head(work)), folder="app")
    assert set(members) == {"deep/main.py"} and contents["deep/main.py"] == b"print('deep')\n"
    assert set(read_tar(PushedTree.open(bare, head(work)), folder="app/deep/")[0]) == {"main.py"}
    assert read_tar(PushedTree.open(bare, head(work)), folder="ap")[0] == {}  # a name's prefix is not its folder


def test_write_tar_prefix_puts_everything_under_a_folder(bare, work):
    members, _ = read_tar(PushedTree.open(bare, head(work)), prefix="src/")
    assert "src/run.sh" in members and "src/app/deep/main.py" in members
    assert all(name.startswith("src/") for name in members)


def test_write_tar_extracts_to_a_runnable_tree(bare, work, tmp_path):
    buffer = io.BytesIO()
    PushedTree.open(bare, head(work)).write_tar(buffer)
    buffer.seek(0)
    target = tmp_path / "context"
    with tarfile.open(fileobj=buffer) as tar:
        tar.extractall(target, filter="tar")
    assert os.access(target / "run.sh", os.X_OK)
    assert (target / "link-to-run").read_text() == "#!/bin/sh\necho hi\n"


def test_submodule_gitlink_is_skipped(bare, work):
    submodule_sha = head(work)  # any commit id will do: git does not need the submodule's objects
    git(work, "update-index", "--add", "--cacheinfo", f"160000,{submodule_sha},vendor/lib")
    git(work, "commit", "-q", "-m", "add a submodule")
    git(work, "push", "-q", str(bare), "main")
    tree = PushedTree.open(bare, head(work))
    assert tree.has("vendor/lib")
    assert tree.read_bytes("vendor/lib") is None
    members, _ = read_tar(tree)
    assert "vendor/lib" not in members
    assert "run.sh" in members


def test_unknown_commit_refuses_the_push(bare):
    with pytest.raises(PushRefused, match="commit 1234567 is not in the repository"):
        PushedTree.open(bare, "1234567" + "0" * 33)


def test_a_tree_sha_is_not_a_commit(bare, work):
    tree_sha = git(work, "rev-parse", "HEAD^{tree}")
    with pytest.raises(PushRefused, match="is not a commit"):
        PushedTree.open(bare, tree_sha)


def test_quarantined_objects_are_found_only_through_the_environment(tmp_path, bare, work):
    """During pre-receive git keeps the pushed objects apart, naming the folder in GIT_QUARANTINE_PATH."""
    first = head(work)
    (work / "Procfile").write_text("web: ./run.sh --v2\n")
    second = commit_all(work, "second")
    # The quarantine holds only what the push brought: a pack of the objects the repo lacks.
    quarantine = bare / "objects" / "incoming-test"
    (quarantine / "pack").mkdir(parents=True)
    git(work, "pack-objects", "-q", "--revs", str(quarantine / "pack" / "pack"), input=f"{second}\n^{first}\n".encode())

    with pytest.raises(PushRefused, match="not in the repository"):
        PushedTree.open(bare, second)
    for variable in ("GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY"):
        tree = PushedTree.open(bare, second, environ={variable: str(quarantine)})
        assert tree.read_text("Procfile") == "web: ./run.sh --v2\n"  # from the quarantine
        members, contents = read_tar(tree)  # unchanged blobs come from the repository itself
        assert contents["app/deep/main.py"] == b"print('deep')\n"
        assert members["run.sh"].mode == 0o755


def test_quarantine_in_another_repository(tmp_path, bare, work):
    (work / "new.txt").write_text("only over there\n")
    sha = commit_all(work, "elsewhere")
    other = tmp_path / "other.git"
    git(tmp_path, "init", "-q", "--bare", str(other))
    git(work, "push", "-q", str(other), "main")

    with pytest.raises(PushRefused):
        PushedTree.open(bare, sha)
    tree = PushedTree.open(bare, sha, environ={"GIT_QUARANTINE_PATH": str(other / "objects")})
    assert tree.read_text("new.txt") == "only over there\n"


def test_a_missing_quarantine_folder_falls_back_to_the_repository(bare, work):
    tree = PushedTree.open(bare, head(work), environ={"GIT_QUARANTINE_PATH": str(bare / "objects" / "gone")})
    assert tree.read_text("Procfile") == "web: ./run.sh\n"


# --- hooks -----------------------------------------------------------------------------------


def test_install_hooks_renders_an_executable_pre_receive_with_quoted_paths(tmp_path):
    home = tmp_path / "my home's place"
    repo = tmp_path / "repo.git"
    init_bare(repo)
    python_dir = tmp_path / "py thon"
    python_dir.mkdir()
    fake_python = python_dir / "python"
    fake_python.write_text('#!/bin/sh\nprintf "%s\\n" "home=$GITPAAS_HOME" "$@"\ncat\n')
    fake_python.chmod(0o755)

    install_hooks(repo, Settings(home=home), python=str(fake_python))

    hook = repo / "hooks" / "pre-receive"
    assert hook.stat().st_mode & 0o777 == 0o700
    text = hook.read_text()
    assert "{{" not in text and "}}" not in text
    # The shell reads the quoted values back exactly, spaces and quotes included.
    done = subprocess.run([str(hook)], input=b"old new refs/heads/main\n", capture_output=True, check=True)
    assert done.stdout.decode().splitlines() == [
        f"home={home}", "-S", HOOK_CLIENT, "hook", "pre-receive", "old new refs/heads/main",
    ]


def test_install_hooks_defaults_to_the_running_python(tmp_path):
    import shlex
    import sys

    repo = tmp_path / "repo.git"
    install_hooks(repo, Settings(home=tmp_path / "home"))
    text = (repo / "hooks" / "pre-receive").read_text()
    assert f"exec {shlex.quote(sys.executable)} -S {shlex.quote(HOOK_CLIENT)} hook pre-receive" in text
    assert f"GITPAAS_HOME={shlex.quote(str(tmp_path / 'home'))}" in text
    assert not (repo / "hooks" / "README.md").exists()
