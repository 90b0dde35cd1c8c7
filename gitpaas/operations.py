"""What a team member does to an app besides releasing it: create and destroy it, scale, restart
and stop its processes, route domains to it, share it, prune its slugs, clear its build cache.

Each operation takes the platform (the parts) and the names it acts on, holds the app's release
lock where it changes what runs, and asks the scheduler for a whole deployment
(``gitpaas.formation``) rather than container by container. The shells (CLI, API) call these.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from pathlib import Path

from gitpaas import forkserver, procfile, sizes, stacks
from gitpaas.accounts import Accounts
from gitpaas.addons import backups as addon_backups
from gitpaas.addons import runtime as addon_runtime
from gitpaas.addons.plans import SERVICES
from gitpaas.addons.store import AddonStore, Backup
from gitpaas.appview import current_release
from gitpaas.build import cache
from gitpaas.errors import ProcessNotFound, UsageError
from gitpaas.formation import check_quantities, deployment, hosts, release_spec
from gitpaas.git.repo import init_bare, install_hooks
from gitpaas.identity import Actor
from gitpaas.locks import release_lock
from gitpaas.names import covers, validate_custom_domain
from gitpaas.output import NullOutput, Output
from gitpaas.platform import Platform
from gitpaas.release import Release
from gitpaas.retention import apply_retention
from gitpaas.scheduler import OneOff, Process
from gitpaas.settings import entry_points, entry_points_outdated, read_home_record
from gitpaas.store.apps import App
from gitpaas.store.pipelines import PipelineStore
from gitpaas.store.files import write_json

# --- the home --------------------------------------------------------------------------------

def init_home(platform: Platform) -> None:
    """Create the home and record its router settings, so later commands find the same router."""
    settings = platform.settings
    if not settings.home.exists():
        # Private: release output echoes config vars, and build logs, repositories and the router's
        # access log are nobody else's business either.
        settings.home.mkdir(mode=0o700, parents=True)
    if not read_home_record(settings.home):
        write_json(settings.home / "home.json", {
            "home": str(settings.home), "domain": settings.domain, "http_port": settings.http_port,
            "https_port": settings.https_port, "home_id": settings.home_id, "scheduler": settings.scheduler,
            **({"swarm_manager": settings.swarm_manager, "swarm_registry": settings.swarm_registry}
               if settings.scheduler == "swarm" else {}),
            **entry_points(),
        })


def record_api_url(platform: Platform, url: str) -> None:
    """Where the API is published (``gitpaas server --publish``): what links in webhook events
    (a release's signed output URL) point at."""
    record = read_home_record(platform.settings.home)
    if record.get("api_url") != url:
        write_json(platform.settings.home / "home.json", {**record, "api_url": url})


def _make_private(home: Path) -> None:
    """What a home made before homes were private holds (release output echoes config vars) is made
    the owner's alone: folders 0700, files without their group and other bits."""
    for folder, _folders, files in os.walk(home):
        for path in [Path(folder), *(Path(folder) / name for name in files)]:
            try:
                mode = path.lstat().st_mode
                if not stat.S_ISLNK(mode) and mode & 0o077:
                    path.chmod(stat.S_IMODE(mode) & 0o700)
            except OSError:
                continue  # removed meanwhile


def refresh_entry_points(platform: Platform) -> bool:
    """Rewrite every app's git hook and the SSH keys' forced commands when the home was made by a
    gitpaas whose commands differ (an upgrade, or a new Python); True if anything was rewritten.
    Cheap when nothing changed: one small file read."""
    record = read_home_record(platform.settings.home)
    if not entry_points_outdated(record):
        return False
    _make_private(platform.settings.home)
    for app in platform.apps.list():
        install_hooks(platform.apps.repo_path(app.name), platform.settings)
    accounts = Accounts(platform.settings)
    if accounts.keys():
        accounts.write_authorized_keys()
    write_json(platform.settings.home / "home.json", {**record, **entry_points()})
    return True


def purge_home(platform: Platform) -> None:
    """Stop the home's fork server, remove every container, image and network of this home, stop its
    router, delete its files; each step is tried even when one before it failed (a swarm manager
    away), then the first failure is raised."""
    failed: list[Exception] = []
    forkserver.stop(platform.settings.home)
    for step in (lambda: platform.scheduler.purge(), lambda: platform.slugs.purge(), lambda: platform.router.stop()):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 — raised below, after the other steps
            failed.append(exc)
    shutil.rmtree(platform.settings.home, ignore_errors=True)
    if failed:
        raise failed[0]


# --- apps ------------------------------------------------------------------------------------

def create_app(platform: Platform, name: str, owner: str | None = None, stack: str | None = None) -> App:
    """A new app, on ``stack`` (a name; the server's default stack when None)."""
    build_stack = stacks.get(stack).name if stack else None
    init_home(platform)
    host = platform.settings.app_host(name)
    for other in platform.apps.list():
        if host in other.domains:  # (a domain added before gitpaas refused names under its own)
            raise UsageError(f"{host} is a custom domain of {other.name}: choose another name")
    app = platform.apps.create(name, build_stack)
    if owner:
        app.owner = owner
        platform.apps.save(app)
    try:
        init_bare(platform.apps.repo_path(name))
        install_hooks(platform.apps.repo_path(name), platform.settings)
    except BaseException:
        platform.apps.delete(name)
        raise
    return app


def destroy_app(platform: Platform, name: str, output: Output | None = None, final_backups: bool = True) -> list[Backup]:
    """Remove the app, its processes, slugs, route and records, and its place in a pipeline; its
    add-ons too, each PostgreSQL one keeping a final backup in the home (listed by ``pg:backups``
    until deleted) unless ``final_backups`` is off (a review app: disposable). Returns those."""
    output = output or NullOutput()
    with release_lock(platform, name):
        addons = AddonStore(platform.settings).of_app(name)
        # Every final backup first: if one cannot be kept, nothing has been destroyed yet.
        kept = [backup for addon in addons
                if final_backups and (backup := addon_backups.final(platform, addon, output))]
        PipelineStore(platform.settings).forget_app(name)  # first: a pipeline never names a half-destroyed app
        for addon in addons:
            platform.scheduler.remove_addon(addon_runtime.spec(addon), keep_data=False)
        platform.scheduler.destroy(name)
        platform.slugs.destroy(name)
        platform.router.remove_app(name)
        platform.apps.delete(name)
    return kept


def can_access(platform: Platform, actor: Actor, name: str) -> bool:
    """May ``actor`` use app ``name``? The server's operator may use every app."""
    app = platform.apps.get(name)
    return actor.may_use(app.owner, app.collaborators)


def visible_apps(platform: Platform, actor: Actor) -> list[App]:
    """The apps ``actor`` may use (the operator: all), as ``apps`` and ``GET /apps`` list them."""
    return [app for app in platform.apps.list() if actor.may_use(app.owner, app.collaborators)]


def set_stack(platform: Platform, name: str, stack: str, output: Output | None = None) -> App:
    """Make ``stack`` the app's build stack: its next build (a push) uses it; what runs is unchanged."""
    chosen = stacks.get(stack)
    with release_lock(platform, name, output):
        app = platform.apps.get(name)
        app.build_stack = chosen.name
        platform.apps.save(app)
    return app


def set_maintenance(platform: Platform, name: str, on: bool, output: Output | None = None) -> bool:
    """Put the app in maintenance mode (its router answers the maintenance page, 503) or take it
    out; its processes keep running either way. Returns whether anything changed."""
    with release_lock(platform, name, output):
        app = platform.apps.get(name)
        changed = app.maintenance != on
        platform.router.set_maintenance(name, on)
        app.maintenance = on
        platform.apps.save(app)  # (the record and the router agree from here, whatever follows)
        release = current_release(platform, name)
        if release is not None:  # routes the app anew: a route written by an older gitpaas may lack the switch
            platform.scheduler.deploy(deployment(platform.settings, app, release, app.formation), output or NullOutput())
        return changed


def add_collaborator(platform: Platform, name: str, email: str, output: Output | None = None) -> None:
    with release_lock(platform, name, output):
        app = platform.apps.get(name)
        if email == app.owner or email in app.collaborators:
            raise UsageError(f"{email} already has access to {name}")
        app.collaborators.append(email)
        platform.apps.save(app)


def remove_collaborator(platform: Platform, name: str, email: str, output: Output | None = None) -> str:
    wanted = email.strip().lower()
    with release_lock(platform, name, output):
        app = platform.apps.get(name)
        if wanted == app.owner:
            raise UsageError(f"{wanted} owns {name}; an owner's access cannot be removed")
        if wanted not in app.collaborators:
            raise UsageError(f"{wanted} is not a collaborator on {name} (see `gitpaas access -a {name}`)")
        app.collaborators.remove(wanted)
        platform.apps.save(app)
    return wanted


def clear_build_cache(platform: Platform, name: str, output: Output | None = None) -> int:
    """Empty the app's build cache (the next build starts cold); returns the bytes freed. Under the
    release lock, so never while one of the app's builds is using it."""
    with release_lock(platform, name, output):
        (platform.apps.app_dir(name) / cache.BASE_RECORD).unlink(missing_ok=True)  # (the next build: from the stack)
        return cache.clear(platform.apps.app_dir(name) / "cache")


# --- domains ---------------------------------------------------------------------------------

def app_hosts(platform: Platform, name: str) -> list[str]:
    return hosts(platform.settings, platform.apps.get(name))


def add_domain(platform: Platform, name: str, host: str, output: Output | None = None) -> list[str]:
    host = validate_custom_domain(host, platform.settings.domain)
    with release_lock(platform, name, output):
        for other in platform.apps.list():
            if host in hosts(platform.settings, other):
                raise UsageError(f"{host} is already routed to {other.name}" + (
                    "" if other.name != name else " (it is one of its domains)"))
            taken = next((domain for domain in other.domains if covers(domain, host)), None)
            if taken and other.name != name:  # an exact name would win over the wildcard: a takeover
                raise UsageError(f"{host} is covered by {taken}, a domain of {other.name}")
        app = platform.apps.get(name)
        _change_domains(platform, app, [*app.domains, host], output or NullOutput())
        return hosts(platform.settings, app)


def remove_domain(platform: Platform, name: str, host: str, output: Output | None = None) -> list[str]:
    with release_lock(platform, name, output):
        app = platform.apps.get(name)
        if host not in app.domains:
            raise UsageError(f"{host} is not a domain of {name} (see `gitpaas domains -a {name}`)")
        _change_domains(platform, app, [d for d in app.domains if d != host], output or NullOutput())
        return hosts(platform.settings, app)


def _change_domains(platform: Platform, app: App, domains: list[str], output: Output) -> None:
    """Route the app's formation on its new host names (nothing running is restarted), then record
    them: if the router cannot take them, the app keeps its old ones."""
    app.domains = domains
    release = current_release(platform, app.name)
    if release is not None:
        platform.scheduler.deploy(deployment(platform.settings, app, release, app.formation), output)
    platform.apps.save(app)


# --- the formation ---------------------------------------------------------------------------

def processes(platform: Platform, name: str) -> list[Process]:
    platform.apps.get(name)
    return platform.scheduler.processes(name)


def scale(platform: Platform, name: str, changes: dict[str, int], output: Output | None = None) -> dict[str, int]:
    """Change quantities and apply them to the running release (no new release)."""
    return update_formation(platform, name, quantities=changes, output=output)[0]


def update_formation(platform: Platform, name: str, *, quantities: dict[str, int] | None = None,
                     sizes_wanted: dict[str, str] | None = None,
                     output: Output | None = None) -> tuple[dict[str, int], dict[str, str]]:
    """Change quantities and dyno sizes together, all or nothing: everything is checked before
    anything changes, then one deploy (no new release) applies both. Returns the formation and
    every type's size. A type whose size changed gets fresh processes, with no downtime;
    ``release`` may be sized once the app has a release phase (from its next release command on)."""
    quantities = dict(quantities or {})
    check_quantities(quantities)
    wanted = {process_type: sizes.parse(size) for process_type, size in (sizes_wanted or {}).items()}
    with release_lock(platform, name, output):
        app = platform.apps.get(name)
        release = _released(platform, name)
        for process_type in [*quantities, *wanted]:
            if process_type == procfile.RELEASE and process_type in wanted:
                if not release.process_types.get(procfile.RELEASE):
                    raise UsageError(f"{name} has no release phase yet: set the release size after a release "
                                     "whose Procfile has a release command")
            elif process_type not in app.formation:
                raise UsageError(f"no process type {process_type!r} in v{release.version}'s Procfile "
                                 f"(it has: {', '.join(app.formation) or 'none'})")
        app.formation = {**app.formation, **quantities}
        app.sizes = {**app.sizes, **wanted}
        addon_runtime.ensure_ready(platform, name, output or NullOutput())  # new processes find their database
        platform.scheduler.deploy(deployment(platform.settings, app, release, app.formation), output or NullOutput())
        platform.apps.save(app)
        return dict(app.formation), type_sizes(app, release)


def restart(platform: Platform, name: str, target: str | None = None, output: Output | None = None) -> list[str]:
    """Replace processes (all, one type, or one ``type.N``) with fresh ones, with no downtime."""
    with release_lock(platform, name, output):
        app = platform.apps.get(name)
        release = _released(platform, name)
        chosen = {p.name for p in platform.scheduler.processes(name)
                  if not p.one_off and not p.retiring and target in (None, p.type, p.name)}
        if not chosen:
            if target is None:
                raise UsageError(f"{name} has no processes running (scale it with `gitpaas ps:scale web=1 -a {name}`)")
            raise ProcessNotFound(name, target)
        addon_runtime.ensure_ready(platform, name, output or NullOutput())
        platform.scheduler.deploy(deployment(platform.settings, app, release, app.formation, replace=chosen),
                                  output or NullOutput())
        return sorted(chosen)


def stop_process(platform: Platform, name: str, dyno: str, output: Output | None = None) -> str:
    """``ps:stop``: a one-off (``release.1234``) is killed — a release command then fails as
    "release command stopped"; a formation process is restarted, as Heroku does."""
    matches = [p for p in processes(platform, name) if p.name == dyno and not p.retiring]
    if not matches:
        raise ProcessNotFound(name, dyno)
    if matches[0].one_off:
        platform.scheduler.stop(name, dyno)
        return "stopped"
    restart(platform, name, dyno, output)
    return "restarted"


def resize(platform: Platform, name: str, changes: dict[str, str], output: Output | None = None) -> dict[str, str]:
    """``ps:type web=standard-2x``: set process types' dyno sizes (see ``update_formation``)."""
    return update_formation(platform, name, sizes_wanted=changes, output=output)[1]


def type_sizes(app: App, release: Release | None) -> dict[str, str]:
    """Every process type's dyno size: the formation's, then ``release`` when the app has a release phase."""
    types = list(app.formation) + ([procfile.RELEASE] if release and release.process_types.get(procfile.RELEASE) else [])
    return {process_type: sizes.get(app.sizes.get(process_type)).name for process_type in types}


def _released(platform: Platform, name: str) -> Release:
    release = current_release(platform, name)
    if release is None:
        raise UsageError(f"{name} has no release yet: deploy it with git push first")
    return release


# --- one-off dynos ---------------------------------------------------------------------------

#: what a one-off's extra environment may not set: what gitpaas gives every process itself
_RESERVED_ENV = {"DYNO", "PORT"}


def run_env(pairs: str | None) -> dict[str, str]:
    """``--env "K=V;K2=V2"`` (the Heroku CLI's form) as a dict; refuses what cannot be read."""
    env: dict[str, str] = {}
    for pair in (pairs or "").split(";"):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise UsageError(f"cannot read {pair.strip()!r} in --env: write KEY=VALUE pairs separated by ';'")
        env[key] = value
    return env


def start_run(platform: Platform, name: str, command: str, *, size: str | None = None,
              env: dict[str, str] | None = None, tty: bool = False, attach: bool = True,
              output: Output | None = None):
    """A one-off dyno (``run.NNNN``) of the app's current release, with its config vars, its add-ons
    (started if they are not) and ``env`` on top: attached, a session to start (the scheduler's
    RunSession); detached, started at once, its output in the app's logs. Returns (name, session)."""
    if not command.strip():
        raise UsageError("what should it run? usage: gitpaas run -a APP -- COMMAND")
    extra = dict(env or {})
    reserved = sorted(set(extra) & _RESERVED_ENV)
    if reserved:
        raise UsageError(f"{', '.join(reserved)} is set by gitpaas for every process; a one-off cannot set it")
    chosen = sizes.parse(size) if size else None
    release = _released(platform, name)
    addon_runtime.ensure_ready(platform, name, output or NullOutput())
    taken = {p.name for p in platform.scheduler.processes(name)}
    number = next(n for n in iter(lambda: 1000 + secrets.randbelow(9000), None) if f"run.{n}" not in taken)
    spec = release_spec(release, AddonStore(platform.settings).config_vars(name))
    job = OneOff(release=spec, type="run", number=number, command=command,
                 size=chosen or platform.apps.get(name).sizes.get("run"))
    return job.name, platform.scheduler.run(job, tty=tty, attach=attach, env=extra)


def open_addon_session(platform: Platform, name: str, service: str, addon_name: str | None, command: str | None,
                       tty: bool):
    """A session of the add-on's client (psql, redis-cli) in its container, to attach to: the
    add-on is made ready under the app's lock (one destroyed meanwhile is not brought back); the
    session holds no lock, so deploys go on while it is open. Returns (the add-on's name, session)."""
    with release_lock(platform, name):
        platform.apps.get(name)
        addon = AddonStore(platform.settings).of_service(name, SERVICES[service], addon_name)
        addon_runtime.ready(platform, addon, NullOutput())
    session = platform.scheduler.addon_attach(addon_runtime.spec(addon), addon_runtime.client_argv(addon, command), tty)
    return addon.name, session


# --- retention -------------------------------------------------------------------------------

def set_retention(platform: Platform, name: str, keep: int | None) -> list[int]:
    if keep is not None and keep < 1:
        raise UsageError("--keep must be at least 1 (the current release)")
    with release_lock(platform, name):
        app = platform.apps.get(name)
        app.retention = keep
        platform.apps.save(app)
        return apply_retention(platform, name)
