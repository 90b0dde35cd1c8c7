"""How gitpaas tells a person what is happening: Heroku-style stage headers and indented detail.

The pipeline talks to an :class:`Output`; the shells choose where it goes (the ``git push``
stream, a terminal, a test's list).
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

#: control characters a line may not carry to a ``git push`` (git's side band cuts a packet at a NUL,
#: losing what follows it, the failure line included) or to a terminal (a bell, a backspace): each
#: becomes U+FFFD. Tab and escape (colours) pass.
_UNPRINTABLE = {code: "\ufffd" for code in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x1B),
                                             *range(0x1C, 0x20), 0x7F]}


class Output(Protocol):
    def stage(self, title: str) -> None: ...
    def info(self, text: str) -> None: ...
    def warn(self, text: str) -> None: ...


class StreamOutput:
    """Writes lines as they happen and flushes each one, so ``git push`` shows them live."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def _write(self, prefix: str, text: str) -> None:
        for line in (text.splitlines() or [""]):
            self.stream.write(f"{prefix}{line.translate(_UNPRINTABLE)}\n")
        self.stream.flush()

    def stage(self, title: str) -> None:
        self._write("-----> ", title)

    def info(self, text: str) -> None:
        self._write("       ", text)

    def warn(self, text: str) -> None:
        self._write(" !     ", text)


class FileOutput(StreamOutput):
    """Writes each line to a file as it happens (a release's story, streamed to the gitpaas CLI)."""

    def close(self) -> None:
        self.stream.close()


class RecordingOutput:
    """Keeps every line, for tests and for callers that show output later."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def stage(self, title: str) -> None:
        self.lines.append(f"-----> {title}")

    def info(self, text: str) -> None:
        self.lines.extend(f"       {line}" for line in (text.splitlines() or [""]))

    def warn(self, text: str) -> None:
        self.lines.extend(f" !     {line}" for line in (text.splitlines() or [""]))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class NullOutput:
    def stage(self, title: str) -> None:
        pass

    def info(self, text: str) -> None:
        pass

    def warn(self, text: str) -> None:
        pass

