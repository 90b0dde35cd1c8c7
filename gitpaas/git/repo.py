"""Bare app repositories and the hooks gitpaas installs into them."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

from dulwich.repo import Repo
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from gitpaas import forkserver
from gitpaas.errors import EnvironmentProblem, PushRefused
from gitpaas.settings import HOOK_CLIENT, Settings

#: The repository's ``hooks/`` folder: templates of the hooks installed into every app repo.
HOOK_TEMPLATES = Path(__file__).resolve().parents[2] / "hooks"
DEPLOY_BRANCHES = ("refs/heads/main", "refs/heads/master")
#: the "no commit" git reports as the old value of a new branch, or the new value of a deleted one
ZERO_SHA = "0" * 40


def init_bare(path: Path) -> None:
    repo = Repo.init_bare(str(path), mkdir=True, default_branch=b"main")
    repo.close()


def install_hooks(repo_path: Path, settings: Settings, python: str | None = None) -> None:
    """Render every template in ``hooks/`` into the repo's hooks folder, executable."""
    if not HOOK_TEMPLATES.is_dir():
        raise EnvironmentProblem(f"hook templates not found at {HOOK_TEMPLATES}; install gitpaas from its source tree")
    env = Environment(loader=FileSystemLoader(str(HOOK_TEMPLATES)), undefined=StrictUndefined, keep_trailing_newline=True)
    values = {"home": shlex.quote(str(settings.home)), "python": shlex.quote(python or sys.executable),
              "client": shlex.quote(HOOK_CLIENT)}
    target = repo_path / "hooks"
    target.mkdir(parents=True, exist_ok=True)
    for template in sorted(HOOK_TEMPLATES.iterdir()):
        if template.name.startswith(".") or template.suffix == ".md":
            continue
        path = target / template.name
        path.write_text(env.get_template(template.name).render(values))
        path.chmod(0o700)  # run by git as the home's owner; nobody else needs to read it


# --- a push's ref update, which git makes after the hook exits ---------------------------------
#
# git updates the ref only after pre-receive exits, i.e. after the release lock is released. A
# second push that was waiting for the lock could otherwise look at the ref before git moved it,
# deploy on a stale base and then be refused by git's own compare-and-swap: deployed, yet reported
# failed. So a successful deploy leaves a note; the next holder of the lock waits until git has
# moved the ref (or the first push's git process is gone) before checking its own base.

IN_FLIGHT = "push-in-flight.json"


def _note(app_dir: Path, ref: str) -> Path:
    """One note per branch: pushes of main and of a review app's branch hold different locks."""
    if ref in DEPLOY_BRANCHES:
        return app_dir / IN_FLIGHT
    return app_dir / f"push-in-flight-{hashlib.sha1(ref.encode()).hexdigest()[:12]}.json"


def note_ref_update(app_dir: Path, ref: str, new: str) -> None:
    _note(app_dir, ref).write_text(json.dumps({"ref": ref, "new": new, "git_pid": forkserver.parent_pid()}))


def read_ref(repo_path: Path, ref: str) -> str | None:
    repo = Repo(str(repo_path))
    try:
        return repo.refs[ref.encode()].decode()
    except KeyError:
        return None
    finally:
        repo.close()


def wait_for_noted_ref_update(app_dir: Path, repo_path: Path, ref: str | None = None, timeout: float = 60.0) -> None:
    """Wait until git moved the ref a deploy noted (``ref``; None: every noted ref of the app)."""
    notes = [_note(app_dir, ref)] if ref else sorted(app_dir.glob("push-in-flight*.json"))
    for note in notes:
        try:
            pending = json.loads(note.read_text())
        except (FileNotFoundError, ValueError):
            continue
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if read_ref(repo_path, pending["ref"]) == pending["new"] or not _alive(pending["git_pid"]):
                break
            time.sleep(0.02)
        note.unlink(missing_ok=True)


def ensure_ref_unmoved(app_dir: Path, repo_path: Path, ref: str, old: str) -> None:
    """Refuse a push whose branch moved while it waited for the release lock."""
    wait_for_noted_ref_update(app_dir, repo_path, ref)
    current = read_ref(repo_path, ref) or ZERO_SHA
    if current != old:
        raise PushRefused(f"{ref.removeprefix('refs/heads/')} moved to {current[:7]} while this push waited; "
                          "fetch, merge and push again")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1] != "Z"
    except (OSError, IndexError):
        return True
