"""The slug store: where each release's slug image lives, under its own ``gitpaas-<home>/APP:vN`` tag.

Every release has its own tag, so pruning an old release's tag never touches a newer release that
shares the same slug (a rollback, a config change). ``publish`` makes a tag runnable by the
scheduler: with docker-local the engine that built it runs it, so the tag itself is the answer; a
Swarm scheduler's store pushes it to the registry its nodes pull from.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Protocol

import docker
import requests
from docker.errors import ImageNotFound, NotFound

from gitpaas import labels
from gitpaas.dockerutil import engine_call
from gitpaas.errors import EnvironmentProblem
from gitpaas.settings import Settings


class SlugStore(Protocol):
    def tag(self, source: str, target: str) -> None: ...
    def publish(self, tag: str) -> str: ...
    def untag(self, tag: str, kept: Collection[str] = ()) -> None: ...
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
        self.client.api.tag(source, repository, tag)  # (ImageNotFound when there is no ``source``)

    def publish(self, tag: str) -> str:
        """The reference the scheduler runs: the local tag itself (docker-local runs on this engine)."""
        return tag

    @engine_call("removing a slug tag")
    def untag(self, tag: str, kept: Collection[str] = ()) -> None:
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
        for image in _newest_first(self.client.images.list(filters=labels.filters(labels.for_home(self.settings)))):
            mine = [tag for tag in image.tags if tag.startswith(repository)]
            for tag in mine:
                self.untag(tag)
            if not image.tags and image.id in built_here:
                _remove_image(self.client, image.id)

    @engine_call("removing the home's images")
    def purge(self) -> None:
        self._remove(labels.for_home(self.settings))

    def _remove(self, wanted: dict[str, str]) -> None:
        for image in _newest_first(self.client.images.list(filters=labels.filters(wanted))):
            _remove_image(self.client, image.id)


def _newest_first(images: list) -> list:
    """A warm buildpack build's slug is a child of the previous one (``build/buildpack.py``): the
    engine removes a parent only after its children, so children go first."""
    return sorted(images, key=lambda image: image.attrs.get("Created", ""), reverse=True)


def _remove_image(client: docker.DockerClient, image_id: str) -> None:
    try:
        client.images.remove(image_id, force=True)
    except NotFound:
        pass  # an image that shared layers went with another one (a child takes its untagged parents)


#: where every engine on a machine looks for a registry's CA (``/etc/docker/certs.d/HOST:PORT/ca.crt``)
CERTS_D = "/etc/docker/certs.d"
MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))


class RegistrySlugs(SlugImages):
    """Slugs for a swarm: built and tagged in the local engine like docker-local's, and published
    by pushing them to the registry the nodes pull from (``REGISTRY/gitpaas-<home>/APP:vN``, the
    reference the release records). Pruning a release's slug deletes its manifest there too, unless
    another release's tag shares it (a rollback, a config change)."""

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        super().__init__(client, settings)
        if not settings.swarm_registry:
            raise EnvironmentProblem("the swarm scheduler needs a registry: gitpaas scheduler:set swarm --registry HOST:PORT")
        self.registry = settings.swarm_registry
        self.prefix = self.registry + "/"

    @engine_call("pushing the slug to the registry")
    def publish(self, tag: str) -> str:
        if tag.startswith(self.prefix):
            return tag  # published already (a release that reuses an earlier release's slug)
        remote = self.prefix + tag
        repository, _, version = remote.rpartition(":")
        self.client.images.get(tag).tag(repository, version)
        try:
            for progress in self.client.api.push(repository, tag=version, stream=True, decode=True):
                if progress.get("error"):
                    raise EnvironmentProblem(f"could not push the slug to the registry {self.registry}: {progress['error']}")
        finally:
            try:
                self.client.images.remove(remote, noprune=True)  # (the local tag stays the working one)
            except (ImageNotFound, NotFound):
                pass
        return remote

    def tag(self, source: str, target: str) -> None:
        """Tag a slug for another release; a published one is found by its local tag (kept as long
        as its release is), else pulled back from the registry."""
        if source.startswith(self.prefix):
            local = source[len(self.prefix):]
            if not super().exists(local):
                self._pull(source, local)
            source = local
        super().tag(source, target)

    @engine_call("pulling a slug back from the registry")
    def _pull(self, remote: str, local: str) -> None:
        repository, _, version = remote.rpartition(":")
        image = self.client.images.pull(repository, tag=version)
        local_repository, _, local_version = local.rpartition(":")
        image.tag(local_repository, local_version)
        self.client.images.remove(remote, noprune=True)

    def check(self) -> None:
        """Raise unless the registry answers its API."""
        self._request("GET", "/v2/")

    def exists(self, tag: str | None) -> bool:
        if tag and tag.startswith(self.prefix):
            return self._digest(*self._split(tag)) is not None
        return super().exists(tag)

    def untag(self, tag: str, kept: Collection[str] = ()) -> None:
        """Remove a slug; a published one's manifest goes from the registry too, unless one of the
        ``kept`` slugs (the releases retention keeps) is the same image: the registry deletes
        manifests, not tags, and a rollback or a config change reuses its release's slug."""
        if not tag.startswith(self.prefix):
            return super().untag(tag)
        super().untag(tag[len(self.prefix):])
        repository, version = self._split(tag)
        digest = self._digest(repository, version)
        if digest is None:
            return
        staying = [self._split(other)[1] for other in kept if other.startswith(f"{self.prefix}{repository}:")]
        if any(self._digest(repository, other) == digest for other in staying if other != version):
            return
        self._request("DELETE", f"/v2/{repository}/manifests/{digest}", ok=(202, 404))

    def destroy(self, app: str) -> None:
        super().destroy(app)
        self._delete_repository(self.settings.image_repository(app))

    def purge(self) -> None:
        super().purge()
        mine = f"gitpaas-{self.settings.home_id}/"
        for repository in self._catalog():
            if repository.startswith(mine):
                self._delete_repository(repository)

    def _catalog(self, page: int = 1000) -> list[str]:
        """Every repository the registry lists, page by page."""
        found: list[str] = []
        while True:
            after = f"&last={found[-1]}" if found else ""
            listed = self._request("GET", f"/v2/_catalog?n={page}{after}").json().get("repositories") or []
            found += listed
            if len(listed) < page:
                return found

    # --- the registry's HTTP API (distribution's /v2) ------------------------------------------
    def _split(self, reference: str) -> tuple[str, str]:
        repository, _, version = reference[len(self.prefix):].rpartition(":")
        return repository, version

    def _delete_repository(self, repository: str) -> None:
        digests = {self._digest(repository, tag) for tag in self._tags(repository)}
        for digest in digests - {None}:
            self._request("DELETE", f"/v2/{repository}/manifests/{digest}", ok=(202, 404))

    def _tags(self, repository: str) -> list[str]:
        answer = self._request("GET", f"/v2/{repository}/tags/list", ok=(200, 404))
        return (answer.json().get("tags") or []) if answer.status_code == 200 else []

    def _digest(self, repository: str, version: str) -> str | None:
        answer = self._request("HEAD", f"/v2/{repository}/manifests/{version}", ok=(200, 404),
                               headers={"Accept": MANIFEST_TYPES})
        return answer.headers.get("Docker-Content-Digest") if answer.status_code == 200 else None

    def _request(self, method: str, path: str, ok: tuple[int, ...] = (200,), headers: dict | None = None):
        ca = os.path.join(CERTS_D, self.registry, "ca.crt")
        scheme, verify = ("https", ca) if os.path.exists(ca) else ("http", True)
        try:
            answer = requests.request(method, f"{scheme}://{self.registry}{path}", headers=headers, verify=verify,
                                      timeout=30)
        except requests.RequestException as exc:
            raise EnvironmentProblem(f"cannot reach the registry {self.registry} ({exc.__class__.__name__})") from exc
        if answer.status_code not in ok:
            raise EnvironmentProblem(f"the registry {self.registry} answered {answer.status_code} to {method} {path}")
        if method == "GET" and answer.status_code == 200:
            try:
                answer.json()
            except ValueError as exc:
                raise EnvironmentProblem(f"the registry {self.registry} answered {method} {path} with no JSON") from exc
        return answer
