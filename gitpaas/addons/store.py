"""Add-ons on disk: ``apps/NAME/addons/ADDON.json`` (0600: they hold the credentials) and the
backups of a home, ``backups/APP/ADDON/ID.dump`` with ``ID.json`` beside it — kept in the home,
not the app, so they outlive an app that is destroyed, until the operator deletes them."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from gitpaas.addons.plans import SERVICES, Service, config_var
from gitpaas.errors import NotFound, UsageError
from gitpaas.release import now_iso
from gitpaas.settings import Settings
from gitpaas.store.files import PRIVATE, read_json, write_atomic, write_json

_BACKUP_ID = re.compile(r"[abfh][0-9]{3,9}")


class AddonNotFound(NotFound):
    def __init__(self, name: str, app: str | None = None) -> None:
        where = f" on {app}" if app else ""
        super().__init__(f"no add-on {name!r}{where} (see `gitpaas addons{f' -a {app}' if app else ''}`)")


@dataclass
class Addon:
    name: str
    service: str
    app: str
    app_id: str
    attachment: str
    #: user, password and database of the service inside its container
    credentials: dict[str, str]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "provisioned"
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    #: daily backups: {"at": "HH:MM" (UTC), "retain": N}, or None
    schedule: dict | None = None
    #: a new password being given to the service (``runtime.rotate_password``), until it has it
    rotating: str | None = None

    @property
    def kind(self) -> Service:
        return SERVICES[self.service]

    @property
    def config_var(self) -> str:
        return config_var(self.attachment)

    @property
    def host(self) -> str:
        """Its name on the app's network (its container's alias there)."""
        return self.name

    def url(self) -> str:
        return self.kind.url(self.credentials.get("user", ""), self.credentials["password"], self.host,
                             self.credentials.get("database", ""))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Addon":
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


class AddonStore:
    """The add-ons of one home, by app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def folder(self, app: str) -> Path:
        return self.settings.app_dir(app) / "addons"

    def of_app(self, app: str) -> list[Addon]:
        try:
            names = sorted(os.listdir(self.folder(app)))
        except FileNotFoundError:
            return []
        return [Addon.from_dict(read_json(self.folder(app) / name)) for name in names if name.endswith(".json")]

    def all(self) -> list[Addon]:
        root = self.settings.home / "apps"
        apps = sorted(path.name for path in root.iterdir() if path.is_dir()) if root.is_dir() else []
        return [addon for app in apps for addon in self.of_app(app)]

    def get(self, name: str, app: str | None = None) -> Addon:
        """The add-on called ``name`` (or with that id); on ``app``, else the one attached as
        ``name`` (``DATABASE``, ``DATABASE_URL``). A name always wins over an attachment."""
        candidates = self.of_app(app) if app else self.all()
        for addon in candidates:
            if name in (addon.name, addon.id):
                return addon
        for addon in candidates if app else ():
            if name.upper() in (addon.attachment, addon.config_var):
                return addon
        raise AddonNotFound(name, app)

    def of_service(self, app: str, service: Service, name: str | None = None) -> Addon:
        """The app's add-on of ``service`` called (or attached as) ``name``; without a name its
        first one (DATABASE, REDIS) or else its oldest."""
        if name:
            addon = self.get(name, app)
            if addon.service != service.name:
                raise UsageError(f"{addon.name} is a {addon.service} add-on, not {service.name}")
            return addon
        found = [addon for addon in self.of_app(app) if addon.service == service.name]
        if not found:
            raise UsageError(f"{app} has no {service.name} add-on "
                             f"(create one: `gitpaas addons:create {service.name} -a {app}`)")
        return next((a for a in found if a.attachment == service.first_attachment), found[0])

    def save(self, addon: Addon) -> None:
        addon.updated_at = now_iso()
        self.folder(addon.app).mkdir(mode=0o700, parents=True, exist_ok=True)
        write_json(self.folder(addon.app) / f"{addon.name}.json", addon.to_dict(), mode=PRIVATE)

    def delete(self, addon: Addon) -> None:
        (self.folder(addon.app) / f"{addon.name}.json").unlink(missing_ok=True)

    def config_vars(self, app: str) -> dict[str, str]:
        """The config vars the app's add-ons own: attachment_URL → the connection URL."""
        return {addon.config_var: addon.url() for addon in self.of_app(app)}

    def with_own(self, app: str, own: dict[str, str]) -> dict[str, str]:
        """What the app's processes get: its own config vars, then its add-ons' (whose current
        values always win: an app cannot set one, and a rollback never brings an old one back)."""
        return {**own, **self.config_vars(app)}

    def owner_of(self, app: str, key: str) -> Addon | None:
        """The add-on that owns config var ``key``, if one does."""
        return next((addon for addon in self.of_app(app) if addon.config_var == key), None)


