"""Procfile parsing: text in, process types out. No I/O, no printing.

    web: python3 app.py
    release: ./migrate.sh

One ``name: command`` per line; blank lines and ``#`` comments are skipped; CRLF line ends and a
UTF-8 byte-order mark are accepted. Anything else raises :class:`ProcfileError` with the line
number, so the push can be refused with a message that points at the mistake.
"""

from __future__ import annotations

import re

from gitpaas.errors import ProcfileError

#: The process type that runs once per release, before the formation moves; never scaled.
RELEASE = "release"
WEB = "web"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,29}$")


def is_process_type(name: str) -> bool:
    """Whether ``name`` may name a process type: letters, digits, '-' and '_', 30 at most."""
    return bool(_NAME.match(name))


def parse(text: str) -> dict[str, str]:
    """Return ``{process type: command}`` in file order."""
    if text.startswith("\ufeff"):
        text = text[1:]
    processes: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not colon:
            raise ProcfileError(number, f"expected 'name: command', got {line!r}")
        if not is_process_type(name):
            raise ProcfileError(
                number,
                f"invalid process type {name!r}: use letters, digits, '-' and '_' "
                "(30 characters at most, starting with a letter or digit)",
            )
        if name in processes:
            raise ProcfileError(number, f"duplicate process type {name!r} (first on line {first_line[name]})")
        if not command:
            raise ProcfileError(number, f"empty command for process type {name!r}")
        processes[name] = command
        first_line[name] = number
    return processes


def formation_types(processes: dict[str, str]) -> list[str]:
    """The process types that make up the formation: every type but ``release``."""
    return [name for name in processes if name != RELEASE]


def default_quantity(process_type: str) -> int:
    """Heroku's defaults: one web process, none of anything else until scaled."""
    return 1 if process_type == WEB else 0
