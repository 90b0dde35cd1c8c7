"""The slug store: where each release's slug image lives, under its own ``gitpaas-<home>/APP:vN`` tag.

Every release has its own tag, so pruning an old release's tag never touches a newer release that
shares the same slug (a rollback, a config change). ``publish`` makes a tag runnable by the
scheduler: with docker-local the engine that built it runs it, so the tag itself is the answer; a
Swarm scheduler's store pushes it to the registry its nodes pull from.
"""

from __future__ import annotations

from typing import Protocol

import docker
from docker.errors import ImageNotFound, NotFound

from gitpaas import labels
from gitpaas.dockerutil import engine_call
from gitpaas.settings import Settings


class SlugStore(Protocol):
    def tag(self, source: str, target: str) -> None: ...
    def publish(self, tag: str) -> str: ...
    def untag(self, tag: str) -> None: ...
    def exists(self, tag: str | None) -> bool: ...
    def destroy(self, app: str) -> None: ...
    def purge(self) -> None: ...


class SlugImages:
    """Slugs as images in the local engine."""

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    @engine_call("tagging the slug")
    def tag(self, source: str, target: str) -> None:
        repository, _, tag = target.rpartition(":")
        self.client.images.get(source).tag(repository, tag)

    def publish(self, tag: str) -> str:
        """The reference the scheduler runs: the local tag itself (docker-local runs on this engine)."""
        return tag

    @engine_call("removing a slug tag")
    def untag(self, tag: str) -> None:
        """Remove one tag, even while a container (one being retired, say) still runs the image: the
        image itself goes only once no tag and no container needs it."""
        try:
            self.client.images.remove(tag, force=True, noprune=False)
        except (ImageNotFound, NotFound):
            pass  # pruned already

    @engine_call("looking up a slug")
    def exists(self, tag: str | None) -> bool:
        if not tag:
            return False
        try:
            self.client.images.get(tag)
        except (ImageNotFound, NotFound):
            return False
        return True

    @engine_call("removing an app's slugs")
    def destroy(self, app: str) -> None:
        """Remove the app's tags, one by one: an image goes with its last tag, so a slug promoted to
        another app stays that app's — even one tagged for it while this runs. An image the app
        built that no tag names any more goes too."""
        repository = self.settings.image_repository(app) + ":"
        built_here = {image.id for image in self.client.images.list(filters=labels.filters(labels.for_app(self.settings, app)))}
        for image in self.client.images.list(filters=labels.filters(labels.for_home(self.settings))):
            mine = [tag for tag in image.tags if tag.startswith(repository)]
            for tag in mine:
                self.untag(tag)
            if not image.tags and image.id in built_here:
                try:
                    self.client.images.remove(image.id, force=True)
                except NotFound:
                    pass  # an image that shared layers went with another one

    @engine_call("removing the home's images")
    def purge(self) -> None:
        self._remove(labels.for_home(self.settings))

    def _remove(self, wanted: dict[str, str]) -> None:
        for image in self.client.images.list(filters=labels.filters(wanted)):
            try:
                self.client.images.remove(image.id, force=True)
            except NotFound:
                pass  # an image that shared layers went with another one
