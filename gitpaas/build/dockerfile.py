"""Build an app with the Docker engine: a ``Dockerfile`` at its root, or the images its
``heroku.yml`` names (one per ``build.docker`` entry, each with its folder as the build context)."""

from __future__ import annotations

import collections
import json
import tempfile
from collections.abc import Iterator
from typing import IO

import docker

from gitpaas import herokuyml
from gitpaas.build import buildkit
from gitpaas.build.base import BuildRequest, BuiltImage, text_context
from gitpaas.build.buildpack_protocol import route_line
from gitpaas.build.stack import ensure_stack
from gitpaas.dockerutil import ENGINE_ERRORS, describe
from gitpaas.errors import BuildFailed
from gitpaas.git.tree import PushedTree
from gitpaas.lines import iter_lines
from gitpaas.output import Output
from gitpaas.settings import Settings
from gitpaas.store.files import open_private

LOG_TAIL_LINES = 30


class DockerfileBuilder:
    name = "a Dockerfile"

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def detect(self, source: PushedTree) -> bool:
        return source.has("Dockerfile")

    def build(self, request: BuildRequest) -> BuiltImage:
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open_private(request.log_path) as log:
            build = _DockerBuild(self.client, self.settings, request, log)
            image_id, size = build.image("Dockerfile", "", None, request.build_args, request.tag)
        return BuiltImage(image_id=image_id, tag=request.tag, size=size, runs_image_command=True)


class HerokuYmlBuilder:
    """heroku.yml's ``build.docker``: an image per entry (entries naming the same Dockerfile and
    target share one), ``build.config`` as build arguments; ``run`` and ``release`` say which
    image each process type runs and with what command. The Procfile is not read."""

    name = "heroku.yml"

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def detect(self, source: PushedTree) -> bool:
        return source.has(herokuyml.FILE)

    def build(self, request: BuildRequest) -> BuiltImage:
        manifest = request.heroku_yml or herokuyml.parse(request.source.read_text(herokuyml.FILE) or "")
        # Only the images some process type (or the release phase) runs in; web's is the release's own
        # (its :vN tag), the others get tags of their own.
        used = manifest.images_used
        builds = sorted((b for b in manifest.builds if b.process_type in used), key=lambda b: b.process_type != "web")
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        tags: dict[str, str] = {}
        built: dict[tuple[str, str | None], tuple[str, str, int]] = {}
        try:
            with open_private(request.log_path) as log:
                build = _DockerBuild(self.client, self.settings, request, log)
                for entry in builds:
                    key = (entry.dockerfile, entry.target)
                    if key not in built:
                        tag = request.tag if not built else f"{request.tag}-{entry.process_type}"
                        request.output.stage(f"Building {entry.process_type}'s image from {entry.dockerfile}"
                                             + (f" (target {entry.target})" if entry.target else ""))
                        dockerfile = entry.dockerfile[len(entry.context):].lstrip("/")
                        image_id, size = build.image(dockerfile, entry.context, entry.target,
                                                     {**manifest.build_args, **request.build_args}, tag)
                        built[key] = (tag, image_id, size)
                    tags[entry.process_type] = built[key][0]
        except BaseException:
            for tag, _id, _size in built.values():  # a later image failed: none of this build stays tagged
                _untag(self.client, tag)
            raise
        main_tag, main_id, main_size = built[(builds[0].dockerfile, builds[0].target)]
        process_types: dict[str, str | None] = {name: process.command for name, process in manifest.processes.items()}
        images = {name: tags[process.image] for name, process in manifest.processes.items()}
        if manifest.release_command:
            process_types["release"] = manifest.release_command
            images["release"] = tags[manifest.release_image]
        return BuiltImage(
            image_id=main_id, tag=main_tag, size=main_size, default_process_types=process_types,
            runs_image_command=True, replaces_procfile=True,
            process_images={name: tag for name, tag in images.items() if tag != main_tag})


def _remove_if_untagged(client: docker.DockerClient, image: str) -> None:
    """Remove an image this build made, unless something names it (a Dockerfile that adds nothing
    to its FROM builds that very image, which is not the build's to remove)."""
    try:
        if not client.images.get(image).tags:
            client.images.remove(image, noprune=False)
    except ENGINE_ERRORS:
        pass  # in use, or gone


def _untag(client: docker.DockerClient, tag: str) -> None:
    try:
        client.images.remove(tag, noprune=False)
    except ENGINE_ERRORS:
        pass  # gone already, or in use: the app's next build or destroy removes it by label


