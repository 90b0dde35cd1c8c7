"""What the router reads about nginx's processes from /proc, and who its workers run as.

nginx reports its state through its process titles ("nginx: master process ...", "nginx: worker
process", "nginx: worker process is shutting down"), so reading /proc is how ``NginxRouter`` knows
which nginx belongs to its home and when a reload has retired the old workers. Linux only.
"""

from __future__ import annotations

import grp
import os
import pwd
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
    """Who nginx's workers run as ("user group"), when gitpaas runs as root; else None (they run
    as gitpaas's own user). ``nobody``: the workers read nothing of the home (the master opens the
    configuration and the logs) and write only their temp folder, which they own, in a folder
    everyone may pass through (:func:`temp_dir`); the owner of the router folder where there is
    no ``nobody``."""
    if os.geteuid() != 0:
        return None
    try:
        nobody = pwd.getpwnam("nobody")
        return f"nobody {grp.getgrgid(nobody.pw_gid).gr_name}"
    except KeyError:
        owner = router_dir.stat()  # no user "nobody" on this system: the folder's owner
        return f"{pwd.getpwuid(owner.st_uid).pw_name} {grp.getgrgid(owner.st_gid).gr_name}"


def temp_dir(router_dir: Path, home_id: str) -> Path:
    """Where the workers buffer large request and response bodies: inside the (private) home when
    they run as gitpaas's own user; when gitpaas runs as root, a folder of the workers' own outside
    it (``/var/cache/gitpaas-router-HOMEID``, 0700, theirs), since they may not enter a 0700 home.
    Directly under ``/var/cache``, which everyone may pass through."""
    if os.geteuid() != 0:
        return router_dir / "tmp"
    return Path("/var/cache") / f"gitpaas-router-{home_id}"


def prepare_temp_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        user = (worker_user(path) or "root root").split()
        os.chown(path, pwd.getpwnam(user[0]).pw_uid, grp.getgrnam(user[1]).gr_gid)
