"""Atomic file writes (temporary file in the same folder, fsync, rename, fsync the folder), and
logs that only the server's user can read."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Literal

from gitpaas.errors import DiskFull

#: the mode of whatever may hold a secret: config values, release output (which echoes them), build logs
PRIVATE = 0o600


#: what every gitpaas process creates files with (its shells set it first): 0600 files, 0700 folders
PRIVATE_UMASK = 0o077


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE) -> None:
    """Replace ``path`` with ``data`` all at once: a reader sees the old file or the new, never half;
    on a full disk the old file stays and DiskFull says why."""
    try:
        _write_atomic(path, data, mode)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFull() from exc
        raise


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass  # the failure came before the temporary file existed
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: Path, value: Any, mode: int = PRIVATE) -> None:
    write_atomic(path, (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode(), mode)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_from(path: Path | str, offset: int, limit: int = -1) -> bytes:
    """What a growing log holds from ``offset`` (at most ``limit`` bytes); nothing while it does not exist."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(limit)
    except FileNotFoundError:
        return b""


def open_private(path: Path, mode: Literal["w", "a"] = "w") -> IO[str]:
    """Open a text log for writing (``w``) or appending (``a``), created 0600 — and made 0600 if an
    older gitpaas left it readable — since what a build or a release prints may echo config values."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if mode == "w" else os.O_APPEND) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)
        return os.fdopen(fd, mode, encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise
