"""PostgreSQL backups of an app's add-ons over the API (gitpaas's own endpoints: Heroku serves
``pg:backups`` from a separate service), so ``gitpaas pg:backups*`` works from another machine.
Each takes the app's release lock as on the server; a dump is streamed, never kept in memory."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import Field

from gitpaas.addons import backups as addon_backups
from gitpaas.addons.store import AddonStore, BackupStore, cli_record, validate_backup_id
from gitpaas.api.core import JsonRoute, Strict, platform_of, visible_app
from gitpaas.api.routes import User
from gitpaas.errors import NotFound, UsageError

router = APIRouter(route_class=JsonRoute)


class AddonName(Strict):
    #: the add-on's name or attachment (default: the app's first PostgreSQL)
    addon: Optional[str] = Field(default=None, max_length=100)


@router.get("/apps/{app}/pg-backups")
def backups_list(request: Request, user: User, app: str) -> dict:
    """The app's backups (those of destroyed add-ons too), and the add-ons it still has."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return {"backups": [b.to_dict() for b in BackupStore(platform.settings).list(found.name)
                        if b.of_app(found.id, found.created_at)],
            "addons": [a.name for a in AddonStore(platform.settings).of_app(found.name)]}


@router.post("/apps/{app}/pg-backups", status_code=201)
def backups_capture(request: Request, user: User, app: str, body: AddonName) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return addon_backups.capture(platform, found.name, body.addon).to_dict()


def _backup(request: Request, user: str, app: str, backup: str):
    """(the app, the backup store, the backup named) — 404 for an app the user may not use, and for
    a backup of an earlier app of the same name (destroyed: its backups are not the new app's)."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    store = BackupStore(platform.settings)
    record = store.get(validate_backup_id(backup), found.name)
    if not record.of_app(found.id, found.created_at):
        raise NotFound(f"no backup {record.id!r} of {found.name} (see `gitpaas pg:backups -a {found.name}`)")
    return found, store, record


@router.get("/apps/{app}/pg-backups/{backup}/dump")
def backups_download(request: Request, user: User, app: str, backup: str) -> FileResponse:
    found, store, record = _backup(request, user, app, backup)
    path = store.dump_path(record)
    if record.status != "completed" or not path.exists():
        raise UsageError(f"backup {record.id} did not complete: there is nothing to download")
    return FileResponse(path, media_type="application/octet-stream", filename=f"{found.name}-{record.id}.dump")


@router.delete("/apps/{app}/pg-backups/{backup}")
def backups_delete(request: Request, user: User, app: str, backup: str) -> dict:
    _, store, record = _backup(request, user, app, backup)
    store.delete(record)
    return record.to_dict()


@router.post("/apps/{app}/pg-backups/{backup}/actions/restore")
def backups_restore(request: Request, user: User, app: str, backup: str, body: AddonName) -> dict:
    found, _, record = _backup(request, user, app, backup)
    addon = addon_backups.restore(platform_of(request), found.name, record.id, body.addon)
    return cli_record(addon)


class Schedule(AddonName):
    #: "HH:MM" (UTC); null stops the daily backups
    at: Optional[str] = Field(default=None, max_length=5)
    retain: int = Field(default=7, ge=1, le=1000)


@router.put("/apps/{app}/pg-backups-schedule")
def backups_schedule(request: Request, user: User, app: str, body: Schedule) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    return cli_record(addon_backups.set_schedule(platform, found.name, body.addon, body.at, body.retain))
