"""Which buildpacks build an app, which ones it may use, and getting each onto the server as a
folder (git runs for real)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from gitpaas.build import buildpack_list
from gitpaas.build.base import BuildRequest
from gitpaas.build.buildpack import BuildpackBuilder
from gitpaas.build.buildpack_list import (
    BUNDLED,
    BUNDLED_DIR,
    NOT_ALLOWED,
    Buildpack,
    allowed,
    chosen_entries,
    kind_of,
    resolve,
)
from gitpaas.errors import BuildFailed
from gitpaas.output import RecordingOutput
from gitpaas.settings import Settings

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
    # Folders the operator allows may say what is wrong with them, since nothing else is revealed.
    allow = (str(tmp_path), str(TEST_BUILDPACKS))
    with pytest.raises(BuildFailed, match=r"^build failed: buildpack cobol: not a bundled buildpack \(python, nodejs"):
        resolve("cobol", tmp_path)
    with pytest.raises(BuildFailed, match=f"buildpack {tmp_path}/nope: no such folder on the server"):
        resolve(f"{tmp_path}/nope", tmp_path, allow)
    no_compile = TEST_BUILDPACKS / "no-compile"
    with pytest.raises(BuildFailed, match=f"buildpack {no_compile}: bin/compile is missing"):
        resolve(str(no_compile), tmp_path, allow)
    not_executable = tmp_path / "bp"
    shutil.copytree(TEST_BUILDPACKS / "greeting", not_executable)
    (not_executable / "bin" / "compile").chmod(0o644)
    with pytest.raises(BuildFailed, match=r"bin/compile is not executable \(chmod \+x bin/compile\)"):
        resolve(str(not_executable), tmp_path, allow)


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
    allow = (f"file://{tmp_path}/",)  # as a file:// prefix: the same as the folder
    newest = resolve(f"file://{bare}", clones, allow)
    assert "echo v2" in (newest.path / "bin" / "compile").read_text()
    tagged = resolve(f"file://{bare}#v1", clones, allow)
    assert "greeting" in (tagged.path / "bin" / "compile").read_text()
    pinned = resolve(f"file://{bare}#{first_commit[:12]}", clones, allow)
    assert "greeting" in (pinned.path / "bin" / "compile").read_text()
    assert len({newest.path, tagged.path, pinned.path}) == 3


def test_a_git_url_that_cannot_be_cloned_says_why(tmp_path):
    with pytest.raises(BuildFailed) as caught:
        resolve("file:///nonexistent/bp.git", tmp_path, ("/nonexistent",))
    assert caught.value.reason == ("buildpack file:///nonexistent/bp.git: git clone failed: "
                                   "fatal: '/nonexistent/bp.git' does not appear to be a git repository")
    bare, _ = _bare_buildpack_repo(tmp_path)
    with pytest.raises(BuildFailed, match="git clone failed: .*no-such-branch"):
        resolve(f"file://{bare}#no-such-branch", tmp_path, (str(tmp_path),))


def test_folder_names_inside_the_build_container_are_readable():
    assert Buildpack("python", BUNDLED_DIR / "python").folder_name == "python"
    assert Buildpack("https://github.com/heroku/heroku-buildpack-python.git#v2", Path("/x")).folder_name == \
        "heroku-buildpack-python"
    assert Buildpack("/srv/my buildpacks/go/", Path("/x")).folder_name == "go"
    assert Buildpack("git@host:x/.git", Path("/x")).folder_name == "buildpack"


# --- which buildpacks a pusher may name ---------------------------------------------------------

def public(host: str) -> list[str]:
    """A resolver for tests: every name is one public address (no network needed)."""
    return ["93.184.216.34"]


def resolving_to(*addresses: str):
    return lambda host: list(addresses)


def refused_message(entry: str) -> str:
    return f"build failed: buildpack {entry}: {NOT_ALLOWED}"


def test_server_folders_and_file_urls_are_refused_with_one_message_that_reveals_nothing(tmp_path):
    """Existing or not, a folder, a bare repository or a file:// URL gets the same words."""
    other_app = tmp_path / "home" / "apps" / "victim" / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(other_app)], check=True)
    clones = tmp_path / "clones"
    clones.mkdir()
    entries = [str(TEST_BUILDPACKS / "greeting"), "/etc", "/nonexistent/bp", f"file://{other_app}",
               f"file://{other_app}#main", "file:///nonexistent/bp.git", str(other_app), "file://localhost/etc",
               f"file://{tmp_path}/home/../home/apps/victim/repo.git"]
    messages = set()
    for entry in entries:
        with pytest.raises(BuildFailed) as caught:
            resolve(entry, clones)
        assert str(caught.value) == refused_message(entry)
        messages.add(str(caught.value).replace(entry, "ENTRY"))
    assert len(messages) == 1 and "\n" not in messages.pop()
    assert list(clones.iterdir()) == [], "nothing was cloned"


