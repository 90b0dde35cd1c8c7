"""BuildKit's progress (``moby.buildkit.trace`` messages) told as ``docker build --progress=plain``
does, and a Dockerfile build through it against a fake engine; the real engine's builds are in the
integration tests (every Dockerfile push)."""

from __future__ import annotations

import base64

import docker
import pytest

from gitpaas.build import buildkit
from gitpaas.build.base import BuildRequest
from gitpaas.build.dockerfile import DockerfileBuilder
from gitpaas.errors import BuildFailed
from gitpaas.output import RecordingOutput
from gitpaas.settings import Settings

STEP, OTHER = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def trace(**fields) -> str:
    """One trace message's ``aux``, as the engine sends it."""
    message = buildkit.status_message()()
    for vertex in fields.get("vertexes", []):
        added = message.vertexes.add(digest=vertex["digest"], name=vertex.get("name", ""),
                                     cached=vertex.get("cached", False), error=vertex.get("error", ""))
        for key in ("started", "completed"):
            if key in vertex:
                getattr(added, key).seconds, getattr(added, key).nanos = vertex[key]
    for log in fields.get("logs", []):
        message.logs.add(vertex=log[0], msg=log[1])
    for status in fields.get("statuses", []):
        added = message.statuses.add(vertex=status[0], id=status[1], name=status[2])
        if status[3]:
            added.completed.seconds = 1
    for warning in fields.get("warnings", []):
        message.warnings.add(vertex=warning[0], short=warning[1])
    return base64.b64encode(message.SerializeToString()).decode()


def test_steps_are_numbered_when_first_seen_and_told_start_output_and_end():
    progress = buildkit.Progress()
    assert progress.lines(trace(vertexes=[{"digest": STEP, "name": "[1/2] FROM stack", "cached": True}])) == [
        "#1 [1/2] FROM stack", "#1 CACHED"]
    assert progress.lines(trace(vertexes=[{"digest": OTHER, "name": "[2/2] RUN make"}])) == [], "not started yet"
    assert progress.lines(trace(vertexes=[{"digest": OTHER, "name": "[2/2] RUN make", "started": (100, 0)}])) == [
        "#2 [2/2] RUN make"]
    assert progress.lines(trace(logs=[(OTHER, b"compiling\nhalf a "), (OTHER, b"line\r\nand the rest")])) == [
        "#2 compiling", "#2 half a line"]
    done = {"digest": OTHER, "name": "[2/2] RUN make", "started": (100, 0), "completed": (101, 250_000_000)}
    assert progress.lines(trace(vertexes=[done])) == ["#2 and the rest", "#2 DONE 1.2s"]
    assert progress.lines(trace(vertexes=[done])) == [], "an ended step is told once"
    assert progress.lines(trace(statuses=[(STEP, "writing", "writing image sha256:ab", False)])) == []
    assert progress.lines(trace(statuses=[(STEP, "writing", "writing image sha256:ab", True)])) == [
        "#1 writing image sha256:ab done"]
    assert progress.lines(trace(warnings=[(STEP, b"Empty continuation line")])) == ["#1 WARNING: Empty continuation line"]


def test_a_failed_step_tells_its_output_then_its_error_and_unended_output_is_kept():
    progress = buildkit.Progress()
    progress.lines(trace(vertexes=[{"digest": STEP, "name": "[2/2] RUN exit 3", "started": (1, 0)}]))
    assert progress.lines(trace(logs=[(STEP, b"error: missing.css")])) == []
    assert progress.lines(trace(vertexes=[{"digest": STEP, "name": "[2/2] RUN exit 3", "started": (1, 0),
                                           "completed": (2, 0), "error": "exit code: 3"}])) == [
        "#1 error: missing.css", "#1 ERROR: exit code: 3"]
    progress.lines(trace(logs=[(OTHER, b"cut off")]))
    assert progress.rest() == ["#2 cut off"] and progress.rest() == []


def test_a_steps_start_output_and_end_in_one_message_are_told_in_that_order():
    progress = buildkit.Progress()
    step = {"digest": STEP, "name": "[2/2] RUN echo hi", "started": (1, 0), "completed": (2, 0)}
    assert progress.lines(trace(vertexes=[step], logs=[(STEP, b"hi\nno newline")],
                                statuses=[(STEP, "w", "writing image", True)])) == [
        "#1 [2/2] RUN echo hi", "#1 writing image done", "#1 hi", "#1 no newline", "#1 DONE 1.0s"]
    assert progress.lines(trace(logs=[(STEP, b"late, unended")])) == ["#1 late, unended"], \
        "output of an ended step is told at once, not held to the end of the build"


def test_a_character_or_a_crlf_split_across_messages_is_joined():
    progress = buildkit.Progress()
    progress.lines(trace(vertexes=[{"digest": STEP, "name": "[1/1] RUN x", "started": (1, 0)}]))
    word = "h\u00e9llo\r\n".encode()
    assert progress.lines(trace(logs=[(STEP, word[:2])])) == []
    assert progress.lines(trace(logs=[(STEP, word[2:-1])])) == []
    assert progress.lines(trace(logs=[(STEP, word[-1:])])) == ["#1 h\u00e9llo"]


def test_a_step_cut_short_by_another_ones_failure_is_canceled():
    progress = buildkit.Progress()
    assert progress.lines(trace(vertexes=[{"digest": STEP, "name": "[a 1/2] RUN sleep 9", "started": (1, 0),
                                           "completed": (2, 0), "error": "context canceled"}])) == [
        "#1 [a 1/2] RUN sleep 9", "#1 CANCELED"]


