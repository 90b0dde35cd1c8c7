"""Build an app that has a ``Dockerfile`` at its root, with the Docker engine."""

from __future__ import annotations

import collections
import tempfile
from collections.abc import Iterator

import docker

from gitpaas.build.base import BuildRequest, BuiltImage
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
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        image_id = None

        def failed(reason: str) -> BuildFailed:
            return BuildFailed(reason, "\n".join(tail), log_path=str(request.log_path))

        def streamed_text(stream: Iterator[dict]) -> Iterator[str]:
            nonlocal image_id
            for chunk in stream:
                if "error" in chunk:
                    message = chunk["error"].strip()
                    log.write(message + "\n")
                    tail.append(message)
                    request.output.warn(message)
                    raise failed(message.splitlines()[-1] if message else "docker build failed")
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                yield chunk.get("stream", "")

        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        if "GITPAAS_STACK_IMAGE" in (request.source.read_text("Dockerfile") or ""):
            ensure_stack(self.client, self.settings, request.stack, _progress(request.output))
        with tempfile.TemporaryFile() as context, open_private(request.log_path) as log:
            request.source.write_tar(context)
            context.seek(0)
            try:
                stream = self.client.api.build(
                    fileobj=context, custom_context=True, tag=request.tag, labels=request.labels,
                    buildargs=request.build_args, rm=True, forcerm=True, pull=False, decode=True,
                )
                for line in iter_lines(streamed_text(stream)):
                    log.write(line + "\n")
                    log.flush()
                    tail.append(line)
                    if line.strip():
                        request.output.info(line)
            except ENGINE_ERRORS as exc:
                raise failed(describe(exc)) from exc
        try:
            image = self.client.images.get(request.tag)
        except ENGINE_ERRORS as exc:
            raise failed("the build finished but produced no image") from exc
        return BuiltImage(image_id=image_id or image.id, tag=request.tag, size=image.attrs.get("Size", 0),
                          runs_image_command=True)


def _progress(output: Output):
    """A stack build's progress lines told as the push's own, with their meaning."""
    def tell(line: str) -> None:
        kind, text = route_line(line)
        getattr(output, kind)(text)
    return tell
