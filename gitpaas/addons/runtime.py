"""Running add-ons: their containers, made and started through the scheduler, the rule that
nothing of an app starts before its add-ons accept connections, and their passwords.

``ensure_ready`` is called before every release phase and every change of the formation (and by
``gitpaas boot``, add-ons first): each add-on's container is started if it is not running and
waited for until it accepts connections — so "a release command fails because the add-on is not
fully provisioned" cannot happen here. ``provision`` makes a new add-on: its record, credentials,
volume and container. ``rotate_password`` changes a password so that the record and the service
never disagree for good, whatever fails half-way.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from gitpaas.addons.plans import (
    POSTGRESQL,
    REDIS,
    Service,
    attachment_for,
    config_var,
    new_addon_name,
    new_password,
    scram_verifier,
    validate_addon_name,
)
from gitpaas.addons.store import Addon, AddonStore
from gitpaas.errors import EnvironmentProblem, UsageError
from gitpaas.output import Output
from gitpaas.platform import Platform
from gitpaas.scheduler import AddonSpec

#: seconds an add-on may take to accept connections (a first start initialises its data)
READY_TIMEOUT = 120.0


def spec(addon: Addon) -> AddonSpec:
    """What the scheduler needs to run ``addon``."""
    credentials = addon.credentials
    if addon.service == POSTGRESQL.name:
        env = {"POSTGRES_USER": credentials["user"], "POSTGRES_PASSWORD": credentials["password"],
               "POSTGRES_DB": credentials["database"]}
    else:
        env = {"REDIS_PASSWORD": credentials["password"]}
    argv, secrets = readiness(addon.service, credentials)
    return AddonSpec(app=addon.app, name=addon.name, id=addon.id, service=addon.service, env=env, readiness=argv,
                     secrets=secrets)


def readiness(service: str, credentials: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command run inside the add-on's container that succeeds once it accepts connections
    with these credentials, and the environment it runs with (a password is never in its argv)."""
    if service == POSTGRESQL.name:
        return (["pg_isready", "-q", "-h", "127.0.0.1", "-U", credentials["user"], "-d", credentials["database"]],
                {})
    return ["/bin/sh", "-c", "redis-cli ping | grep -q PONG"], {"REDISCLI_AUTH": credentials["password"]}


def ensure_ready(platform: Platform, app: str, output: Output, refresh: bool = False) -> list[str]:
    """Start every add-on of ``app`` that is not running and wait until each accepts connections;
    returns what it had to do, one line each (nothing when all were up). ``refresh`` (boot) also
    moves a container to its image rebuilt meanwhile (a Debian update, a new gitpaas)."""
    return [line for addon in AddonStore(platform.settings).of_app(app)
            if (line := ready(platform, addon, output, refresh))]


def ready(platform: Platform, addon: Addon, output: Output, refresh: bool = False) -> str | None:
    """Make sure ``addon`` runs and accepts connections; a line saying so when it was not running."""
    started = platform.scheduler.start_addon(spec(addon), output.info, refresh)
    if addon.rotating:  # a rotation was cut short: the record follows what the service accepts
        addon = settle_rotation(platform, addon)
    try:
        platform.scheduler.wait_addon(spec(addon), READY_TIMEOUT)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(f"{exc}; nothing of {addon.app} was started") from exc
    return f"started the add-on {addon.name} ({addon.attachment})" if started else None


def provision(platform: Platform, app: str, service: Service, output: Output, *, attachment: str | None = None,
              name: str | None = None) -> Addon:
    """A new add-on of ``service`` for ``app``: recorded, its container made and accepting
    connections. Runs under the app's release lock (the caller holds it)."""
    store = AddonStore(platform.settings)
    record = platform.apps.get(app)
    taken = {addon.attachment for addon in store.of_app(app)}
    attachment = attachment_for(service, taken, attachment)
    if platform.apps.config(app).get().get(config_var(attachment)) is not None:
        raise UsageError(f"{config_var(attachment)} is one of {app}'s own config vars: unset it first, or attach "
                         "the add-on under another name with --as")
    if name is not None:
        validate_addon_name(name)
        if any(addon.name == name for addon in store.all()):
            raise UsageError(f"an add-on is already called {name}")
    else:
        taken_names = {addon.name for addon in store.all()}
        name = next(candidate for candidate in iter(lambda: new_addon_name(service), None)
                    if candidate not in taken_names)
    addon = Addon(name=name, service=service.name, app=app, app_id=record.id, attachment=attachment,
                  credentials=_new_credentials(service))
    output.info(f"Provisioning {service.heroku_name} as {addon.name} ({addon.config_var})")
    store.save(addon)
    try:
        ready(platform, addon, output)
    except BaseException:
        platform.scheduler.remove_addon(spec(addon), keep_data=False)
        store.delete(addon)
        raise
    return addon