def test_an_unreadable_message_tells_nothing_and_the_build_goes_on():
    progress = buildkit.Progress()
    assert progress.lines("not base64!") == [] and progress.lines(base64.b64encode(b"\xff\xff").decode()) == []


@pytest.mark.parametrize("error, reason", [
    ("failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 2: "
     "unknown instruction: FORM", "dockerfile parse error line 2: unknown instruction: FORM"),
    ("executor failed running [/bin/sh -c exit 3]: exit code: 3", "executor failed running [/bin/sh -c exit 3]: exit code: 3"),
    ("failed to solve: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3",
     "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"),
    ("", "the build failed"),
])
def test_the_reason_of_a_failed_build_loses_buildkits_wrappers(error, reason):
    assert buildkit.reason(error) == reason


class _Tree:
    def read_text(self, path):
        return "FROM scratch\nCOPY . /app\n" if path == "Dockerfile" else None

    def write_tar(self, fileobj, folder=""):
        fileobj.write(b"\0" * 1024)


class _Engine:
    """The engine's side of ``POST /build?version=2``: records the request, answers ``chunks``."""

    def __init__(self, chunks):
        self.chunks, self.requests, self.removed, self.closed = chunks, [], [], False
        engine = self

        class api:
            @staticmethod
            def _url(path):
                return path

            @staticmethod
            def _post(url, **kwargs):
                engine.requests.append((url, kwargs))
                return engine

            @staticmethod
            def _raise_for_status(response):
                pass

            @staticmethod
            def _stream_helper(response, decode):
                yield from engine.chunks

        class images:
            @staticmethod
            def get(name):
                return type("Image", (), {"attrs": {"Size": 1234}})()

            @staticmethod
            def remove(name, noprune):
                engine.removed.append(name)

        self.api, self.images = api, images

    def close(self) -> None:
        """The response's: the request ended."""
        self.closed = True


def build(tmp_path, engine, output: RecordingOutput | None = None) -> tuple:
    output = output or RecordingOutput()
    request = BuildRequest(app="shop", source=_Tree(), tag="gitpaas-x/shop:v2", labels={"gitpaas.app": "shop"},
                           log_path=tmp_path / "builds" / "2.log", output=output)
    builder = DockerfileBuilder(engine, Settings.from_env({"GITPAAS_HOME": str(tmp_path)}))
    return builder.build(request), output


def test_one_request_builds_tags_and_labels_the_image_and_its_progress_is_told_and_logged(tmp_path):
    engine = _Engine([
        {"id": buildkit.TRACE, "aux": trace(vertexes=[{"digest": STEP, "name": "[2/2] COPY . /app", "started": (1, 0),
                                                       "completed": (1, 0)}])},
        {"id": buildkit.IMAGE_ID, "aux": {"ID": "sha256:feed"}},
        {"stream": "Successfully tagged gitpaas-x/shop:v2\n"},
    ])
    built, output = build(tmp_path, engine)
    assert (built.image_id, built.tag, built.size) == ("sha256:feed", "gitpaas-x/shop:v2", 1234)
    [(url, request)] = engine.requests
    assert url == "/build" and request["timeout"] is None and request["stream"] is True
    assert request["params"]["version"] == "2" and request["params"]["t"] == "gitpaas-x/shop:v2"
    assert request["params"]["labels"] == '{"gitpaas.app": "shop"}' and "target" not in request["params"]
    told = ["#1 [2/2] COPY . /app", "#1 DONE 0.0s", "Successfully tagged gitpaas-x/shop:v2"]
    assert output.lines == [f"       {line}" for line in told]
    assert (tmp_path / "builds" / "2.log").read_text().splitlines() == told
    assert engine.closed


def test_an_engine_that_builds_classically_anyway_still_gives_its_image(tmp_path):
    engine = _Engine([{"stream": "Step 1/1 : FROM scratch\n"}, {"aux": {"ID": "sha256:feed"}}])
    built, output = build(tmp_path, engine)
    assert built.image_id == "sha256:feed" and output.lines == ["       Step 1/1 : FROM scratch"]


def test_a_failed_build_names_the_reason_once_and_keeps_the_log_tail(tmp_path):
    engine = _Engine([
        {"id": buildkit.TRACE, "aux": trace(vertexes=[{"digest": STEP, "name": "[2/2] RUN exit 3", "started": (1, 0)}],
                                            logs=[(STEP, b"error: missing.css\n")])},
        {"error": "failed to solve with frontend dockerfile.v0: executor failed running [exit 3]: exit code: 3",
         "errorDetail": {}},
    ])
    output = RecordingOutput()
    with pytest.raises(BuildFailed) as failed:
        build(tmp_path, engine, output)
    assert str(failed.value) == "build failed: executor failed running [exit 3]: exit code: 3"
    assert "#1 error: missing.css" in failed.value.log_tail
    assert output.lines == ["       #1 [2/2] RUN exit 3", "       #1 error: missing.css"], \
        "the reason is the caller's to tell, once"
    log = (tmp_path / "builds" / "2.log").read_text()
    assert log.endswith("failed to solve with frontend dockerfile.v0: executor failed running [exit 3]: exit code: 3\n")
    assert engine.removed == [] and engine.closed, "nothing was tagged, and the request ended"


def test_a_build_that_fails_after_its_image_was_tagged_untags_it(tmp_path):
    engine = _Engine([{"id": buildkit.IMAGE_ID, "aux": {"ID": "sha256:feed"}}])

    def gone(name):
        raise docker.errors.NotFound("removed under us")
    engine.images.get = staticmethod(gone)
    with pytest.raises(BuildFailed, match="removed under us"):
        build(tmp_path, engine)
    assert engine.removed == ["gitpaas-x/shop:v2"]
