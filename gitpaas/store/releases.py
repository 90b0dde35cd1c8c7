"""Releases on disk: ``releases/vN/release.json`` and ``releases/vN/output.log``.

Versions are allocated under a lock by creating the folder ``vN`` exclusively, so two processes can
never get the same number and a reader never sees a folder without its record for long (a folder
with no record is an allocation that crashed before writing, and is skipped).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Callable, Iterator

from gitpaas.errors import DamagedRecord, ReleaseNotFound
from gitpaas.release import Release
from gitpaas.store.files import (
    PRIVATE,
    open_private,
    read_json,
    write_atomic,
    write_json,
)
from gitpaas.lazy import lazy

#: file locks, loaded on first use: reading records takes none
filelock = lazy("filelock")

#: the file naming the highest version allocated, so the newest records are found without a scan
LATEST = "latest"


class ReleaseStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        #: damaged records the walks of this store skipped, for the shells to name
        self.skipped: list[DamagedRecord] = []

    @property
    def app_name(self) -> str:
        return self.root.parent.name

    def folder(self, version: int) -> Path:
        return self.root / f"v{version}"

    def output_path(self, version: int) -> Path:
        return self.folder(version) / "output.log"

    def story_path(self, version: int) -> Path:
        """What the pipeline said while it made a release the API started (``Release vN created``,
        the release command, the swap): what the gitpaas CLI prints on another machine."""
        return self.folder(version) / "story.log"

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
        with filelock.FileLock(str(self.root / ".version.lock")):
            version = self._allocated() + 1
            self.folder(version).mkdir()
            write_atomic(self.root / LATEST, f"{version}\n".encode())
            release = build(version)
            open_private(self.output_path(version), "a").close()  # 0600: the output echoes config values
            self.save(release)
        return release

    def _allocated(self) -> int:
        """The highest version allocated: from the ``latest`` file, checked against the folders."""
        try:
            version = int((self.root / LATEST).read_text())
        except (FileNotFoundError, ValueError):
            names = os.listdir(self.root) if self.root.is_dir() else []
            return max((int(n[1:]) for n in names if n[:1] == "v" and n[1:].isdigit()), default=0)
        while self.folder(version + 1).exists():  # a crash between mkdir and writing `latest`
            version += 1
        return version

    def walk_down(self, below: int | None = None) -> Iterator[Release]:
        """Records newest first (below version ``below``), read one at a time from the latest, so
        finding something recent costs the same with 10,000 releases as with 10."""
        version = self._allocated() if below is None else below - 1
        while version > 0:
            try:
                yield self.get(version)
            except ReleaseNotFound:  # an allocation that crashed before its record was written
                pass
            except DamagedRecord as damaged:
                self.skipped.append(damaged)
            version -= 1

    def newest(self, limit: int, below: int | None = None) -> list[Release]:
        """The newest ``limit`` records (below version ``below``)."""
        return list(itertools.islice(self.walk_down(below), limit))

    def save(self, release: Release) -> None:
        # 0600: a record holds the config vars in force, which are secrets.
        write_json(self.folder(release.version) / "release.json", release.to_dict(), mode=PRIVATE)

    def get(self, version: int) -> Release:
        try:
            return Release.from_dict(read_json(self.folder(version) / "release.json"))
        except FileNotFoundError:
            raise ReleaseNotFound(self.app_name, version) from None
        except (ValueError, TypeError, AttributeError) as exc:  # not JSON, or not a release's fields
            reason = "not valid JSON" if isinstance(exc, ValueError) else "not a release record"
            raise DamagedRecord(self.app_name, f"releases/v{version}/release.json", reason) from None

    def latest(self) -> Release | None:
        newest = self.newest(1)
        return newest[0] if newest else None

    def list(self, limit: int | None = None) -> list[Release]:
        """Newest first; with ``limit`` only the newest ``limit`` records are read."""
        if limit is not None:
            return self.newest(limit)
        return self.newest(len(self.versions()) + 1)
