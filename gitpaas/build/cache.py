"""Each app's build cache: ``apps/NAME/cache``, mounted at ``/cache`` in its build containers.

It is just a folder, and gitpaas relies on three things to keep it sound:

- builds of one app never overlap: they run under the app's release lock, and so does
  ``builds:cache:clear``;
- the bundled buildpacks only use a cache entry that is complete: a saved virtualenv or
  node_modules is written beside the old one and renamed into place, so a build killed halfway
  leaves either the previous entry or none (the next build is then cold, never wrong);
- pip's and npm's own caches (``/cache/pip``, ``/cache/npm``) are content-addressed and check
  what they read.

A failed build or release leaves the cache as it was; only ``builds:cache:clear`` empties it.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

#: Who runs ``bin/compile`` when gitpaas runs as root: nobody:nogroup, so a buildpack can change
#: nothing outside /app, /tmp and /cache (and the slug is exactly /app).
NOBODY = (65534, 65534)


#: the record naming the slug the app's next buildpack build may stand on (``build/buildpack.py``):
#: in the app's folder, beside its cache and out of the builds' reach; clearing the cache removes it
BASE_RECORD = "slug-base.json"


def build_user() -> tuple[int, int]:
    """The uid:gid that compiles: nobody as root, else gitpaas's own user (who can then clear the cache)."""
    if os.geteuid() == 0:
        return NOBODY
    return os.geteuid(), os.getegid()


def prepare(path: Path, owner: tuple[int, int]) -> None:
    """Create the cache folder, owned by the build user so that bin/compile can write to it."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        current = path.stat()
        if (current.st_uid, current.st_gid) != owner:
            os.chown(path, *owner)


def size(path: Path) -> int:
    """Bytes the cache holds (files as stored, links not followed)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass  # removed while being counted: it no longer takes space
    return total


def clear(path: Path) -> int:
    """Remove everything in the cache folder (the folder stays); returns the bytes freed."""
    if not path.is_dir():
        return 0
    freed = size(path)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, onerror=_make_writable_and_retry)
        else:
            entry.unlink()
    return freed


def _make_writable_and_retry(function, path, _exc) -> None:
    """npm leaves read-only folders in its cache; rmtree needs write permission on them."""
    parent = os.path.dirname(path)
    os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
    function(path)


def describe_size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"
