"""Build an app that has a ``Dockerfile`` at its root, with the Docker engine."""

from __future__ import annotations

import collections
import tempfile

import docker
from docker.errors import APIError, DockerException

from gitpaas.build.base import BuildRequest, BuiltImage
from gitpaas.errors import BuildFailed
from gitpaas.git.tree import PushedTree

LOG_TAIL_LINES = 30


class DockerfileBuilder:
    name = "a Dockerfile"

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    def detect(self, source: PushedTree) -> bool:
        return source.has("Dockerfile")

    def build(self, request: BuildRequest) -> BuiltImage:
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        image_id = None
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as context, open(request.log_path, "w", encoding="utf-8") as log:
            request.source.write_tar(context)
            context.seek(0)
            try:
                stream = self.client.api.build(
                    fileobj=context, custom_context=True, tag=request.tag, labels=request.labels,
                    buildargs=request.build_args, rm=True, forcerm=True, pull=False, decode=True,
                )
                pending = ""
                for chunk in stream:
                    if "error" in chunk:
                        message = chunk["error"].strip()
                        log.write(message + "\n")
                        tail.append(message)
                        request.output.warn(message)
                        raise BuildFailed(message.splitlines()[-1] if message else "docker build failed", "\n".join(tail))
                    if "aux" in chunk and "ID" in chunk["aux"]:
                        image_id = chunk["aux"]["ID"]
                    text = pending + chunk.get("stream", "")
                    *lines, pending = text.split("\n")
                    for line in lines:
                        log.write(line + "\n")
                        log.flush()
                        tail.append(line)
                        if line.strip():
                            request.output.info(line)
                if pending:
                    log.write(pending + "\n")
                    request.output.info(pending)
            except APIError as exc:
                raise BuildFailed(exc.explanation or str(exc), "\n".join(tail)) from exc
            except DockerException as exc:
                raise BuildFailed(str(exc), "\n".join(tail)) from exc
        try:
            image = self.client.images.get(request.tag)
        except DockerException as exc:
            raise BuildFailed("the build finished but produced no image", "\n".join(tail)) from exc
        return BuiltImage(image_id=image_id or image.id, tag=request.tag, size=image.attrs.get("Size", 0),
                          runs_image_command=True)
