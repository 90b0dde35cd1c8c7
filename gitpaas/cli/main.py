"""``gitpaas``: the group with every command module's commands, and the console entry point."""

from __future__ import annotations

import os
import sys

from gitpaas.cli import (  # noqa: F401  (importing a module adds its commands to the group)
    accounts,
    addons,
    apps,
    backup,
    boot,
    builds,
    certs,
    config,
    domains,
    logs,
    maintenance,
    pipelines,
    ps,
    releases,
    run,
    server,
    session,
    stack,
    swarm,
    webhooks,
)
from gitpaas.cli.group import cli
from gitpaas.store.files import PRIVATE_UMASK

__all__ = ["cli", "main"]


def main() -> None:
    os.umask(PRIVATE_UMASK)
    sys.exit(cli.main(prog_name="gitpaas"))