def rotate_password(platform: Platform, addon: Addon) -> Addon:
    """Give the add-on a new password; the caller holds the app's release lock. The new password
    is recorded (``rotating``) before the service gets it, and promoted after: a failure or a
    crash in between is settled by ``settle_rotation`` (now, or at the next ``ready``)."""
    store = AddonStore(platform.settings)
    addon.rotating = new_password()
    store.save(addon)
    try:
        _set_password(platform, addon, addon.rotating)
    except BaseException:
        settle_rotation(platform, addon)
        raise
    addon.credentials = {**addon.credentials, "password": addon.rotating}
    addon.rotating = None
    store.save(addon)
    return addon


def settle_rotation(platform: Platform, addon: Addon) -> Addon:
    """After a rotation that did not finish: record whichever password the service accepts."""
    if addon.rotating and _accepts(platform, addon, addon.rotating):
        addon.credentials = {**addon.credentials, "password": addon.rotating}
    addon.rotating = None
    AddonStore(platform.settings).save(addon)
    return addon


def _accepts(platform: Platform, addon: Addon, password: str) -> bool:
    """Whether the service takes ``password`` (over TCP, as an app connects)."""
    if addon.service == REDIS.name:
        status, out = platform.scheduler.addon_exec(spec(addon), ["redis-cli", "ping"], env={"REDISCLI_AUTH": password})
        return status == 0 and "PONG" in out
    credentials = addon.credentials
    status, _ = platform.scheduler.addon_exec(
        spec(addon), ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", credentials["user"], "-d", credentials["database"],
                      "-c", "SELECT 1"], env={"PGPASSWORD": password})
    return status == 0


def _set_password(platform: Platform, addon: Addon, password: str) -> None:
    """The service's password becomes ``password`` (Redis: also in its configuration file, or not
    at all; PostgreSQL: as a SCRAM verifier, so the password itself never reaches the server)."""
    if addon.service == REDIS.name:
        status, out = platform.scheduler.addon_exec(
            spec(addon), ["/bin/sh", "-c", 'printf %s "$NEW_PASSWORD" | redis-cli -x CONFIG SET requirepass'],
            env={"NEW_PASSWORD": password})
        if status == 0 and "OK" in out:
            status, out = platform.scheduler.addon_exec(spec(addon), ["redis-cli", "CONFIG", "REWRITE"],
                                                        env={"REDISCLI_AUTH": password})
            if not (status == 0 and "OK" in out):  # not kept across a restart: not changed at all
                platform.scheduler.addon_exec(
                    spec(addon), ["/bin/sh", "-c", 'printf %s "$OLD_PASSWORD" | redis-cli -x CONFIG SET requirepass'],
                    env={"REDISCLI_AUTH": password, "OLD_PASSWORD": addon.credentials["password"]})
        ok = status == 0 and "OK" in out
    else:
        credentials = addon.credentials
        status, out = platform.scheduler.addon_exec(
            spec(addon), ["/bin/sh", "-c", 'printf "ALTER ROLE \\"%s\\" PASSWORD \'%s\';\\n" "$PGUSER" "$VERIFIER" '
                                           '| psql -X -q -v ON_ERROR_STOP=1 -d "$PGDATABASE"'],
            env={"PGUSER": credentials["user"], "PGDATABASE": credentials["database"],
                 "VERIFIER": scram_verifier(password)})
        ok = status == 0
    if not ok:
        raise EnvironmentProblem(f"could not change the credentials of {addon.name}: {out.strip()[-200:]}")


def _new_credentials(service: Service) -> dict[str, str]:
    if service is REDIS:
        return {"password": new_password()}
    return {"user": f"u{_word()}", "password": new_password(), "database": f"d{_word()}"}


def _word() -> str:
    """Twelve lowercase letters and digits: a PostgreSQL name that needs no quoting."""
    return new_password()[:12].lower().replace("-", "x").replace("_", "x")


def client_argv(addon: Addon, command: str | None) -> list[str]:
    """The client of ``addon``'s service, as a session in its container runs it: psql (``command``:
    SQL to run, then exit) or redis-cli (``command``: one command's words). Passwords reach it through
    the environment (``spec(addon).secrets``; psql connects over the local socket), never in argv."""
    if addon.service == POSTGRESQL.name:
        credentials = addon.credentials
        return ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-U", credentials["user"], "-d", credentials["database"],
                *(["-c", command] if command is not None else [])]
    try:
        words = shlex.split(command) if command else []
    except ValueError as exc:
        raise UsageError(f"cannot read the command: {exc}") from None
    return ["redis-cli", *words]
