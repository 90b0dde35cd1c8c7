"""``gitpaas``: the console entry point. It hands the command to the home's fork server
(``gitpaas.forkserver``: a resident process that has imported gitpaas already) when one can run
it, and runs it in this process otherwise — the group (``group.py``) then loads only the command's
own module."""

from __future__ import annotations

import os
import sys

from gitpaas import forkserver
from gitpaas.lazy import lazy

__all__ = ["main", "run"]  # (and ``cli``, the group, read through __getattr__ below)

group = lazy("gitpaas.cli.group")
files = lazy("gitpaas.store.files")


def main() -> None:
    args = sys.argv[1:]
    command = next((arg for arg in args[:1] if not arg.startswith("-")), None)
    status = forkserver.hand_off("cli", args, command)
    sys.exit(run(args) if status is None else status)


def run(args: list[str]) -> int:
    """The command, in this process (click exits with its status)."""
    os.umask(files.PRIVATE_UMASK)
    return group.cli.main(args, prog_name="gitpaas")


def __getattr__(name: str):
    if name == "cli":  # (``from gitpaas.cli.main import cli``: the group, loaded then)
        return group.cli
    raise AttributeError(name)
