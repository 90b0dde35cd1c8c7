"""The engine's BuildKit builder, asked through the Engine API (``POST /build?version=2``) with the
pushed tree as the request's body, as the classic builder is: no session and no ``docker`` CLI, so it
runs on whichever engine the home's client talks to. docker-py's ``build()`` has no ``version``
parameter, so the request is made here with the client's own connection.

BuildKit tells its progress as ``moby.buildkit.trace`` messages: each a base64 ``StatusResponse`` of
BuildKit's control API (``moby.buildkit.v1``, ``api/services/control/control.proto``). ``Progress``
reads them with the protobuf runtime, declaring only the fields it shows, and tells them as
``docker build --progress=plain`` does: ``#5 [2/3] COPY . /app``, the step's output, ``#5 DONE 0.1s``."""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterator
from typing import IO

import docker

TRACE = "moby.buildkit.trace"
IMAGE_ID = "moby.image.id"
#: the wrappers BuildKit puts around the reason a build failed, which say nothing to the app's owner
_WRAPPERS = re.compile(r"^(?:failed to solve with frontend [\w.]+: |failed to solve: |failed to build LLB: "
                       r"|failed to create LLB definition: |rpc error: code = \w+ desc = )+")


def build(client: docker.DockerClient, context: IO[bytes], *, dockerfile: str, tag: str, target: str | None,
          build_args: dict[str, str], labels: dict[str, str]) -> Iterator[dict]:
    """The engine's messages of a BuildKit build of ``context`` (a tar) into ``tag``, decoded JSON."""
    params = {"version": "2", "dockerfile": dockerfile, "t": tag, "buildargs": json.dumps(build_args),
              "labels": json.dumps(labels), "rm": "1", "forcerm": "1"}
    if target:
        params["target"] = target
    api = client.api
    # No read timeout: a step may stay silent for longer than the client's usual 60 s.
    response = api._post(api._url("/build"), params=params, data=context,
                         headers={"Content-Type": "application/x-tar"}, stream=True, timeout=None)
    try:
        api._raise_for_status(response)
        yield from api._stream_helper(response, decode=True)
    finally:
        response.close()  # a reader that stops early ends the request, and the engine cancels the build


def reason(error: str) -> str:
    """The engine's last words on a failed build without BuildKit's wrappers:
    ``executor failed running [/bin/sh -c exit 3]: exit code: 3``."""
    return _WRAPPERS.sub("", error.strip().splitlines()[-1] if error.strip() else "") or "the build failed"


