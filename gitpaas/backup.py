"""``gitpaas backup FILE`` and ``gitpaas restore FILE``: a home in one archive, and back.

The archive is a gzipped tar of the home's own files — apps (records, config vars, release
records and outputs, build logs, git repositories, webhooks), accounts, SSH keys and the router's
certificate, the PostgreSQL add-ons' backups (``backups/``, with a dump of each add-on taken for
this archive) — plus ``gitpaas-backup.json`` (what it holds). Left out: what can be made again
(build caches, the router's generated configuration and logs, locks). It is taken while every
app's release lock is held, so no release is half-recorded in it; its files keep their modes
(secrets 0600) and the archive itself is written 0600.

Restoring goes into a new, empty home — on a fresh machine, or beside the old one — and brings
every app back at its current release: the slug image is rebuilt from the release's recorded
commit when the engine does not have it (a fresh machine never does), the formation started, the
router pointed at it, its add-ons started first (each PostgreSQL one loaded from the dump taken for
the archive; a Redis add-on starts empty: it holds caches and queues). Older releases keep their
records; their slugs are not rebuilt, so they are not eligible for rollback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gitpaas import stacks
from gitpaas.accounts import Accounts
from gitpaas.addons import backups as addon_backups
from gitpaas.addons import runtime
from gitpaas.addons.plans import POSTGRESQL
from gitpaas.addons.store import Addon, AddonStore, BackupStore
from gitpaas.build.base import BuiltImage
from gitpaas.errors import GitpaasError, UsageError
from gitpaas.events import has_slugs
from gitpaas.formation import deployment
from gitpaas.git.repo import install_hooks, wait_for_noted_ref_update
from gitpaas.git.tree import PushedTree
from gitpaas.locks import AppLock
from gitpaas.output import NullOutput, Output
from gitpaas.pipeline import build_slug
from gitpaas.platform import Platform
from gitpaas.release import Release, now_iso
from gitpaas.settings import read_home_record
from gitpaas.store.files import PRIVATE, write_json

MANIFEST = "gitpaas-backup.json"
FORMAT = 1
#: what a backup leaves out, as paths relative to the home (``*`` = any one name)
_LEFT_OUT = ("locks", "logs", "backups/*/.sequence.lock", "router/nginx.conf", "router/generation.conf", "router/apps", "router/logs",
             "router/tmp", "router/nginx.pid", "router/router.lock", "router/lua/modules.json", "router/unconfirmed", "apps/*/cache", "apps/*/push-in-flight.json",
             "apps/*/push-in-flight-*.json", "apps/*/building.json",
             "apps/*/build-failed.json")


def backup(platform: Platform, target: Path, output: Output) -> dict:
    """Write the home into ``target`` (a .tar.gz, 0600); returns the manifest."""
    home = platform.settings.home
    if not (home / "home.json").is_file():
        raise UsageError("there is no gitpaas home here to back up (see GITPAAS_HOME)")
    target = target.absolute()
    if target.is_relative_to(home):
        raise UsageError("write the backup outside the home it backs up")
    apps = platform.apps.list()
    with contextlib.ExitStack() as held:
        for app in apps:  # in name order, as everyone takes several locks: no deadlock
            held.enter_context(AppLock(platform, app.name, output))
            # a push just deployed: git moves its ref (and its objects out of quarantine) after the
            # hook let the lock go — wait for that, or the release's commit may not be in the copy
            wait_for_noted_ref_update(platform.apps.app_dir(app.name), platform.apps.repo_path(app.name))
        apps = platform.apps.list()
        dumps = {app.name: [_dump(platform, addon, output) for addon in AddonStore(platform.settings).of_app(app.name)
                            if addon.service == POSTGRESQL.name] for app in apps}
        manifest = {
            "format": FORMAT, "created_at": now_iso(), "domain": platform.settings.domain,
            "apps": [{"name": app.name, "current_release": app.current_release, "addon_backups": dumps[app.name]}
                     for app in apps],
        }
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, PRIVATE)
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
                data = json.dumps(manifest, indent=2).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode, info.mtime = len(data), PRIVATE, int(os.path.getmtime(home / "home.json"))
                archive.addfile(info, fileobj=io.BytesIO(data))
                for path in _files_to_keep(home):
                    archive.add(path, arcname=f"home/{path.relative_to(home)}", recursive=False)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    for app in manifest["apps"]:
        output.info(f"{app['name']}: " + (f"v{app['current_release']}" if app["current_release"] else "no release yet"))
    return manifest


def restore(platform: Platform, source: Path, output: Output) -> list[str]:
    """Bring the archive's home back into this (new, empty) home; returns what was done."""
    settings = platform.settings
    if settings.home.exists() and any(settings.home.iterdir()):
        raise UsageError("restore into a new, empty home: this one is not empty (set GITPAAS_HOME to a new folder)")
    try:
        archive = tarfile.open(source, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise UsageError(f"{source.name} is not a gitpaas backup ({exc.__class__.__name__})") from None
    with archive:
        try:
            manifest = json.load(archive.extractfile(MANIFEST))
        except (KeyError, AttributeError, ValueError):
            raise UsageError(f"{source.name} is not a gitpaas backup (no {MANIFEST})") from None
        if manifest.get("format") != FORMAT:
            raise UsageError(f"{source.name} was written by another version of gitpaas (format {manifest.get('format')})")
        settings.home.parent.mkdir(parents=True, exist_ok=True)
        # beside the home, on its file system, so the extracted folder becomes the home in one rename
        with tempfile.TemporaryDirectory(dir=settings.home.parent, prefix=".gitpaas-restore-") as work:
            members = [m for m in archive.getmembers() if m.name.startswith("home/")]
            archive.extractall(work, members=members, filter="data")
            os.replace(Path(work) / "home", settings.home)
    settings.home.chmod(0o700)
    record = read_home_record(settings.home)
    write_json(settings.home / "home.json", {**record, "home": str(settings.home), "home_id": settings.home_id})
    done = []

    def did(line: str) -> None:
        done.append(line)
        output.info(line)

    for app in platform.apps.list():
        install_hooks(platform.apps.repo_path(app.name), settings)
    Accounts(settings).write_authorized_keys()
    if (settings.home / "ssh" / "sshd_config").exists() and record.get("home") != str(settings.home):
        did("git over SSH: run `gitpaas sshd:config` again (its configuration names the old home's files)")
    platform.router.ensure_running()
    dumps = {entry["name"]: {d["addon"]: d["backup"] for d in entry.get("addon_backups", [])}
             for entry in manifest.get("apps", [])}
    for app in platform.apps.list():
        try:
            did(f"{app.name}: {_bring_back(platform, app.name, dumps.get(app.name, {}))}")
        except GitpaasError as exc:  # one app that cannot come back must not keep the others down
            did(f"{app.name}: could not be brought back: {exc}")
    return done


def _dump(platform: Platform, addon: Addon, output: Output) -> dict:
    """A dump of the add-on's database for the archive; the one the previous archive took goes."""
    backups = BackupStore(platform.settings)
    older = [b for b in backups.list(addon.app) if b.addon == addon.name and b.kind == "home"]
    backup = addon_backups.capture_held(platform, addon, "home", output)
    for old in older:
        backups.delete(old)
    return {"addon": addon.name, "backup": backup.id}


def _addons_back(platform: Platform, name: str, dumps: dict[str, str]) -> list[str]:
    """Start the app's add-ons (made anew: the volumes stayed on the old machine) and load each
    PostgreSQL one from the dump taken for the archive."""
    done = []
    for addon in AddonStore(platform.settings).of_app(name):
        runtime.ready(platform, addon, NullOutput())
        if addon.name in dumps:
            addon_backups.restore(platform, name, dumps[addon.name], addon.name)
            done.append(f"{addon.name} loaded from {dumps[addon.name]}")
        else:
            done.append(f"{addon.name} started empty")
    return done


def _bring_back(platform: Platform, name: str, dumps: dict[str, str]) -> str:
    addons = _addons_back(platform, name, dumps)
    app = platform.apps.get(name)
    if app.current_release is None:
        return "restored (no release yet)" + (f"; {', '.join(addons)}" if addons else "")
    releases = platform.apps.releases(name)
    release = releases.get(app.current_release)
    _point_at_this_home(platform, name, release)
    image = release.image
    rebuilt = ""
    if not has_slugs(platform, release):
        if not release.commit:
            raise UsageError(f"v{release.version} records no commit to rebuild its slug from")
        built = _rebuild(platform, name, release.commit, stacks.of_record(release.stack))
        try:
            platform.slugs.tag(built.tag, image)
            for process_type, tag in built.process_images.items():
                platform.slugs.tag(tag, f"{image}-{process_type}")
            release.process_images = {process_type: f"{image}-{process_type}" for process_type in built.process_images}
        finally:
            for tag in {built.tag, *built.process_images.values()}:
                platform.slugs.untag(tag)
        rebuilt = f" (its slug rebuilt from commit {release.commit[:7]})"
    release.process_images = {process_type: platform.slugs.publish(tag)
                              for process_type, tag in release.process_images.items()}
    release.image = platform.slugs.publish(image)
    releases.save(release)
    for old in releases.walk_down(below=release.version):
        _point_at_this_home(platform, name, old)
        if old.eligible_for_rollback and not has_slugs(platform, old):
            old.slug_pruned, old.eligible_for_rollback = True, False
        releases.save(old)
    report = platform.scheduler.deploy(deployment(platform.settings, app, release, app.formation), NullOutput())
    running = ", ".join(f"{t}={q}" for t, q in app.formation.items()) or "nothing"
    return (f"v{release.version}{rebuilt}, running {running}"
            + (f" (started {', '.join(report.started)})" if report.started else "")
            + (f"; {', '.join(addons)}" if addons else ""))


def _point_at_this_home(platform: Platform, name: str, release: Release) -> None:
    """A restored release's images are this home's ``:vN`` (and ``:vN-TYPE``) tags, if any: never an
    image of the home the backup came from."""
    release.image = f"{platform.settings.image_repository(name)}:v{release.version}"
    release.process_images = {process_type: f"{release.image}-{process_type}" for process_type in release.process_images}


def _rebuild(platform: Platform, name: str, commit: str, stack: stacks.Stack) -> BuiltImage:
    """The slug of ``commit`` built again, on the stack it was built on (with heroku.yml's other images)."""
    source = PushedTree.open(platform.apps.repo_path(name), commit)
    image, _log, _stack = build_slug(platform, name, source, NullOutput(), stack=stack)
    return image


def _files_to_keep(home: Path) -> Iterator[Path]:
    """Every file and folder of the home but the ones left out, folders before what they hold."""
    for folder, folders, files in os.walk(home):
        here = Path(folder)
        relative = here.relative_to(home)
        folders[:] = sorted(name for name in folders if not _left_out(relative / name))
        if relative != Path("."):
            yield here
        for name in sorted(files):
            if not _left_out(relative / name) and not (here / name).is_symlink():
                yield here / name


def _left_out(relative: Path) -> bool:
    return any(relative.match(pattern) and len(relative.parts) == len(Path(pattern).parts) for pattern in _LEFT_OUT)
