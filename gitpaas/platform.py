"""The parts of one gitpaas home, and nothing else: the settings, the app store, the router, the
scheduler, the slug store and the builders — the way docker-py's ``DockerClient`` only hands out
its collections. What gitpaas *does* with them lives in the modules above: ``pipeline`` (a push),
``events`` (config changes, rollbacks, retries), ``operations`` (scale, restart, domains, …) and
``locks`` (serializing releases and settling the ones a crash left behind).

The parts that touch the Docker engine are made on first use, so commands that only read files
(``gitpaas apps``, ``releases``, ``config``) work without an engine and start without loading
docker-py. Tests pass their own parts in.
"""

from __future__ import annotations

from typing import Any, Sequence

from gitpaas.errors import EnvironmentProblem
from gitpaas.lazy import lazy
from gitpaas.settings import Settings
from gitpaas.store.apps import AppStore

# The router too is made on first use: a command that reads records needs no nginx (nor jinja2).
router_nginx = lazy("gitpaas.router.nginx")


class Platform:
    def __init__(self, settings: Settings, *, scheduler: Any = None, router: Any = None,
                 builders: Sequence[Any] | None = None, slugs: Any = None) -> None:
        self.settings = settings
        self.apps = AppStore(settings)
        self._scheduler = scheduler
        self._router = router
        self._builders = builders
        self._slugs = slugs
        self._engine: Any = None

    @property
    def router(self) -> router_nginx.NginxRouter:
        if self._router is None:
            self._router = router_nginx.NginxRouter(self.settings)
        return self._router

    @property
    def scheduler(self):
        """The scheduler the settings choose (``GITPAAS_SCHEDULER``; docker-local by default)."""
        if self._scheduler is None:
            if self.settings.scheduler == "swarm":
                from gitpaas.dockerutil import swarm_client
                from gitpaas.scheduler.swarm import SwarmScheduler
                self._scheduler = SwarmScheduler(swarm_client(self.settings.swarm_manager,
                                                              self.settings.environ.get("GITPAAS_SWARM_CERT_PATH", "")),
                                                 self.engine(),
                                                 self.settings, self.router)
                return self._scheduler
            if self.settings.scheduler != "docker-local":
                raise EnvironmentProblem(f"no scheduler {self.settings.scheduler!r} (gitpaas has docker-local and swarm)")
            # Imported here, on first use: it loads docker-py (see the module docstring).
            from gitpaas.scheduler.docker_local import DockerLocalScheduler
            self._scheduler = DockerLocalScheduler(self.engine(), self.settings, self.router)
        return self._scheduler

    @property
    def slugs(self):
        if self._slugs is None:
            from gitpaas.build.slugs import RegistrySlugs, SlugImages
            # on a swarm, a slug is published to the registry the nodes pull from
            store = RegistrySlugs if self.settings.scheduler == "swarm" else SlugImages
            self._slugs = store(self.engine(), self.settings)
        return self._slugs

    @property
    def builders(self) -> Sequence[Any]:
        """The builders, in the order they are tried: a Dockerfile wins; anything else goes to buildpacks."""
        if self._builders is None:
            from gitpaas.build.buildpack import BuildpackBuilder
            from gitpaas.build.dockerfile import DockerfileBuilder, HerokuYmlBuilder
            # heroku.yml wins over a bare Dockerfile, which wins over the buildpacks
            self._builders = [HerokuYmlBuilder(self.engine(), self.settings),
                              DockerfileBuilder(self.engine(), self.settings), BuildpackBuilder(self.engine(), self.settings)]
        return self._builders

    def engine(self):
        """The Docker client the engine-backed parts share (made, and the engine pinged, once)."""
        if self._engine is None:
            from gitpaas.dockerutil import docker_client
            self._engine = docker_client()
        return self._engine
