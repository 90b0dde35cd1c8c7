"""A one-off dyno on this terminal: its output to stdout and stderr, the keyboard (or piped input)
to it, the window's size when it has a TTY; its exit status returned.

With a TTY the terminal is in raw mode, so Ctrl-C, Ctrl-D and the arrows go to the dyno's own
terminal, as over ssh. Without one, Ctrl-C stops the dyno (exit 130), and the end of the input
ends its standard input."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import termios
import threading
import tty as ttymode
from typing import Protocol

from gitpaas.errors import GitpaasError


class Channel(Protocol):
    """A one-off dyno as a client reaches it: on this server's engine, or through a rendezvous."""

    def read(self) -> tuple[int, bytes] | None: ...  # (1 stdout | 2 stderr, data); None at its end
    def write(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def resize(self, rows: int, columns: int) -> None: ...
    def stop(self) -> None: ...
    def finish(self) -> int: ...  # its exit status, once it ended; lets everything go


def attach(channel: Channel, tty: bool) -> int:
    """Pump until the dyno ends; whatever ends this process first (Ctrl-C, a closed terminal's
    SIGHUP, a SIGTERM, an error), the dyno is stopped and let go, never left running."""
    stdin = sys.stdin.fileno()
    restore = termios.tcgetattr(stdin) if tty else None
    handlers = {number: signal.signal(number, _interrupt) for number in (signal.SIGHUP, signal.SIGTERM)}
    if tty:
        ttymode.setraw(stdin)
        _send_size(channel)
        handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, lambda *_: _send_size(channel))
    interrupted = ended = False
    threading.Thread(target=_forward_input, args=(channel, stdin), name="gitpaas-run-input", daemon=True).start()
    try:
        while True:
            try:
                got = channel.read()
            except KeyboardInterrupt:  # with a TTY, Ctrl-C is a byte for the dyno: this is a signal
                interrupted = True
                channel.stop()
                continue
            if got is None:
                break
            kind, data = got
            _write_all(2 if kind == 2 else 1, data)
        ended = True
    finally:
        if restore is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, restore)
        for number, handler in handlers.items():
            signal.signal(number, handler)
        if not ended:  # an error on the way: stop it and let it go, then say what happened
            channel.stop()
            try:
                channel.finish()
            except GitpaasError:
                pass
    try:
        status = channel.finish()
    except GitpaasError:
        if interrupted:  # stopped by Ctrl-C: that is the end it had
            return 130
        raise
    return 130 if interrupted else status


def _interrupt(signum, frame) -> None:
    """SIGHUP (the terminal closed) and SIGTERM stop the dyno as Ctrl-C does."""
    raise KeyboardInterrupt


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[written:]


def _forward_input(channel: Channel, stdin: int) -> None:
    try:
        while True:
            data = os.read(stdin, 65536)
            if not data:
                break
            channel.write(data)
    except OSError:
        pass  # no input at all (closed): the same as its end
    channel.close_stdin()


def _send_size(channel: Channel) -> None:
    size = shutil.get_terminal_size()
    channel.resize(size.lines, size.columns)
