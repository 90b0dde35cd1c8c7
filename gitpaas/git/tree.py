"""Read a pushed commit straight out of a bare repository, without a work tree.

During ``pre-receive`` the pushed objects sit in git's quarantine folder (named by
``GIT_QUARANTINE_PATH`` / ``GIT_OBJECT_DIRECTORY``) until the hook accepts them, so the object
store read here overlays that folder on the repository's own.
"""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path
from typing import IO, Mapping

from dulwich.object_store import DiskObjectStore, OverlayObjectStore, iter_tree_contents
from dulwich.objects import Blob, Commit
from dulwich.repo import Repo

from gitpaas.errors import PushRefused


class PushedTree:
    """The files of one commit: look one up, or write them all as a tar build context."""

    def __init__(self, store, commit_sha: str) -> None:
        self.store = store
        self.commit_sha = commit_sha
        try:
            commit = store[commit_sha.encode()]
        except KeyError:
            raise PushRefused(f"commit {commit_sha[:7]} is not in the repository") from None
        if not isinstance(commit, Commit):
            raise PushRefused(f"{commit_sha[:7]} is not a commit; push a branch")
        self.commit = commit
        self._entries = {
            entry.path.decode("utf-8", "surrogateescape"): entry
            for entry in iter_tree_contents(store, commit.tree)
        }

    @classmethod
    def open(cls, repo_path: Path, commit_sha: str, environ: Mapping[str, str] | None = None) -> "PushedTree":
        environ = environ or {}
        repo = Repo(str(repo_path))
        bases = []
        quarantine = environ.get("GIT_QUARANTINE_PATH") or environ.get("GIT_OBJECT_DIRECTORY")
        if quarantine and Path(quarantine).is_dir() and Path(quarantine).resolve() != Path(repo.object_store.path).resolve():
            bases.append(DiskObjectStore(quarantine))
        bases.append(repo.object_store)
        return cls(OverlayObjectStore(bases) if len(bases) > 1 else repo.object_store, commit_sha)

    @property
    def message(self) -> str:
        return self.commit.message.decode("utf-8", "replace").strip()

    def paths(self) -> list[str]:
        return sorted(self._entries)

    def has(self, path: str) -> bool:
        return path in self._entries

    def read_bytes(self, path: str) -> bytes | None:
        entry = self._entries.get(path)
        if entry is None or stat.S_ISDIR(entry.mode) or entry.mode == 0o160000:
            return None
        blob = self.store[entry.sha]
        return blob.data if isinstance(blob, Blob) else None

    def read_text(self, path: str) -> str | None:
        data = self.read_bytes(path)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise PushRefused(f"{path} is not valid UTF-8 text") from None

    def write_tar(self, fileobj: IO[bytes], prefix: str = "", folder: str = "") -> None:
        """Write every file (modes and symlinks kept, submodules skipped) as an uncompressed tar; with
        ``folder``, only the files under it, named relative to it (a build context in a subfolder)."""
        inside = f"{folder.strip('/')}/" if folder.strip("/") else ""
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path, entry in sorted(self._entries.items()):
                if entry.mode == 0o160000 or not path.startswith(inside):  # a submodule (gitlink): nothing to copy
                    continue
                info = tarfile.TarInfo(prefix + path[len(inside):])
                info.mtime = self.commit.commit_time
                data = self.store[entry.sha].data
                if stat.S_ISLNK(entry.mode):
                    info.type = tarfile.SYMTYPE
                    info.linkname = data.decode("utf-8", "surrogateescape")
                    tar.addfile(info)
                else:
                    info.mode = 0o755 if entry.mode & 0o111 else 0o644
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
