"""Apps on disk: ``$GITPAAS_HOME/apps/NAME/app.json`` plus the app's repo and releases."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from gitpaas.errors import AppExists, AppNotFound, GitpaasError
from gitpaas.names import validate_app_name, validate_new_app_name
from gitpaas.release import now_iso
from gitpaas.settings import Settings
from gitpaas.store.config import ConfigStore
from gitpaas.store.files import read_json, write_json
from gitpaas.store.releases import ReleaseStore
from gitpaas.lazy import lazy

#: file locks, loaded on first use: reading records takes none
filelock = lazy("filelock")

#: the note of a build under way, and of the app's last build when it failed, in the app's folder
BUILDING = "building.json"
BUILD_FAILED = "build-failed.json"


def _process_started(pid: int) -> str | None:
    """When process ``pid`` started (in clock ticks since boot; None if it is gone), so a note
    naming it is not taken for a live build's once the number is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


@dataclass
class App:
    name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    #: process type → quantity, for every type the current release defines (``release`` never).
    formation: dict[str, int] = field(default_factory=dict)
    #: process type → dyno size (gitpaas.sizes), for the types not at the default size (``release`` too)
    sizes: dict[str, str] = field(default_factory=dict)
    #: version of the release the formation runs, None before the first successful release.
    current_release: int | None = None
    #: e-mail of the account that created the app (None: created on the server, by its operator)
    owner: str | None = None
    #: e-mails of the other accounts that may use the app
    collaborators: list[str] = field(default_factory=list)
    #: custom host names routed to the app, besides APP.$GITPAAS_DOMAIN
    domains: list[str] = field(default_factory=list)
    #: keep the slug images of only the newest N releases (None: keep every one)
    retention: int | None = None
    #: outcome of app.json's scripts.postdeploy, run once after the first successful release
    postdeploy: dict | None = None
    #: the stack the app's next build uses (gitpaas.stacks); None: recorded before stacks could be
    #: chosen, so bookworm, what everything was built on then
    build_stack: str | None = None
    #: in maintenance mode: the router answers every request with the maintenance page (503)
    maintenance: bool = False
    #: a review app's branch: ``{"pipeline", "parent", "branch", "pushed_at"}`` (gitpaas.reviewapps)
    review: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "App":
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


class AppStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.home / "apps"
        self.locks = settings.home / "locks"

    # --- paths ---------------------------------------------------------------------------
    def app_dir(self, name: str) -> Path:
        return self.root / name

    def repo_path(self, name: str) -> Path:
        return self.app_dir(name) / "repo.git"

    def releases(self, name: str) -> ReleaseStore:
        return ReleaseStore(self.app_dir(name) / "releases")

    def config(self, name: str) -> ConfigStore:
        return ConfigStore(self.app_dir(name))

    # --- records -------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return (self.app_dir(name) / "app.json").is_file()

    def create(self, name: str, build_stack: str | None = None) -> App:
        validate_new_app_name(name)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._home_lock():
            if self.exists(name):
                raise AppExists(name)
            app = App(name=name, build_stack=build_stack or self.settings.default_stack)
            self.app_dir(name).mkdir(parents=True, exist_ok=True)
            self.save(app)
        return app

    def get(self, name: str) -> App:
        validate_app_name(name)
        try:
            return App.from_dict(read_json(self.app_dir(name) / "app.json"))
        except FileNotFoundError:
            raise AppNotFound(name) from None

    def list(self) -> list[App]:
        if not self.root.is_dir():
            return []
        return [self.get(path.name) for path in sorted(self.root.iterdir()) if (path / "app.json").is_file()]

    def save(self, app: App) -> None:
        app.updated_at = now_iso()
        write_json(self.app_dir(app.name) / "app.json", app.to_dict())

    def delete(self, name: str) -> None:
        """Remove the app's folder: the record goes first so a crash leaves no half-app visible."""
        directory = self.app_dir(name)
        (directory / "app.json").unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
        (self.locks / f"{name}.lock").unlink(missing_ok=True)

    # --- a build under way, and the last one that failed ----------------------------------------
    def building(self, name: str) -> dict | None:
        """The build of ``name`` under way (``building.json``: its commit, when it began, its log's
        name), while the process building it lives; None otherwise (a killed build's note too)."""
        try:
            note = read_json(self.app_dir(name) / BUILDING)
            started = _process_started(int(note["pid"]))
            alive = started is not None and started == note.get("pid_started")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return note if alive else None

    def failed_build(self, name: str) -> dict | None:
        """The app's last build, if it failed (``build-failed.json``: its commit, log and reason);
        the next build that succeeds removes it."""
        try:
            return read_json(self.app_dir(name) / BUILD_FAILED)
        except (OSError, ValueError):
            return None

    @contextmanager
    def noting_build(self, name: str, commit: str, log_path: Path) -> Iterator[None]:
        """Note a build of ``name`` as under way while the block runs, then whether it failed (for
        those who watch: the dashboard shows a build before the release it makes exists, and a
        failed one, which makes no release, with its reason)."""
        note = self.app_dir(name) / BUILDING
        record = {"commit": commit, "started_at": now_iso(), "log": log_path.name, "pid": os.getpid(),
                  "pid_started": _process_started(os.getpid())}
        write_json(note, record)
        try:
            yield
        except BaseException as exc:
            reason = exc.message if isinstance(exc, GitpaasError) else f"interrupted ({exc.__class__.__name__})"
            write_json(self.app_dir(name) / BUILD_FAILED, {**record, "failed_at": now_iso(), "reason": reason})
            raise
        else:
            (self.app_dir(name) / BUILD_FAILED).unlink(missing_ok=True)
        finally:
            note.unlink(missing_ok=True)

    # --- locks ---------------------------------------------------------------------------
    def _home_lock(self) -> filelock.FileLock:
        self.locks.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(self.locks / "home.lock"))

    def release_lock(self, name: str) -> filelock.FileLock:
        """The lock that serializes everything changing what an app runs (see ``gitpaas.locks``).
        The thread that takes it lets it go."""
        self.locks.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(self.locks / f"{name}.lock"))