@functools.cache
def status_message() -> type:
    """The class of BuildKit's ``StatusResponse``, with the fields ``Progress`` reads (field numbers
    as in control.proto; a field left out is skipped when read)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="gitpaas/buildkit_status.proto", package="gitpaas.buildkit",
                                               syntax="proto3")

    def message(name: str, *fields: tuple) -> None:
        declared = proto.message_type.add(name=name)
        for number, field_name, kind, *of in fields:
            added = declared.field.add(name=field_name, number=number, type=kind,
                                       label=field.LABEL_REPEATED if of and of[0] == "repeated" else field.LABEL_OPTIONAL)
            if kind == field.TYPE_MESSAGE:
                added.type_name = f".gitpaas.buildkit.{of[-1]}"

    message("Timestamp", (1, "seconds", field.TYPE_INT64), (2, "nanos", field.TYPE_INT32))
    message("Vertex", (1, "digest", field.TYPE_STRING), (3, "name", field.TYPE_STRING), (4, "cached", field.TYPE_BOOL),
            (5, "started", field.TYPE_MESSAGE, "Timestamp"), (6, "completed", field.TYPE_MESSAGE, "Timestamp"),
            (7, "error", field.TYPE_STRING))
    message("VertexStatus", (1, "id", field.TYPE_STRING), (2, "vertex", field.TYPE_STRING),
            (3, "name", field.TYPE_STRING), (8, "completed", field.TYPE_MESSAGE, "Timestamp"))
    message("VertexLog", (1, "vertex", field.TYPE_STRING), (4, "msg", field.TYPE_BYTES))
    message("VertexWarning", (1, "vertex", field.TYPE_STRING), (3, "short", field.TYPE_BYTES))
    message("StatusResponse", (1, "vertexes", field.TYPE_MESSAGE, "repeated", "Vertex"),
            (2, "statuses", field.TYPE_MESSAGE, "repeated", "VertexStatus"),
            (3, "logs", field.TYPE_MESSAGE, "repeated", "VertexLog"),
            (4, "warnings", field.TYPE_MESSAGE, "repeated", "VertexWarning"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("gitpaas.buildkit.StatusResponse"))


def _seconds(timestamp) -> float:
    return timestamp.seconds + timestamp.nanos / 1e9


class Progress:
    """BuildKit's status messages as the lines of ``docker build --progress=plain``. Each step
    (vertex) is numbered when first seen; its name is told when it starts, its output line by line
    (a line, even a character, split across messages is joined), and its end: ``CACHED``,
    ``DONE 0.3s``, ``CANCELED`` or ``ERROR: …``. One message may hold a step's start, output and
    end together: they are told in that order."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}
        self.started: set[str] = set()
        self.ended: set[str] = set()
        self.statuses_done: set[tuple[str, str]] = set()
        self.partial: dict[str, bytes] = {}

    def lines(self, aux: str) -> list[str]:
        """The lines one ``moby.buildkit.trace`` message (its base64 ``aux``) adds."""
        from google.protobuf.message import DecodeError

        try:
            status = status_message().FromString(base64.b64decode(aux))
        except (ValueError, DecodeError):
            return []  # a message this version cannot read: the build goes on, its lines untold
        told: list[str] = []
        for vertex in status.vertexes:
            number = self._number(vertex.digest)
            if vertex.digest not in self.started and (vertex.HasField("started") or vertex.cached):
                self.started.add(vertex.digest)
                told.append(f"#{number} {vertex.name}")
        for step in status.statuses:
            if step.HasField("completed") and (step.vertex, step.id) not in self.statuses_done:
                self.statuses_done.add((step.vertex, step.id))
                told.append(f"#{self._number(step.vertex)} {step.name or step.id} done")
        for log in status.logs:
            *whole, rest = (self.partial.pop(log.vertex, b"") + log.msg).split(b"\n")
            if rest:
                self.partial[log.vertex] = rest
            told.extend(f"#{self._number(log.vertex)} {_text(line)}" for line in whole)
            if log.vertex in self.ended:  # output of a step told as ended: nothing more will come
                told.extend(self._flushed(log.vertex))
        for warning in status.warnings:
            told.append(f"#{self._number(warning.vertex)} WARNING: {_text(warning.short)}")
        for vertex in status.vertexes:
            if vertex.digest in self.ended:
                continue
            number = self._number(vertex.digest)
            if vertex.cached:
                told.append(f"#{number} CACHED")
            elif vertex.error:
                told.extend(self._flushed(vertex.digest))
                told.append(f"#{number} CANCELED" if vertex.error.endswith("context canceled")
                            else f"#{number} ERROR: {vertex.error}")
            elif vertex.HasField("completed"):
                told.extend(self._flushed(vertex.digest))
                took = _seconds(vertex.completed) - _seconds(vertex.started) if vertex.HasField("started") else 0.0
                told.append(f"#{number} DONE {max(took, 0.0):.1f}s")
            else:
                continue
            self.ended.add(vertex.digest)
        return told

    def rest(self) -> list[str]:
        """Output lines still waiting for their end when the stream stopped."""
        return [line for digest in list(self.partial) for line in self._flushed(digest)]

    def _flushed(self, digest: str) -> list[str]:
        data = self.partial.pop(digest, b"")
        return [f"#{self._number(digest)} {_text(data)}"] if data else []

    def _number(self, digest: str) -> int:
        return self.numbers.setdefault(digest, len(self.numbers) + 1)


def _text(line: bytes) -> str:
    return line.removesuffix(b"\r").decode("utf-8", "replace")
