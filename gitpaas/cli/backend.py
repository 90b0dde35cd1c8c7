"""Where a command's data comes from: this server's home (``Local``), or a gitpaas server's Platform
API when the user is logged in to one (``gitpaas.client.remote.Remote``). Both answer in the same
shapes — releases as :class:`Release`, processes as :class:`Process`, an app as ``app_info`` — so
every command renders one way, and ``--json`` is the same on the server and off it.

A release a command creates (config:set, rollback, retry) tells its story as it happens: here on
the terminal from the pipeline itself; remotely from the release's output stream."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from gitpaas import appview
from gitpaas.client.outcomes import Access, ConfigOutcome, confirm_backup_deletion
from gitpaas.client.terminal import Channel
from gitpaas.errors import BootFailed, ConfigChangeFailed, ReleaseFailed, UsageError
from gitpaas.identity import Actor
from gitpaas.lazy import lazy
from gitpaas.output import StreamOutput
from gitpaas.platform import Platform
from gitpaas.release import PENDING, Release
from gitpaas.scheduler import Process, RunSession

# Loaded on first use (gitpaas.lazy): a command that reads a record needs none of these.
events = lazy("gitpaas.events")
operations = lazy("gitpaas.operations")
pipelines = lazy("gitpaas.pipelines")
reviewapps = lazy("gitpaas.reviewapps")
accounts = lazy("gitpaas.accounts")
addon_backups = lazy("gitpaas.addons.backups")
lifecycle = lazy("gitpaas.addons.lifecycle")
plans = lazy("gitpaas.addons.plans")
addon_store = lazy("gitpaas.addons.store")
drains = lazy("gitpaas.notify.drains")
notify_store = lazy("gitpaas.notify.store")


class Backend(Protocol):
    #: what the commands act on, for titles: ``/var/lib/gitpaas`` (a home) or ``https://paas.example.com``
    where: str
    remote: bool

    def apps(self) -> list[dict[str, Any]]: ...
    def create_app(self, name: str, stack: str | None, owner: str | None) -> dict[str, Any]: ...
    def app(self, name: str) -> dict[str, Any]: ...
    def destroy_app(self, name: str) -> list[dict[str, str]]: ...
    def config(self, app: str) -> tuple[dict[str, str], dict[str, str]]: ...
    def change_config(self, app: str, set_values: dict[str, str], unset_keys: list[str]) -> ConfigOutcome: ...
    def releases(self, app: str, limit: int) -> tuple[list[Release], list[str]]: ...
    def release(self, app: str, version: int | None) -> Release: ...
    def output(self, app: str, release: Release) -> Iterator[str]: ...
    def rollback(self, app: str, version: int | None) -> Release: ...
    def retry(self, app: str) -> Release: ...
    def retention(self, app: str, keep: int | None) -> list[int]: ...
    def processes(self, app: str) -> tuple[str, list[Process]]: ...
    def scale(self, app: str, wanted: dict[str, int]) -> dict[str, int]: ...
    def stop(self, app: str, dyno: str) -> str: ...
    def restart(self, app: str, target: str | None) -> list[str]: ...
    def sizes(self, app: str, wanted: dict[str, str]) -> tuple[dict[str, str], dict[str, int]]: ...
    def logs(self, app: str, lines: int, follow: bool) -> Iterator[str]: ...
    def domains(self, app: str) -> list[str]: ...
    def add_domain(self, app: str, host: str) -> list[str]: ...
    def remove_domain(self, app: str, host: str) -> list[str]: ...
    def access(self, app: str) -> Access: ...
    def add_access(self, app: str, email: str) -> str: ...
    def remove_access(self, app: str, email: str) -> str: ...
    def webhooks(self, app: str) -> list[dict[str, str]]: ...
    def add_webhook(self, app: str, url: str, secret: str | None) -> tuple[str, str]: ...
    def remove_webhook(self, app: str, id_or_url: str) -> dict[str, str]: ...
    def deliveries(self, app: str, limit: int) -> list[dict[str, Any]]: ...
    def stacks(self, app: str) -> tuple[str, str]: ...
    def set_stack(self, app: str, stack: str) -> tuple[str, str]: ...
    def addons(self, app: str | None) -> list[dict[str, Any]]: ...
    def addon(self, name: str, app: str | None) -> dict[str, Any]: ...
    def create_addon(self, app: str, plan: str, attachment: str | None, name: str | None) -> tuple[dict, int | None]: ...
    def destroy_addon(self, app: str, name: str) -> tuple[dict, int | None, str | None]: ...
    def addon_session(self, app: str, service: str, name: str | None, command: str | None, tty: bool) -> Channel: ...
    def backups(self, app: str | None) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]: ...
    def capture_backup(self, app: str, name: str | None) -> tuple[dict[str, Any], dict[str, Any]]: ...
    def download_backup(self, app: str, backup_id: str, target: Path) -> int: ...
    def delete_backup(self, app: str, backup_id: str, confirm: str | None) -> dict[str, Any]: ...
    def restore_backup(self, app: str, backup_id: str, name: str | None) -> dict[str, Any]: ...
    def schedule_backups(self, app: str, name: str | None, at: str | None, retain: int) -> dict[str, Any]: ...
    def maintenance(self, app: str) -> bool: ...
    def set_maintenance(self, app: str, on: bool) -> bool: ...
    def drains(self, app: str) -> list[dict[str, Any]]: ...
    def add_drain(self, app: str, url: str) -> dict[str, Any]: ...
    def remove_drain(self, app: str, id_or_url: str) -> dict[str, Any]: ...
    def run(self, app: str, command: str, size: str | None, env: dict[str, str], tty: bool) -> tuple[str, Channel]: ...
    def run_detached(self, app: str, command: str, size: str | None, env: dict[str, str]) -> str: ...
    def pipelines(self) -> list[dict[str, Any]]: ...
    def pipeline(self, name: str) -> dict[str, Any]: ...
    def create_pipeline(self, name: str) -> dict[str, Any]: ...
    def couple(self, name: str, app: str, stage: str) -> dict[str, Any]: ...
    def move(self, app: str, stage: str) -> str: ...
    def uncouple(self, app: str) -> str: ...
    def destroy_pipeline(self, name: str) -> str: ...
    def diff(self, app: str) -> tuple[str | None, list[dict[str, Any]]]: ...
    def promote(self, app: str, to: list[str] | None, announce: Announce) -> list[dict[str, Any]]: ...
    def enable_review_apps(self, name: str, app: str, autodestroy: bool, stale_days: int | None) -> dict[str, Any]: ...
    def disable_review_apps(self, name: str) -> dict[str, Any]: ...
    def review_apps(self, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]: ...
    def review_config(self, name: str, set_values: dict[str, str] | None = None,
                      unset_keys: list[str] | None = None) -> dict[str, str]: ...


#: told a promotion's source (``{"app", "version", "slug", "commit"}``) and targets before they release
Announce = Callable[[dict[str, Any], list[str]], None]


class SessionChannel:
    """A one-off dyno on this server's engine, as the terminal pump reaches it."""

    def __init__(self, session: RunSession) -> None:
        self.session = session

    def read(self) -> tuple[int, bytes] | None:
        return self.session.read()

    def write(self, data: bytes) -> None:
        self.session.write(data)

    def close_stdin(self) -> None:
        self.session.close_stdin()

    def resize(self, rows: int, columns: int) -> None:
        self.session.resize(rows, columns)

    def stop(self) -> None:
        self.session.stop()

    def finish(self) -> int:
        try:
            return self.session.wait()
        finally:
            self.session.close()


