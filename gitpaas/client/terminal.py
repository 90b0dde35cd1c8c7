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
    stdin = sys.stdin.fileno()
    restore = None
    if tty:
        restore = termios.tcgetattr(stdin)
        ttymode.setraw(stdin)
        _send_size(channel)
        previous = signal.signal(signal.SIGWINCH, lambda *_: _send_size(channel))
    interrupted = False
    threading.Thread(target=_forward_input, args=(channel, stdin), name="gitpaas-run-input", daemon=True).start()
    try:
        while True:
            try:
                got = channel.read()
            except KeyboardInterrupt:  # only without a TTY: with one, Ctrl-C is a byte for the dyno
                interrupted = True
                channel.stop()
                continue
            if got is None:
                break
            kind, data = got
            os.write(2 if kind == 2 else 1, data)
    finally:
        if restore is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, restore)
            signal.signal(signal.SIGWINCH, previous)
    try:
        status = channel.finish()
    except GitpaasError:
        if interrupted:  # stopped by Ctrl-C: that is the end it had
            return 130
        raise
    return 130 if interrupted else status


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
