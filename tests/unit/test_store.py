"""On-disk state: atomic writes, the app store, release versions under concurrency, the release lock."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from gitpaas.errors import AppExists, AppNotFound, InvalidAppName, ReleaseNotFound
from gitpaas.locks import AppLock
from gitpaas.output import RecordingOutput
from gitpaas.platform import Platform
from gitpaas.release import Release
from gitpaas.settings import Settings
from gitpaas.store import files
from gitpaas.store.apps import App, AppStore
from gitpaas.store.files import read_json, write_atomic, write_json
from gitpaas.store.releases import ReleaseStore

# --- atomic writes ---------------------------------------------------------------------------


def test_write_json_round_trips_and_creates_the_folder(tmp_path):
    path = tmp_path / "deep" / "folder" / "record.json"
    write_json(path, {"name": "café", "n": [1, 2]})
    assert read_json(path) == {"name": "café", "n": [1, 2]}
    assert "café" in path.read_text(encoding="utf-8")  # readable with cat, not \u-escaped
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "private unless told otherwise"


def test_write_atomic_sets_the_mode_it_is_given(tmp_path):
    path = tmp_path / "secret"
    write_atomic(path, b"x", mode=0o644)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_rename_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "record.json"
    write_json(path, {"version": 1})

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        write_json(path, {"version": 2})
    assert read_json(path) == {"version": 1}
    assert sorted(os.listdir(tmp_path)) == ["record.json"]


def test_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "record.json"
    write_json(path, {"version": 1})

    def broken_fsync(fd):
        raise KeyboardInterrupt  # even an interruption cleans up

    monkeypatch.setattr(files.os, "fsync", broken_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"version": 2})
    assert read_json(path) == {"version": 1}
    assert sorted(os.listdir(tmp_path)) == ["record.json"]


# --- apps ------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path) -> AppStore:
    return AppStore(Settings(home=tmp_path / "home"))


def test_create_get_list_delete(store):
    assert store.list() == []
    created = store.create("shop")
    store.create("blog")
    got = store.get("shop")
    assert got == App.from_dict(created.to_dict())
    assert (got.formation, got.current_release) == ({}, None)
    assert [app.name for app in store.list()] == ["blog", "shop"]
    assert json.loads((store.app_dir("shop") / "app.json").read_text())["name"] == "shop"

    store.delete("shop")
    assert not store.app_dir("shop").exists()
    assert not store.exists("shop")
    assert [app.name for app in store.list()] == ["blog"]
    with pytest.raises(AppNotFound):
        store.get("shop")


def test_create_twice_is_app_exists(store):
    store.create("shop")
    with pytest.raises(AppExists) as caught:
        store.create("shop")
    assert caught.value.exit_code == 4


def test_get_unknown_app_is_app_not_found(store):
    with pytest.raises(AppNotFound) as caught:
        store.get("nope")
    assert caught.value.exit_code == 3


def test_invalid_names_never_reach_the_disk(store):
    with pytest.raises(InvalidAppName):
        store.create("../escape")
    with pytest.raises(InvalidAppName):
        store.get("../escape")
    assert not (store.settings.home / "escape").exists()


def test_list_skips_folders_without_a_record(store):
    store.create("shop")
    (store.root / "half-made").mkdir()
    assert [app.name for app in store.list()] == ["shop"]


def test_save_persists_formation_and_moves_updated_at(store, monkeypatch):
    app = store.create("shop")
    monkeypatch.setattr("gitpaas.store.apps.now_iso", lambda: "2099-01-01T00:00:00Z")
    app.formation = {"web": 2}
    app.current_release = 3
    store.save(app)
    again = store.get("shop")
    assert (again.formation, again.current_release, again.updated_at) == ({"web": 2}, 3, "2099-01-01T00:00:00Z")
    assert again.created_at == app.created_at


def test_app_from_dict_ignores_unknown_keys():
    assert App.from_dict({"name": "shop", "id": "x", "future_field": 1}).name == "shop"


# --- releases --------------------------------------------------------------------------------


def make_release(version: int, description: str = "test") -> Release:
    return Release(version=version, description=description, app={"id": "a", "name": "shop"},
                   user={"email": "me@here", "id": "u"})


def test_versions_are_allocated_one_two_three(tmp_path):
    releases = ReleaseStore(tmp_path / "shop" / "releases")
    assert releases.versions() == [] and releases.latest() is None
    made = [releases.create(lambda v: make_release(v, f"change {v}")) for _ in range(3)]
    assert [r.version for r in made] == [1, 2, 3]
    assert releases.versions() == [1, 2, 3]
    assert releases.get(2).description == "change 2"
    assert releases.output_path(2).read_text() == ""
    assert releases.latest().version == 3


def test_a_folder_without_a_record_is_skipped_but_not_reused(tmp_path):
    releases = ReleaseStore(tmp_path / "shop" / "releases")
    releases.create(make_release)
    releases.folder(2).mkdir()  # an allocation that crashed before writing its record
    assert releases.versions() == [1]
    assert releases.create(make_release).version == 3
    assert releases.versions() == [1, 3]
    with pytest.raises(ReleaseNotFound) as caught:
        releases.get(2)
    assert (caught.value.app, caught.value.version) == ("shop", 2)


def test_a_build_that_raises_leaves_its_version_unused(tmp_path):
    releases = ReleaseStore(tmp_path / "shop" / "releases")

    def broken(version: int) -> Release:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        releases.create(broken)
    assert releases.versions() == []
    assert releases.create(make_release).version == 2


def test_stray_names_in_the_folder_are_ignored(tmp_path):
    releases = ReleaseStore(tmp_path / "shop" / "releases")
    releases.create(make_release)
    for name in ("vx", "v", "notes.txt", "12"):
        (releases.root / name).mkdir()
    assert releases.versions() == [1]
    assert releases.create(make_release).version == 2


def test_list_is_newest_first_and_limited(tmp_path):
    releases = ReleaseStore(tmp_path / "shop" / "releases")
    for _ in range(12):  # past 9, so string order would differ from number order
        releases.create(make_release)
    assert [r.version for r in releases.list()] == list(range(12, 0, -1))
    assert [r.version for r in releases.list(limit=3)] == [12, 11, 10]
    assert releases.versions() == list(range(1, 13))


def test_save_rewrites_the_record(tmp_path):
    releases = ReleaseStore(tmp_path / "shop" / "releases")
    release = releases.create(make_release)
    release.mark("failed", reason="nope", exit_status=1)
    releases.save(release)
    again = releases.get(1)
    assert (again.status, again.failure) == ("failed", {"reason": "nope", "exit_status": 1})


def _create_releases(root: str, count: int, start, results) -> None:
    releases = ReleaseStore(Path(root))
    start.wait(10)  # all four begin together, so their allocations really contend
    try:
        results.put([releases.create(lambda v: make_release(v, f"pid {os.getpid()}")).version for _ in range(count)])
    except Exception as exc:  # noqa: BLE001 - report it to the test instead of leaving it waiting
        results.put(repr(exc))


def test_concurrent_processes_never_share_a_version(tmp_path):
    root = tmp_path / "shop" / "releases"
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_create_releases, args=(str(root), 10, start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(10)
    assert all(isinstance(outcome, list) for outcome in outcomes), outcomes
    allocated = [version for outcome in outcomes for version in outcome]
    assert sorted(allocated) == list(range(1, 41))
    releases = ReleaseStore(root)
    assert releases.versions() == list(range(1, 41))
    records = [releases.get(version) for version in range(1, 41)]
    assert [r.version for r in records] == list(range(1, 41))
    assert len({r.id for r in records}) == 40
    assert len({r.description for r in records}) == 4  # each of the four processes made some


# --- the release lock ------------------------------------------------------------------------


def _hold_release_lock(home: str, held, release_now) -> None:
    store = AppStore(Settings(home=Path(home)))
    with store.release_lock("shop"):
        held.set()
        release_now.wait(10)


def test_the_app_lock_says_so_while_another_process_holds_it(tmp_path):
    settings = Settings(home=tmp_path / "home")
    store = AppStore(settings)
    context = multiprocessing.get_context("fork")
    held, release_now = context.Event(), context.Event()
    holder = context.Process(target=_hold_release_lock, args=(str(settings.home), held, release_now))
    holder.start()

    class Waiting(RecordingOutput):
        def info(self, text: str) -> None:
            super().info(text)
            release_now.set()  # let the holder go, so the acquire below can finish

    try:
        assert held.wait(10)
        output = Waiting()
        with AppLock(Platform(settings), "shop", output):
            assert release_now.is_set()
        assert output.lines == ["       Waiting for another release of shop to finish…"]
    finally:
        release_now.set()
        holder.join(10)
    assert holder.exitcode == 0
    assert store.releases("shop").versions() == []


def test_the_app_lock_says_nothing_when_free(tmp_path):
    settings = Settings(home=tmp_path / "home")
    output = RecordingOutput()
    for _ in range(2):
        with AppLock(Platform(settings), "shop", output):
            pass
    assert output.lines == []


def test_newest_walks_down_from_the_latest_without_scanning(tmp_path):
    store = ReleaseStore(tmp_path / "app" / "releases")
    for _ in range(5):
        store.create(make_release)
    assert (store.root / "latest").read_text() == "5\n"
    assert [r.version for r in store.newest(2)] == [5, 4]
    assert [r.version for r in store.newest(2, below=4)] == [3, 2]
    assert [r.version for r in store.newest(10, below=2)] == [1]
    (store.folder(6)).mkdir()  # an allocation that crashed before its record and before `latest`
    assert [r.version for r in store.newest(2)] == [5, 4]
    assert store.create(make_release).version == 7, "never reuses a crashed allocation"
    (store.root / "latest").unlink()  # a home from before the `latest` file
    assert store.latest().version == 7 and store.create(make_release).version == 8


# --- files that may echo secrets are the server user's alone ---------------------------------

import io  # noqa: E402 - (this section's own imports)
import tarfile  # noqa: E402

import docker  # noqa: E402

from gitpaas.build.base import BuildRequest  # noqa: E402
from gitpaas.build.dockerfile import DockerfileBuilder  # noqa: E402
from gitpaas.errors import BuildFailed  # noqa: E402


def test_open_private_creates_0600_whatever_the_umask_and_narrows_an_old_file(tmp_path):
    old_umask = os.umask(0)
    try:
        with files.open_private(tmp_path / "new.log") as log:
            log.write("first\n")
        legacy = tmp_path / "legacy.log"
        legacy.write_text("kept\n")
        legacy.chmod(0o644)
        with files.open_private(legacy, "a") as log:
            log.write("appended\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "new.log").stat().st_mode) == 0o600
    assert stat.S_IMODE(legacy.stat().st_mode) == 0o600 and legacy.read_text() == "kept\nappended\n"
    with files.open_private(legacy) as log:
        log.write("rewritten\n")
    assert legacy.read_text() == "rewritten\n"


def test_release_output_is_created_0600(tmp_path):
    old_umask = os.umask(0o022)
    try:
        releases = ReleaseStore(tmp_path / "shop" / "releases")
        release = releases.create(lambda v: make_release(v))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(releases.output_path(release.version).stat().st_mode) == 0o600
    assert stat.S_IMODE((releases.folder(release.version) / "release.json").stat().st_mode) == 0o600


class _TreeWithDockerfile:
    commit_sha = "0" * 40

    def read_text(self, path: str) -> str | None:
        return "FROM scratch\n" if path == "Dockerfile" else None

    def write_tar(self, fileobj, prefix: str = "", folder: str = "") -> None:
        with tarfile.open(fileobj=fileobj, mode="w") as tar:
            data = b"FROM scratch\n"
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


class _EngineThatFails:
    class api:
        @staticmethod
        def build(*args, **kwargs):
            raise docker.errors.APIError("the engine is on fire")

        @staticmethod
        def _url(path):
            return path

        _post = build


@pytest.mark.parametrize("builder", ["buildkit", "classic"])
def test_a_dockerfile_build_log_is_created_0600(tmp_path, builder):
    log_path = tmp_path / "builds" / "1.log"
    request = BuildRequest(app="shop", source=_TreeWithDockerfile(), tag="shop:v1", labels={},
                           log_path=log_path, output=RecordingOutput())
    settings = Settings.from_env({"GITPAAS_HOME": str(tmp_path), "GITPAAS_DOCKER_BUILDER": builder})
    with pytest.raises(BuildFailed, match="the engine is on fire"):
        DockerfileBuilder(_EngineThatFails(), settings).build(request)
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600
