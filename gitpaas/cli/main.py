"""``gitpaas``: the group with every command module's commands, and the console entry point."""

from __future__ import annotations

import sys

from gitpaas.cli import (  # noqa: F401  (importing a module adds its commands to the group)
    accounts, apps, builds, certs, config, domains, logs, ps, releases, server, stack, webhooks,
)
from gitpaas.cli.group import cli

__all__ = ["cli", "main"]


def main() -> None:
    sys.exit(cli.main(prog_name="gitpaas"))