@pytest.mark.parametrize("url", [
    "http://93.184.216.34/bp.git",              # public, but not https
    "git://93.184.216.34/bp.git", "ssh://93.184.216.34/bp.git", "git@93.184.216.34:team/bp.git",
    "https://127.0.0.1/bp.git", "https://127.1:8080/bp.git", "https://2130706433/bp.git",
    "https://169.254.169.254/latest/meta-data.git", "https://10.0.0.5/bp.git", "https://[::1]/bp.git",
    "https://[::ffff:127.0.0.1]/bp.git", "https://[fd00::1]/bp.git", "https://0.0.0.0/bp.git",
    "https://100.64.1.1/bp.git", "https://93.184.216.34\\@127.0.0.1/bp.git",
])
def test_only_public_https_urls_are_allowed_without_the_operator(tmp_path, url):
    with pytest.raises(BuildFailed) as caught:
        resolve(url, tmp_path, resolver=public)
    assert str(caught.value) == refused_message(url)


def test_a_host_name_is_public_only_if_every_address_it_resolves_to_is():
    url = "https://git.example.test/bp.git#v2"
    source = allowed(url, resolver=public)
    assert source.kind == "git" and source.pinned.addresses == ("93.184.216.34",)
    assert allowed("https://93.184.216.34/bp.git").pinned.addresses == ("93.184.216.34",)
    for addresses in (("93.184.216.34", "127.0.0.1"), ("10.1.2.3",), ("2606:4700::1111", "fe80::1"), ()):
        with pytest.raises(BuildFailed, match="not allowed"):
            allowed(url, resolver=resolving_to(*addresses))

    def unresolvable(host: str) -> list[str]:
        raise OSError("Name or service not known")
    with pytest.raises(BuildFailed) as caught:
        allowed(url, resolver=unresolvable)
    assert str(caught.value) == refused_message(url), "the same words: no oracle of internal names"