def release_output() -> StreamOutput:
    """Where a release created from the CLI tells its story: the terminal, as it happens."""
    return StreamOutput(sys.stdout)


def config_failure(app: str, previous: int | None, exc: ReleaseFailed | BootFailed) -> ConfigChangeFailed:
    reason = exc.reason if isinstance(exc, ReleaseFailed) else str(exc)
    return ConfigChangeFailed(app, exc.version, reason, previous, getattr(exc, "exit_status", None))


class Local:
    """This server's home, as its operator (who may use every app)."""

    remote = False

    def __init__(self, platform: Platform, actor: Actor) -> None:
        self.platform = platform
        self.actor = actor
        self.where = str(platform.settings.home)

    # --- apps ----------------------------------------------------------------------------------
    def apps(self) -> list[dict[str, Any]]:
        return [appview.app_info(self.platform, app.name) for app in self.platform.apps.list()]

    def create_app(self, name: str, stack: str | None, owner: str | None) -> dict[str, Any]:
        if owner:
            owner = accounts.Accounts(self.platform.settings).get_user(owner)["email"]
        operations.create_app(self.platform, name, owner=owner, stack=stack)
        return appview.app_info(self.platform, name)

    def app(self, name: str) -> dict[str, Any]:
        return appview.app_info(self.platform, name, placement=True)

    def destroy_app(self, name: str) -> list[dict[str, str]]:
        kept = reviewapps.destroy_with_review_apps(self.platform, name, release_output())
        return [{"id": backup.id, "addon": backup.addon} for backup in kept]

    # --- config --------------------------------------------------------------------------------
    def config(self, app: str) -> tuple[dict[str, str], dict[str, str]]:
        self.platform.apps.get(app)
        store = addon_store.AddonStore(self.platform.settings)
        owners = {addon.config_var: addon.name for addon in store.of_app(app)}
        return store.with_own(app, self.platform.apps.config(app).get()), owners

    def change_config(self, app: str, set_values: dict[str, str], unset_keys: list[str]) -> ConfigOutcome:
        previous = self.platform.apps.get(app).current_release
        try:
            result = events.change_config(self.platform, app, self.actor, release_output(),
                                          set_values=set_values, unset_keys=unset_keys)
        except (ReleaseFailed, BootFailed) as exc:
            raise config_failure(app, previous, exc) from exc
        return ConfigOutcome(result.changed, result.pending.release.version if result.pending else None)

    # --- releases ------------------------------------------------------------------------------
    def releases(self, app: str, limit: int) -> tuple[list[Release], list[str]]:
        self.platform.apps.get(app)
        store = self.platform.apps.releases(app)
        found = store.list(limit=limit)
        return found, [f"{damaged.record} is damaged ({damaged.reason}) and left out of this list"
                       for damaged in store.skipped]

    def release(self, app: str, version: int | None) -> Release:
        self.platform.apps.get(app)
        releases = self.platform.apps.releases(app)
        if version is None:
            latest = releases.latest()
            if latest is None:
                raise UsageError(f"{app} has no releases yet")
            return latest
        return releases.get(version)

    def output(self, app: str, release: Release) -> Iterator[str]:
        releases = self.platform.apps.releases(app)
        path = releases.output_path(release.version)
        offset = 0
        while True:
            pending = releases.get(release.version).status == PENDING  # read before the file: no lost tail
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except FileNotFoundError:
                data = b""
            offset += len(data)
            if data:
                yield data.decode("utf-8", "replace")
            if not pending:
                return
            time.sleep(0.2)

    def rollback(self, app: str, version: int | None) -> Release:
        return events.rollback(self.platform, app, self.actor, release_output(), version)

    def retry(self, app: str) -> Release:
        return events.retry(self.platform, app, self.actor, release_output())

    def retention(self, app: str, keep: int | None) -> list[int]:
        return operations.set_retention(self.platform, app, keep)

    # --- processes -----------------------------------------------------------------------------
    def processes(self, app: str) -> tuple[str, list[Process]]:
        return self.platform.apps.get(app).id, operations.processes(self.platform, app)

    def scale(self, app: str, wanted: dict[str, int]) -> dict[str, int]:
        return operations.scale(self.platform, app, wanted, release_output())

    def stop(self, app: str, dyno: str) -> str:
        return operations.stop_process(self.platform, app, dyno, release_output())

    def restart(self, app: str, target: str | None) -> list[str]:
        return operations.restart(self.platform, app, target, release_output())

    def sizes(self, app: str, wanted: dict[str, str]) -> tuple[dict[str, str], dict[str, int]]:
        if wanted:
            current = operations.resize(self.platform, app, wanted, release_output())
        else:
            current = operations.type_sizes(self.platform.apps.get(app), appview.current_release(self.platform, app))
        return current, dict(self.platform.apps.get(app).formation)

    def logs(self, app: str, lines: int, follow: bool) -> Iterator[str]:
        self.platform.apps.get(app)
        return self.platform.scheduler.logs(app, lines, follow)

    # --- domains and access --------------------------------------------------------------------
    def domains(self, app: str) -> list[str]:
        return operations.app_hosts(self.platform, app)

    def add_domain(self, app: str, host: str) -> list[str]:
        return operations.add_domain(self.platform, app, host)

    def remove_domain(self, app: str, host: str) -> list[str]:
        return operations.remove_domain(self.platform, app, host)

    def access(self, app: str) -> Access:
        record = self.platform.apps.get(app)
        return Access(record.owner, list(record.collaborators))

    def add_access(self, app: str, email: str) -> str:
        user = accounts.Accounts(self.platform.settings).get_user(email)
        operations.add_collaborator(self.platform, app, user["email"], StreamOutput(sys.stderr))
        return user["email"]

    def remove_access(self, app: str, email: str) -> str:
        return operations.remove_collaborator(self.platform, app, email, StreamOutput(sys.stderr))

    # --- webhooks ------------------------------------------------------------------------------
    def _notifications(self, app: str) -> notify_store.Notifications:
        self.platform.apps.get(app)
        return notify_store.Notifications.for_app(self.platform.settings, app)

    def webhooks(self, app: str) -> list[dict[str, str]]:
        return [hook.public() for hook in self._notifications(app).webhooks()]

    def add_webhook(self, app: str, url: str, secret: str | None) -> tuple[str, str]:
        hook = self._notifications(app).add_webhook(url, secret)
        return hook.id, hook.secret

    def remove_webhook(self, app: str, id_or_url: str) -> dict[str, str]:
        return self._notifications(app).remove_webhook(id_or_url).public()

    def deliveries(self, app: str, limit: int) -> list[dict[str, Any]]:
        return self._notifications(app).deliveries(limit)

    # --- stacks --------------------------------------------------------------------------------
    def stacks(self, app: str) -> tuple[str, str]:
        stack, build_stack = appview.app_stacks(self.platform.apps.get(app),
                                                   appview.current_release(self.platform, app))
        return stack.name, build_stack.name

    def set_stack(self, app: str, stack: str) -> tuple[str, str]:
        operations.set_stack(self.platform, app, stack)
        return self.stacks(app)

    # --- add-ons -------------------------------------------------------------------------------
    def addons(self, app: str | None) -> list[dict[str, Any]]:
        store = addon_store.AddonStore(self.platform.settings)
        if app:
            self.platform.apps.get(app)
        return [addon_store.cli_record(addon) for addon in (store.of_app(app) if app else store.all())]

    def addon(self, name: str, app: str | None) -> dict[str, Any]:
        addon = addon_store.AddonStore(self.platform.settings).get(name, app)
        record = addon_store.cli_record(addon)
        if addon.service == plans.POSTGRESQL.name:
            record["backups_kept"] = sum(1 for b in addon_store.BackupStore(self.platform.settings).list(addon.app)
                                         if b.addon == addon.name)
        return record

    def create_addon(self, app: str, plan: str, attachment: str | None, name: str | None) -> tuple[dict, int | None]:
        self.platform.apps.get(app)
        change = lifecycle.create(self.platform, app, self.actor, release_output(), plan, attachment=attachment,
                                  name=name)
        return addon_store.cli_record(change.addon), change.release.version if change.release else None

    def destroy_addon(self, app: str, name: str) -> tuple[dict, int | None, str | None]:
        change = lifecycle.destroy(self.platform, app, self.actor, release_output(), name)
        return (addon_store.cli_record(change.addon), change.release.version if change.release else None,
                change.backup.id if change.backup else None)

    def addon_session(self, app: str, service: str, name: str | None, command: str | None, tty: bool) -> Channel:
        _, session = operations.open_addon_session(self.platform, app, service, name, command, tty)
        session.start()
        return SessionChannel(session)

    # --- PostgreSQL backups ---------------------------------------------------------------------
    def backups(self, app: str | None) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
        if app:
            self.platform.apps.get(app)
        live = {(a.app, a.name) for a in addon_store.AddonStore(self.platform.settings).all()}
        return [b.to_dict() for b in addon_store.BackupStore(self.platform.settings).list(app)], live

    def capture_backup(self, app: str, name: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        backup = addon_backups.capture(self.platform, app, name)
        return backup.to_dict(), self.addon(backup.addon, app)

    def download_backup(self, app: str, backup_id: str, target: Path) -> int:
        backup = addon_store.BackupStore(self.platform.settings).get(addon_store.validate_backup_id(backup_id), app)
        return addon_backups.download(self.platform, backup, target)

    def delete_backup(self, app: str, backup_id: str, confirm: str | None) -> dict[str, Any]:
        store = addon_store.BackupStore(self.platform.settings)
        backup = store.get(addon_store.validate_backup_id(backup_id), app)
        confirm_backup_deletion(app, backup.id, confirm)
        store.delete(backup)
        return backup.to_dict()

    def restore_backup(self, app: str, backup_id: str, name: str | None) -> dict[str, Any]:
        addon = addon_backups.restore(self.platform, app, addon_store.validate_backup_id(backup_id), name, release_output())
        return addon_store.cli_record(addon)

    def schedule_backups(self, app: str, name: str | None, at: str | None, retain: int) -> dict[str, Any]:
        return addon_store.cli_record(addon_backups.set_schedule(self.platform, app, name, at, retain))

    # --- maintenance and drains ----------------------------------------------------------------
    def maintenance(self, app: str) -> bool:
        return self.platform.apps.get(app).maintenance

    def set_maintenance(self, app: str, on: bool) -> bool:
        return operations.set_maintenance(self.platform, app, on, StreamOutput(sys.stderr))

    def drains(self, app: str) -> list[dict[str, Any]]:
        self.platform.apps.get(app)
        store = drains.Drains(self.platform.settings, app)
        status = store.status()
        return [{**asdict(drain), "status": status.get(drain.id, {})} for drain in store.list()]

    def add_drain(self, app: str, url: str) -> dict[str, Any]:
        self.platform.apps.get(app)
        return asdict(drains.Drains(self.platform.settings, app).add(url))

    def remove_drain(self, app: str, id_or_url: str) -> dict[str, Any]:
        self.platform.apps.get(app)
        return asdict(drains.Drains(self.platform.settings, app).remove(id_or_url))

    # --- one-off dynos -------------------------------------------------------------------------
    def run(self, app: str, command: str, size: str | None, env: dict[str, str], tty: bool) -> tuple[str, Channel]:
        name, session = operations.start_run(self.platform, app, command, size=size, env=env, tty=tty,
                                             output=StreamOutput(sys.stderr))
        try:
            session.start()
        except BaseException:
            session.close()
            raise
        return name, SessionChannel(session)

    def run_detached(self, app: str, command: str, size: str | None, env: dict[str, str]) -> str:
        name, _ = operations.start_run(self.platform, app, command, size=size, env=env, attach=False,
                                       output=StreamOutput(sys.stderr))
        return name

    # --- pipelines and review apps -------------------------------------------------------------
    def pipelines(self) -> list[dict[str, Any]]:
        return [pipelines.record(self.platform, p, self.actor) for p in pipelines.visible(self.platform, self.actor)]

    def pipeline(self, name: str) -> dict[str, Any]:
        return pipelines.record(self.platform, pipelines.get(self.platform, self.actor, name), self.actor)

    def create_pipeline(self, name: str) -> dict[str, Any]:
        return pipelines.record(self.platform, pipelines.create(self.platform, self.actor, name), self.actor)

    def couple(self, name: str, app: str, stage: str) -> dict[str, Any]:
        pipelines.couple(self.platform, self.actor, name, app, stage)
        return self.pipeline(name)

    def move(self, app: str, stage: str) -> str:
        return pipelines.move(self.platform, self.actor, app, stage)[0].name

    def uncouple(self, app: str) -> str:
        return pipelines.uncouple(self.platform, self.actor, app)[0].name

    def destroy_pipeline(self, name: str) -> str:
        return reviewapps.destroy_pipeline(self.platform, self.actor, name, release_output()).name

    def diff(self, app: str) -> tuple[str | None, list[dict[str, Any]]]:
        source, differences = pipelines.diff(self.platform, self.actor, app)
        return source, [pipelines.difference_record(d) for d in differences]

    def promote(self, app: str, to: list[str] | None, announce: Announce) -> list[dict[str, Any]]:
        plan = pipelines.begin_promotion(self.platform, self.actor, app, to)
        release = plan.promotion.source["release"]
        announce({"app": app, "version": release["version"], "slug": release["slug"], "commit": release["commit"]},
                 [target.app for target in plan.promotion.targets])
        output = release_output()

        def output_for(target, made: Release) -> StreamOutput:
            output.stage(f"Promoting to {target.app}: v{made.version}")
            return output
        promotion = pipelines.run_promotion(self.platform, self.actor, plan, output_for)
        return [pipelines.target_record(target) for target in promotion.targets]

    def enable_review_apps(self, name: str, app: str, autodestroy: bool, stale_days: int | None) -> dict[str, Any]:
        enabled = reviewapps.enable(self.platform, self.actor, name, app, autodestroy=autodestroy, stale_days=stale_days)
        return pipelines.record(self.platform, enabled, self.actor)

    def disable_review_apps(self, name: str) -> dict[str, Any]:
        return pipelines.record(self.platform, reviewapps.disable(self.platform, self.actor, name), self.actor)

    def review_apps(self, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        found = pipelines.get(self.platform, self.actor, name)
        return (pipelines.record(self.platform, found, self.actor),
                [reviewapps.record(self.platform, app) for app in reviewapps.of_pipeline(self.platform, found)])

    def review_config(self, name: str, set_values: dict[str, str] | None = None,
                      unset_keys: list[str] | None = None) -> dict[str, str]:
        if set_values or unset_keys:
            return reviewapps.set_config(self.platform, self.actor, name, set_values or {}, unset_keys or [])
        return reviewapps.config_of(self.platform, self.actor, name)
