"""What the router reads about nginx's processes from /proc, and who its workers run as.

nginx reports its state through its process titles ("nginx: master process ...", "nginx: worker
process", "nginx: worker process is shutting down"), so reading /proc is how ``NginxRouter`` knows
which nginx belongs to its home and when a reload has retired the old workers. Linux only.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path


def process_title(pid: int) -> str:
    """What ``ps`` shows for ``pid``; "" when it is gone or a zombie (nobody may reap it)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children(pid: int) -> list[int]:
    """The live (not zombie) child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def is_accepting_worker(pid: int) -> bool:
    """Is ``pid`` an nginx worker that still accepts new connections?"""
    # An old worker retitles itself "worker process is shutting down" as it closes its
    # listening sockets; from then on only the new workers accept connections.
    return process_title(pid) == "nginx: worker process"


def worker_user(router_dir: Path) -> str | None:
    """Who nginx's workers run as ("user group"), when gitpaas runs as root; else None.

    ``nobody`` if it can reach the router folder (workers write the temp files there),
    otherwise the owner of the folder: a home hidden from other users keeps its workers too.
    """
    if os.geteuid() != 0:
        return None
    if _reachable_by_others(router_dir):
        try:
            nobody = pwd.getpwnam("nobody")
            return f"nobody {grp.getgrgid(nobody.pw_gid).gr_name}"
        except KeyError:
            pass  # no user "nobody" on this system: fall back to the folder's owner
    owner = router_dir.stat()
    return f"{pwd.getpwuid(owner.st_uid).pw_name} {grp.getgrgid(owner.st_gid).gr_name}"


def _reachable_by_others(path: Path) -> bool:
    for folder in [path, *path.parents]:
        try:
            if not folder.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True
