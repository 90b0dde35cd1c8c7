"""``gitpaas``: the group (its commands are loaded as they are used: ``group.py``), and the console
entry point."""

from __future__ import annotations

import os
import sys

from gitpaas.cli.group import cli
from gitpaas.store.files import PRIVATE_UMASK

__all__ = ["cli", "main"]


def main() -> None:
    os.umask(PRIVATE_UMASK)
    sys.exit(cli.main(prog_name="gitpaas"))
