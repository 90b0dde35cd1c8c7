"""Where a gitpaas home is: ``$GITPAAS_HOME``, else ``/var/lib/gitpaas`` for root, else the user's
XDG data folder. The standard library only: the first step of every command (handing it to the
home's fork server, ``gitpaas.forkserver``) needs this and nothing else of gitpaas."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def default_home(environ: Mapping[str, str], root: bool | None = None) -> Path:
    if is_root() if root is None else root:
        return Path("/var/lib/gitpaas")
    base = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME", "~")).expanduser() / ".local/share")
    return Path(base) / "gitpaas"


def home_of(environ: Mapping[str, str], root: bool | None = None) -> Path:
    """The home ``environ`` names, as an absolute path."""
    return Path(environ.get("GITPAAS_HOME") or default_home(environ, root)).expanduser().absolute()
