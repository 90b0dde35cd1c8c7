"""Turning a stream of chunks (a container's output, a build's log) into whole lines."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


def iter_lines(chunks: Iterable[bytes | str]) -> Iterator[str]:
    """Each line of the text the chunks make up, without its line end (``\\n``, and a ``\\r``
    before it), as soon as it is complete; a last line without a newline comes at the end. Bytes
    are decoded as UTF-8, an invalid sequence becoming U+FFFD, even when a character is split
    across two chunks."""
    pending = b""
    for chunk in chunks:
        pending += chunk.encode("utf-8", "surrogateescape") if isinstance(chunk, str) else chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield raw.decode("utf-8", "replace").removesuffix("\r")
    if pending:
        yield pending.decode("utf-8", "replace").removesuffix("\r")


@contextmanager
def stopped_at_exit(lines: Iterator[str]) -> Iterator[Iterator[str]]:
    """``lines`` (a followed log), closed when the block ends — which stops what a generator follows."""
    try:
        yield lines
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()


class Merged:
    """Several followed streams' lines merged into one iterator (``logs --tail``): the followers
    ``put`` lines from their threads and watch ``stopped``; :meth:`lines` yields them, and ``""``
    after each second of silence so its reader can stop it (``close()``), which stops every
    follower and closes every stream they ``opened``. A reader that does not keep up loses new
    lines past ``backlog``, as Heroku's log stream drops them."""

    def __init__(self, backlog: int = 10_000) -> None:
        self.queue: queue.Queue[str] = queue.Queue(maxsize=backlog)
        self.stopped = threading.Event()
        self.opened: list = []

    def put(self, line: str) -> None:
        try:
            self.queue.put_nowait(line)
        except queue.Full:
            pass

    def lines(self) -> Iterator[str]:
        try:
            while True:
                try:
                    yield self.queue.get(timeout=1.0)
                except queue.Empty:
                    yield ""
        finally:
            self.stopped.set()
            for stream in list(self.opened):
                try:
                    stream.close()
                except Exception:  # noqa: BLE001 — closing what may be closed already
                    pass
