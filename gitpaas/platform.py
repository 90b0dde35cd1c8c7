"""The services the shells (CLI, git hook, later the API) call: one object per gitpaas home.

It owns the parts — the store, the Docker client, the scheduler, the router, the builders — and
creates the ones that touch the outside world only when first needed, so ``gitpaas apps`` works
without a Docker engine.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from typing import Any, Callable, Iterator


from gitpaas import labels, procfile
from gitpaas.errors import PushRefused, UsageError
from gitpaas.git.repo import init_bare, install_hooks, read_ref, wait_for_noted_ref_update
from gitpaas.pipeline import ZERO_SHA, converge, route
from gitpaas.names import validate_host
from gitpaas.output import NullOutput, Output
from gitpaas.release import Release, local_user
from gitpaas.scheduler import Process
from gitpaas.settings import Settings, read_home_record
from gitpaas.store.apps import App, AppStore
from gitpaas.store.config import ConfigStore
from gitpaas.store.files import write_json

MAX_QUANTITY = 100


class Platform:
    def __init__(self, settings: Settings, *, docker_client=None, scheduler=None, router=None,
                 builders=None, slugs=None) -> None:
        self.settings = settings
        self.apps = AppStore(settings)
        self._docker = docker_client
        self._scheduler = scheduler
        self._router = router
        self._builders = builders
        self._slugs = slugs
        #: e-mail of the account acting (API and remote pushes); None: the local OS user
        self.actor: str | None = None
        #: called with each release as soon as it is recorded pending (the API answers with it)
        self.on_release_created: Callable[[Release], None] | None = None

    # --- parts, made on first use --------------------------------------------------------
    @property
    def config(self) -> "_AppConfig":
        return _AppConfig(self.apps)

    @property
    def docker(self):
        if self._docker is None:
            from gitpaas.dockerutil import docker_client
            self._docker = docker_client()
        return self._docker

    @property
    def scheduler(self):
        if self._scheduler is None:
            from gitpaas.scheduler.docker_local import DockerLocalScheduler
            self._scheduler = DockerLocalScheduler(self.docker, self.settings)
        return self._scheduler

    @property
    def router(self):
        if self._router is None:
            from gitpaas.router import NginxRouter
            self._router = NginxRouter(self.settings)
        return self._router

    @property
    def slugs(self):
        if self._slugs is None:
            from gitpaas.build.slugs import SlugImages
            self._slugs = SlugImages(self.docker)
        return self._slugs

    @property
    def builders(self):
        if self._builders is None:
            from gitpaas.build.buildpack import BuildpackBuilder
            from gitpaas.build.dockerfile import DockerfileBuilder
            # A Dockerfile wins; anything else goes to the buildpacks.
            self._builders = [DockerfileBuilder(self.docker), BuildpackBuilder(self.docker, self.settings)]
        return self._builders

    def actor_user(self) -> dict[str, str]:
        """The release record's ``user``: the acting account, or the local OS user."""
        if self.actor:
            return {"email": self.actor, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{self.actor}"))}
        return local_user()

    # --- the home ------------------------------------------------------------------------
    def init_home(self) -> None:
        """Create the home and record its router settings, so later commands find the same router."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        if not read_home_record(self.settings.home):
            write_json(self.settings.home / "home.json", {
                "home": str(self.settings.home), "domain": self.settings.domain,
                "http_port": self.settings.http_port, "https_port": self.settings.https_port,
                "home_id": self.settings.home_id,
            })

    # --- apps ----------------------------------------------------------------------------
    def create_app(self, name: str, owner: str | None = None) -> App:
        self.init_home()
        app = self.apps.create(name)
        if owner:
            app.owner = owner
            self.apps.save(app)
        try:
            init_bare(self.apps.repo_path(name))
            install_hooks(self.apps.repo_path(name), self.settings)
        except BaseException:
            self.apps.delete(name)
            raise
        return app

    def can_access(self, email: str | None, name: str) -> bool:
        """May the account ``email`` use app ``name``? (None = the server's operator: always.)"""
        if email is None:
            return True
        app = self.apps.get(name)
        return email == app.owner or email in app.collaborators

    def destroy_app(self, name: str) -> None:
        self.apps.get(name)
        with self.apps.release_lock(name):
            self.scheduler.destroy_app(name)
            if self.router.app_config_path(name).exists():
                self.router.remove_app(name)
            self.apps.delete(name)

    def hosts(self, name: str) -> list[str]:
        """Every host name the router sends to this app: APP.$GITPAAS_DOMAIN, then its custom domains."""
        return [self.settings.app_host(name), *self.apps.get(name).domains]

    def add_domain(self, name: str, host: str) -> list[str]:
        host = validate_host(host)
        with self.release_lock(name):
            for other in self.apps.list():
                if host in self.hosts(other.name):
                    raise UsageError(f"{host} is already routed to {other.name}" + (
                        "" if other.name != name else " (it is one of its domains)"))
            app = self.apps.get(name)
            app.domains.append(host)
            self.apps.save(app)
            self._reroute(name)
            return self.hosts(name)

    def remove_domain(self, name: str, host: str) -> list[str]:
        with self.release_lock(name):
            app = self.apps.get(name)
            if host not in app.domains:
                raise UsageError(f"{host} is not a domain of {name} (see `gitpaas domains -a {name}`)")
            app.domains.remove(host)
            self.apps.save(app)
            self._reroute(name)
            return self.hosts(name)

    def _reroute(self, name: str) -> None:
        """Point the router's entry for ``name`` at the processes it already runs (new host names)."""
        app = self.apps.get(name)
        if app.current_release is None:
            return
        route(self, name, [p for p in self.scheduler.processes(name)
                           if p.release_version == app.current_release and not p.one_off])

    def git_url(self, name: str) -> str:
        return str(self.apps.repo_path(name))

    def app_info(self, name: str) -> dict[str, Any]:
        app = self.apps.get(name)
        return {
            "id": app.id, "name": app.name, "git_url": self.git_url(name), "web_url": self.settings.web_url(name),
            "created_at": app.created_at, "updated_at": app.updated_at,
            "current_release": app.current_release and f"v{app.current_release}",
            "formation": [{"type": t, "quantity": q, "command": self._command(name, t)}
                          for t, q in app.formation.items()],
            "domains": app.domains, "retention": app.retention, "postdeploy": app.postdeploy,
        }

    def _command(self, name: str, process_type: str) -> str | None:
        release = self.current_release(name)
        return release.process_types.get(process_type) if release else None

    def current_release(self, name: str) -> Release | None:
        app = self.apps.get(name)
        return self.apps.releases(name).get(app.current_release) if app.current_release else None

    def clear_build_cache(self, name: str, output: Output | None = None) -> int:
        """Empty the app's build cache (the next build starts cold); returns the bytes freed. Under the
        release lock, so never while one of the app's builds is using it."""
        from gitpaas.build import cache

        self.apps.get(name)
        with self.release_lock(name, output):
            return cache.clear(self.apps.app_dir(name) / "cache")

    # --- serialization and recovery -----------------------------------------------------
    @contextlib.contextmanager
    def release_lock(self, name: str, output: Output | None = None) -> Iterator[None]:
        """Hold the app's release lock (saying so if it must wait), then settle orphaned releases."""
        from gitpaas.recovery import recover

        output = output or NullOutput()
        with self.apps.release_lock(name, on_wait=lambda: output.info(
                f"Waiting for another release of {name} to finish…")):
            recover(self, name, output, locked=True)
            yield

    def recover_all(self, output: Output) -> None:
        """Settle every app's orphaned pending releases (run before each CLI command)."""
        from gitpaas.recovery import recover

        for app in self.apps.list():
            recover(self, app.name, output, locked=False)

    def announce(self, name: str, release: Release) -> None:
        """Tell the app's webhooks (and e-mail) that ``release`` succeeded or failed. Never blocks."""
        try:
            from gitpaas.notify import announce_release
        except ImportError:
            return
        path = self.apps.releases(name).output_path(release.version)
        try:
            tail = "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])
        except OSError:
            tail = ""
        announce_release(self.settings, name, release, tail)

    # --- git -----------------------------------------------------------------------------
    def check_ref_unmoved(self, name: str, ref: str, old: str) -> None:
        """Refuse a push whose branch moved while it waited for the release lock."""
        wait_for_noted_ref_update(self.apps.app_dir(name), self.apps.repo_path(name))
        current = read_ref(self.apps.repo_path(name), ref) or ZERO_SHA
        if current != old:
            raise PushRefused(f"{ref.removeprefix('refs/heads/')} moved to {current[:7]} while this push waited; "
                              "fetch, merge and push again")

    # --- formation -----------------------------------------------------------------------
    def processes(self, name: str) -> list[Process]:
        self.apps.get(name)
        return self.scheduler.processes(name)

    def scale(self, name: str, changes: dict[str, int], output: Output | None = None) -> dict[str, int]:
        """Change quantities and apply them to the running release (no new release)."""
        app = self.apps.get(name)
        for process_type, quantity in changes.items():
            if process_type == procfile.RELEASE:
                raise UsageError("the release process runs once per release and cannot be scaled")
            if not 0 <= quantity <= MAX_QUANTITY:
                raise UsageError(f"quantity for {process_type} must be between 0 and {MAX_QUANTITY}")
        with self.release_lock(name):
            app = self.apps.get(name)
            release = self.current_release(name)
            if release is None:
                raise UsageError(f"{name} has no release yet: deploy it with git push first")
            unknown = sorted(set(changes) - set(app.formation))
            if unknown:
                raise UsageError(f"no process type {unknown[0]!r} in v{release.version}'s Procfile "
                                 f"(it has: {', '.join(app.formation) or 'none'})")
            formation = {**app.formation, **changes}
            converge(self, app, release, formation, output or NullOutput())
            app.formation = formation
            self.apps.save(app)
        return formation

    def restart(self, name: str, target: str | None = None, output: Output | None = None) -> list[str]:
        """Replace processes (all, one type, or one ``type.N``) with fresh ones, with no downtime."""
        with self.release_lock(name, output):
            app = self.apps.get(name)
            release = self.current_release(name)
            if release is None:
                raise UsageError(f"{name} has no release yet: deploy it with git push first")
            chosen = [p for p in self.scheduler.processes(name) if not p.one_off
                      and target in (None, p.type, p.name)]
            if not chosen:
                raise UsageError(f"no process {target!r} is running for {name} (see `gitpaas ps -a {name}`)")
            names = {p.name for p in chosen}
            converge(self, app, release, app.formation, output or NullOutput(),
                     replace=lambda process: process.name in names)
            return sorted(names)

    def stop_process(self, name: str, dyno: str) -> str:
        """``ps:stop``: a one-off (``release.1234``) is killed — a release command then fails as
        "release command stopped"; a formation process is restarted, as Heroku does."""
        matches = [p for p in self.processes(name) if p.name == dyno]
        if not matches:
            raise UsageError(f"no process {dyno!r} is running for {name} (see `gitpaas ps -a {name}`)")
        process = matches[0]
        if process.one_off:
            self.scheduler.kill(process)
            return "stopped"
        self.restart(name, dyno)
        return "restarted"

    # --- retention -----------------------------------------------------------------------
    def set_retention(self, name: str, keep: int | None) -> list[int]:
        if keep is not None and keep < 1:
            raise UsageError("--keep must be at least 1 (the current release)")
        with self.release_lock(name):
            app = self.apps.get(name)
            app.retention = keep
            self.apps.save(app)
            return self.apply_retention(name)

    def apply_retention(self, name: str) -> list[int]:
        """Prune the slug tags of releases beyond the newest N that nothing runs; keep every record."""
        app = self.apps.get(name)
        if app.retention is None:
            return []
        releases = self.apps.releases(name)
        in_use = {p.release_version for p in self.scheduler.processes(name)}
        if app.current_release:
            in_use.add(app.current_release)
        pruned = []
        for version in releases.versions()[::-1][app.retention:]:
            release = releases.get(version)
            if release.slug_pruned:
                break  # pruning goes oldest-last, so everything older is pruned already
            if version in in_use:
                continue
            self.slugs.untag(release.image)
            release.slug_pruned = True
            release.eligible_for_rollback = False
            releases.save(release)
            pruned.append(version)
        return pruned

    # --- cleanup of a whole home (tests, uninstall) --------------------------------------
    def purge_home(self) -> None:
        """Remove every container, image and network of this home, stop its router, delete its files."""
        from docker.errors import NotFound

        client = self.docker
        selector = labels.filters(labels.for_home(self.settings))
        for kind in ("containers", "images", "networks"):
            collection = getattr(client, kind)
            found = collection.list(all=True, filters=selector) if kind == "containers" else collection.list(
                filters=selector)
            for item in found:
                try:  # something else (the background retirer) may have removed it meanwhile
                    item.remove(force=True) if kind != "networks" else item.remove()
                except NotFound:
                    pass
        self.router.stop()
        shutil.rmtree(self.settings.home, ignore_errors=True)


class _AppConfig:
    """``platform.config.get(app)`` / ``.replace(app, values)``: each app's config vars store."""

    def __init__(self, apps: AppStore) -> None:
        self.apps = apps

    def get(self, name: str) -> dict[str, str]:
        return ConfigStore(self.apps.app_dir(name)).get()

    def replace(self, name: str, values: dict[str, str]) -> None:
        ConfigStore(self.apps.app_dir(name)).replace(values)
