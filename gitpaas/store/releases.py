"""Releases on disk: ``releases/vN/release.json`` and ``releases/vN/output.log``.

Versions are allocated under a lock by creating the folder ``vN`` exclusively, so two processes can
never get the same number and a reader never sees a folder without its record for long (a folder
with no record is an allocation that crashed before writing, and is skipped).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from filelock import FileLock

from gitpaas.errors import ReleaseNotFound
from gitpaas.release import Release
from gitpaas.store.files import read_json, write_json


class ReleaseStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def app_name(self) -> str:
        return self.root.parent.name

    def folder(self, version: int) -> Path:
        return self.root / f"v{version}"

    def output_path(self, version: int) -> Path:
        return self.folder(version) / "output.log"

    def versions(self) -> list[int]:
        """Every version with a record, ascending."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        found = [int(name[1:]) for name in names if name[:1] == "v" and name[1:].isdigit()]
        return sorted(version for version in found if (self.folder(version) / "release.json").is_file())

    def create(self, build: Callable[[int], Release]) -> Release:
        """Allocate the next version and write ``build(version)`` as its record, atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / ".version.lock")):
            existing = [int(n[1:]) for n in os.listdir(self.root) if n[:1] == "v" and n[1:].isdigit()]
            version = max(existing, default=0) + 1
            self.folder(version).mkdir()
            release = build(version)
            self.folder(version).joinpath("output.log").touch()
            self.save(release)
        return release

    def save(self, release: Release) -> None:
        # 0600: a record holds the config vars in force, which are secrets.
        write_json(self.folder(release.version) / "release.json", release.to_dict(), mode=0o600)

    def get(self, version: int) -> Release:
        try:
            return Release.from_dict(read_json(self.folder(version) / "release.json"))
        except FileNotFoundError:
            raise ReleaseNotFound(self.app_name, version) from None

    def latest(self) -> Release | None:
        versions = self.versions()
        return self.get(versions[-1]) if versions else None

    def list(self, limit: int | None = None) -> list[Release]:
        """Newest first; with ``limit`` only the newest ``limit`` records are read."""
        versions = self.versions()[::-1]
        if limit is not None:
            versions = versions[:limit]
        return [self.get(version) for version in versions]