def test_a_public_clone_is_pinned_to_the_checked_addresses_https_only_without_redirects(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(buildpack_list, "_git", lambda url, command, env: commands.append(command))
    source = allowed("https://git.example.test:8443/bp.git", resolver=resolving_to("93.184.216.34", "2606:4700::1111"))
    buildpack_list.clone(source.entry, tmp_path / "clone", source.pinned)
    [command] = commands
    options = [command[i + 1] for i, part in enumerate(command) if part == "-c"]
    assert options == ["protocol.allow=never", "protocol.https.allow=always", "http.followRedirects=false",
                       "http.curloptResolve=git.example.test:8443:93.184.216.34,[2606:4700::1111]"]
    assert command[command.index("clone"):][-2:] == ["https://git.example.test:8443/bp.git", str(tmp_path / "clone")]


def test_the_operators_allow_list_covers_folders_and_url_prefixes(tmp_path):
    shared = tmp_path / "shared"
    shutil.copytree(TEST_BUILDPACKS / "greeting", shared / "greeting")
    (tmp_path / "elsewhere").mkdir()
    (shared / "escape").symlink_to(tmp_path / "elsewhere")
    allow = Settings.from_env({"GITPAAS_HOME": str(tmp_path / "home"),
                               "GITPAAS_BUILDPACK_ALLOW": f"{shared},https://git.corp.example/team/,git@corp.example:"
                               }).buildpack_allow
    assert resolve(str(shared / "greeting"), tmp_path, allow).path == shared / "greeting"
    assert allowed(f"file://{shared}/bp.git#main", allow).kind == "git"
    assert allowed("https://git.corp.example/team/bp.git", allow, resolver=resolving_to("10.0.0.7")).pinned is None
    assert allowed("git@corp.example:team/bp.git", allow).kind == "git"
    for outside in (str(shared / "escape"), f"{shared}/../elsewhere", f"{shared}-other",
                    f"file://{shared}/../elsewhere/bp.git", "https://git.corp.example/teammate/bp.git",
                    "https://git.corp.example/team.evil/bp.git", "git@corp.example.evil:team/bp.git"):
        with pytest.raises(BuildFailed) as caught:
            allowed(outside, allow, resolver=resolving_to("10.0.0.7"))
        assert str(caught.value) == refused_message(outside), outside


def test_bundled_buildpacks_need_no_allow_list():
    assert allowed("python").kind == allowed("heroku/nodejs").kind == "bundled"
    for name in ("../../etc", "heroku/../../etc", "cobol"):
        with pytest.raises(BuildFailed, match="not a bundled buildpack"):
            allowed(name)


class _TreeWithBuildpacks:
    commit_sha = "0" * 40

    def __init__(self, buildpacks: str) -> None:
        self.buildpacks = buildpacks

    def read_text(self, path: str) -> str | None:
        return self.buildpacks if path == ".buildpacks" else None


def test_a_push_naming_one_refused_buildpack_clones_none_and_its_log_is_private(tmp_path, monkeypatch):
    bare, _ = _bare_buildpack_repo(tmp_path)
    clones = []
    monkeypatch.setattr(buildpack_list, "_git", lambda url, command, env: clones.append(command))
    settings = Settings(home=tmp_path / "home", buildpack_allow=(str(tmp_path),))
    output = RecordingOutput()
    log_path = tmp_path / "home" / "apps" / "shop" / "builds" / "1.log"
    request = BuildRequest(app="shop", source=_TreeWithBuildpacks(f"file://{bare}\n/etc\n"), tag="t:v1", labels={},
                           log_path=log_path, output=output)
    with pytest.raises(BuildFailed) as caught:
        BuildpackBuilder(client=None, settings=settings).build(request)
    assert caught.value.reason == f"buildpack /etc: {NOT_ALLOWED}"
    assert clones == [] and not any("Cloning" in line for line in output.lines), "the allowed one was not cloned either"
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600
    assert log_path.read_text().splitlines()[-1] == f" !     build failed: buildpack /etc: {NOT_ALLOWED}"


@pytest.mark.parametrize("entry", [
    "https://git.corp.example/team/../other/repo.git",
    "https://git.corp.example/team/%2e%2e/other/repo.git",
    "https://git.corp.example/team/./../other/repo.git",
])
def test_an_allowed_url_prefix_cannot_be_climbed_out_of(entry, tmp_path):
    with pytest.raises(BuildFailed, match="not allowed"):
        allowed(entry, ("https://git.corp.example/team/",), resolver=lambda host: ["10.0.0.5"])


def test_a_pinned_public_clone_ignores_the_servers_proxy(monkeypatch, tmp_path):
    import gitpaas.build.buildpack_list as module

    seen = {}
    monkeypatch.setenv("https_proxy", "http://proxy.corp.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setattr(module, "_git", lambda url, command, env: seen.update(env=env))
    verdict = module.check_host("93.184.216.34")
    module.clone("https://93.184.216.34/buildpack.git", tmp_path / "clone", verdict)
    assert not {key for key in seen["env"] if key.lower() == "https_proxy"}