def cli_record(addon: Addon) -> dict[str, Any]:
    """An add-on as ``gitpaas addons --json`` prints it, on the server and off it (no credentials:
    those are in the app's config)."""
    return {"name": addon.name, "id": addon.id, "app": addon.app, "plan": addon.kind.plan_name,
            "service": addon.service, "attachment": addon.attachment, "config_vars": [addon.config_var],
            "state": addon.state, "created_at": addon.created_at, "updated_at": addon.updated_at,
            "backup_schedule": addon.schedule}


@dataclass
class Backup:
    id: str
    app: str
    addon: str
    service: str
    #: "manual" (pg:backups:capture), "scheduled", "final" (kept when the add-on was destroyed), or
    #: "home" (taken by ``gitpaas backup``, put back by ``gitpaas restore``)
    kind: str
    created_at: str = field(default_factory=now_iso)
    size: int = 0
    status: str = "running"
    #: the id of the app it was taken of: a later app of the same name is another app, and its
    #: users never see this one's backups through the API (None: recorded before ids were)
    app_id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def of_app(self, app_id: str, app_created_at: str) -> bool:
        """Whether it was taken of the app with that id (a record without one: not before it existed)."""
        return self.app_id == app_id if self.app_id else self.created_at >= app_created_at


class BackupStore:
    """``backups/APP/ADDON/``: dumps and their records, numbered per app (b001 manual, a002
    scheduled, f003 final, h004 for a home backup: the number always grows)."""

    PREFIX = {"manual": "b", "scheduled": "a", "final": "f", "home": "h"}

    def __init__(self, settings: Settings) -> None:
        self.root = settings.home / "backups"
        self.apps_root = settings.home / "apps"

    def folder(self, app: str, addon: str) -> Path:
        return self.root / app / addon

    def new(self, addon: Addon, kind: str, created_at: str | None = None) -> tuple[Backup, Path]:
        """A new backup's record (``running``) and the path its dump goes to. Its number comes from
        the app's sequence (``backups/APP/sequence``, under a lock): ids are never reused, even
        once the newest backup is deleted."""
        folder = self.folder(addon.app, addon.name)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        sequence = self.root / addon.app / "sequence"
        with FileLock(str(self.root / addon.app / ".sequence.lock")):
            try:
                last = int(sequence.read_text().strip() or 0)
            except (FileNotFoundError, ValueError):
                last = 0
            # a home from before the sequence file (or one restored without it) continues after its backups
            last = max([last] + [int(path.stem[1:]) for path in (self.root / addon.app).glob("*/*.json")
                                 if _BACKUP_ID.fullmatch(path.stem)])
            backup = Backup(f"{self.PREFIX[kind]}{last + 1:03d}", addon.app, addon.name, addon.service, kind,
                            created_at=created_at or now_iso(), app_id=self._app_id(addon.app))
            write_atomic(sequence, f"{last + 1}\n".encode())
            self.save(backup)
        return backup, folder / f"{backup.id}.dump"

    def _app_id(self, app: str) -> str | None:
        try:
            return read_json(self.apps_root / app / "app.json").get("id")
        except (OSError, ValueError, AttributeError):
            return None

    def save(self, backup: Backup) -> None:
        write_json(self.folder(backup.app, backup.addon) / f"{backup.id}.json", backup.to_dict(), mode=PRIVATE)

    def dump_path(self, backup: Backup) -> Path:
        return self.folder(backup.app, backup.addon) / f"{backup.id}.dump"

    def list(self, app: str | None = None) -> list[Backup]:
        """Every backup of the home (or of ``app``, destroyed or not), oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for record in sorted(self.root.glob(f"{app or '*'}/*/*.json")):
            if _BACKUP_ID.fullmatch(record.stem):
                found.append(Backup(**{k: v for k, v in read_json(record).items() if k in Backup.__dataclass_fields__}))
        return sorted(found, key=lambda backup: (backup.created_at, int(backup.id[1:])))

    def get(self, backup_id: str, app: str) -> Backup:
        for backup in self.list(app):
            if backup.id == backup_id:
                return backup
        raise NotFound(f"no backup {backup_id!r} of {app} (see `gitpaas pg:backups -a {app}`)")

    def delete(self, backup: Backup) -> None:
        self.dump_path(backup).unlink(missing_ok=True)
        (self.folder(backup.app, backup.addon) / f"{backup.id}.json").unlink(missing_ok=True)


def validate_backup_id(text: str) -> str:
    if not isinstance(text, str) or not _BACKUP_ID.fullmatch(text):
        raise UsageError(f"{text!r} is not a backup id (like b001)")
    return text