class _DockerBuild:
    """``docker build`` of a folder of the pushed tree, its output streamed into the push and the log."""

    def __init__(self, client: docker.DockerClient, settings: Settings, request: BuildRequest, log: IO[str]) -> None:
        self.client, self.settings, self.request, self.log = client, settings, request, log
        self.tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)

    def failed(self, reason: str) -> BuildFailed:
        return BuildFailed(reason, "\n".join(self.tail), log_path=str(self.request.log_path))

    def image(self, dockerfile: str, context: str, target: str | None, build_args: dict[str, str],
              tag: str) -> tuple[str, int]:
        """Build ``dockerfile`` (relative to ``context``, a folder of the tree) into ``tag``: its id and size."""
        request = self.request
        path = f"{context}/{dockerfile}" if context else dockerfile
        text = request.source.read_text(path)
        if text is None:
            raise self.failed(f"{path} is not in the pushed commit")
        if "GITPAAS_STACK_IMAGE" in text:
            ensure_stack(self.client, self.settings, request.stack, _progress(request.output))
        with tempfile.TemporaryFile() as tree:
            request.source.write_tar(tree, folder=context)
            tree.seek(0)
            try:
                if self.settings.docker_builder == "classic":
                    return self._classic(tree, dockerfile, target, build_args, tag)
                return self._buildkit(tree, dockerfile, target, build_args, tag)
            except ENGINE_ERRORS as exc:
                raise self.failed(describe(exc)) from exc

    def _tell(self, line: str) -> None:
        self.log.write(line + "\n")
        self.log.flush()
        self.tail.append(line)
        if line.strip():
            self.request.output.info(line)

    def _refused(self, message: str, reason: str | None = None, told: bool = False) -> BuildFailed:
        """The engine's words on ending the build, kept (and told unless they were), and the
        failure to raise: ``reason``, else their last line."""
        self.log.write(message + "\n")
        self.tail.append(message)
        if not told:
            self.request.output.warn(message)
        return self.failed(reason or (message.splitlines()[-1] if message else "docker build failed"))

    def _buildkit(self, tree: IO[bytes], dockerfile: str, target: str | None, build_args: dict[str, str],
                  tag: str) -> tuple[str, int]:
        """BuildKit: the labels go on the image in the same build, and steps not in the target's
        way are skipped."""
        progress = buildkit.Progress()
        image_id = None
        stream = buildkit.build(self.client, tree, dockerfile=dockerfile, tag=tag, target=target,
                                build_args=build_args, labels=self.request.labels)
        try:
            for chunk in stream:
                aux = chunk.get("aux")
                if chunk.get("id") == buildkit.TRACE:
                    for line in progress.lines(aux or ""):
                        self._tell(line)
                elif isinstance(aux, dict) and "ID" in aux:  # moby.image.id (an engine without BuildKit: no id)
                    image_id = aux["ID"]
                elif "error" in chunk:
                    for line in progress.rest():
                        self._tell(line)
                    # BuildKit told the failed step's error already (``#5 ERROR: …``); the push says
                    # why in one line, and the log keeps the engine's whole words
                    raise self._refused(chunk["error"].strip(), buildkit.reason(chunk["error"]), told=True)
                else:
                    for line in iter_lines([chunk.get("stream", "")]):
                        self._tell(line)
            for line in progress.rest():
                self._tell(line)
            if image_id is None:
                raise self.failed("the build finished but produced no image")
            return image_id, self.client.images.get(image_id).attrs.get("Size", 0)
        except BaseException:
            stream.close()  # the request ends: a build still running is cancelled by the engine
            if image_id is not None:
                _untag(self.client, tag)  # tagged by the engine, but this build failed after all
            raise

    def _classic(self, tree: IO[bytes], dockerfile: str, target: str | None, build_args: dict[str, str],
                 tag: str) -> tuple[str, int]:
        """The engine's classic builder (``GITPAAS_DOCKER_BUILDER=classic``)."""
        image_id = None

        def streamed_text(stream: Iterator[dict]) -> Iterator[str]:
            nonlocal image_id
            for chunk in stream:
                if "error" in chunk:
                    raise self._refused(chunk["error"].strip())
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                yield chunk.get("stream", "")

        # No `labels=` here: the classic builder turns each label into a LABEL step of its own (a
        # container made and committed each, about 0.1 s apiece); `_labelled` adds them all in one.
        stream = self.client.api.build(
            fileobj=tree, custom_context=True, dockerfile=dockerfile, target=target,
            buildargs=build_args, rm=True, forcerm=True, pull=False, decode=True,
        )
        for line in iter_lines(streamed_text(stream)):
            self._tell(line)
        if image_id is None:
            raise self.failed("the build finished but produced no image")
        try:
            return self._labelled(image_id, tag)
        except ENGINE_ERRORS as exc:
            raise self.failed(f"could not label the image: {describe(exc)}") from exc

    def _labelled(self, built: str, tag: str) -> tuple[str, int]:
        """``built`` with the request's labels, tagged ``tag``: its id and size. A second build of
        ``FROM <built>`` and one LABEL line, so every label is one step; without its labels nothing
        could find a new image to remove it, so one nobody tagged goes if this fails."""
        line = " ".join(f"{json.dumps(key, ensure_ascii=False)}={json.dumps(value, ensure_ascii=False)}"
                        for key, value in self.request.labels.items())
        context = text_context({"Dockerfile": (f"FROM {built}\nLABEL {line}\n", 0o644)})
        labelled = None
        try:
            for chunk in self.client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True,
                                               pull=False, decode=True):
                if "error" in chunk:
                    raise self.failed(f"could not label the image: {chunk['error'].strip()}")
                labelled = (chunk.get("aux") or {}).get("ID", labelled)
            image = self.client.images.get(tag)
        except BaseException:
            _remove_if_untagged(self.client, built)
            raise
        return labelled or image.id, image.attrs.get("Size", 0)


def _progress(output: Output):
    """A stack build's progress lines told as the push's own, with their meaning."""
    def tell(line: str) -> None:
        kind, text = route_line(line)
        getattr(output, kind)(text)
    return tell
