"""Slug images in the engine: each release's ``gitpaas-<home>/APP:vN`` tag."""

from __future__ import annotations

import docker
from docker.errors import ImageNotFound, NotFound


class SlugImages:
    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    def tag(self, source: str, target: str) -> None:
        repository, _, tag = target.rpartition(":")
        self.client.images.get(source).tag(repository, tag)

    def untag(self, tag: str) -> None:
        """Remove one tag; the image itself goes only when no other tag or container needs it."""
        try:
            self.client.images.remove(tag, noprune=False)
        except (ImageNotFound, NotFound):
            pass

    def exists(self, tag: str | None) -> bool:
        if not tag:
            return False
        try:
            self.client.images.get(tag)
        except (ImageNotFound, NotFound):
            return False
        return True

    def image_id(self, tag: str) -> str | None:
        try:
            return self.client.images.get(tag).id
        except (ImageNotFound, NotFound):
            return None
