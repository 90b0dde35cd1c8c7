"""Turning a stream of chunks (a container's output, a build's log) into whole lines."""

from __future__ import annotations

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
