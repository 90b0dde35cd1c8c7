"""Which buildpacks build an app, and each one as a folder on this server.

An app names its buildpacks with the ``BUILDPACK_URL`` config var (which wins, as on Dokku) or a
``.buildpacks`` file (one per line, run in order); otherwise the bundled ones are tried in order
and the first whose ``bin/detect`` matches builds it. An entry is a bundled buildpack by name
(``python``, or Heroku's ``heroku/python``), an absolute folder on the server, or a git URL
(``https://…``, ``file:///…``, ``git@host:…``, optionally ``#ref``), cloned here at build time.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gitpaas.build.buildpack_protocol import parse_buildpacks_file
from gitpaas.errors import BuildFailed

#: The repository's ``buildpacks/`` folder: the bundled buildpacks.
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "buildpacks"
#: Detection order when the app names none: the first whose bin/detect matches builds the app.
BUNDLED = ("python", "nodejs", "static", "procfile")
CLONE_TIMEOUT = 300
#: git's own variables that a clone may keep; the hook's GIT_DIR, GIT_QUARANTINE_PATH… must not leak in.
_GIT_VARIABLES_KEPT = ("GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "GIT_SSL_NO_VERIFY", "GIT_PROXY_COMMAND")
_GIT_URL = re.compile(r"^(https?|git|ssh|file)://|^[\w.-]+@[\w.-]+:")
_COMMIT = re.compile(r"[0-9a-f]{7,40}")

EntryKind = Literal["bundled", "folder", "git"]


@dataclass(frozen=True)
class Buildpack:
    #: as the app wrote it (``python``, ``/srv/buildpacks/go``, ``https://…#v2``): every message names it so
    label: str
    #: a folder on this server holding bin/detect, bin/compile and optionally bin/release
    path: Path

    @property
    def folder_name(self) -> str:
        """A readable folder name for the buildpack inside the build container."""
        base = self.label.partition("#")[0].rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip(".-") or "buildpack"


def chosen_entries(buildpacks_file: str | None, config_vars: Mapping[str, str]) -> tuple[list[str], str | None]:
    """The buildpacks the app names and where it names them; ``([], None)`` means: detect."""
    url = config_vars.get("BUILDPACK_URL", "").strip()
    if url:
        return [url], "BUILDPACK_URL"
    if buildpacks_file is not None:
        entries = parse_buildpacks_file(buildpacks_file)
        if entries:
            return entries, ".buildpacks"
    return [], None


def kind_of(entry: str) -> EntryKind:
    if _GIT_URL.match(entry) or entry.partition("#")[0].endswith(".git"):
        return "git"
    if entry.startswith("/"):
        return "folder"
    return "bundled"


def bundled(name: str) -> Buildpack:
    return Buildpack(name, BUNDLED_DIR / name)


def resolve(entry: str, workdir: Path) -> Buildpack:
    """``entry`` as a checked folder on this server (cloning a git URL into ``workdir``)."""
    kind = kind_of(entry)
    if kind == "git":
        path = clone(entry, workdir / f"clone-{len(list(workdir.glob('clone-*')))}")
    elif kind == "folder":
        path = Path(entry)
        if not path.is_dir():
            raise BuildFailed(f"buildpack {entry}: no such folder on the server")
    else:
        name = entry.removeprefix("heroku/")
        if name not in BUNDLED or not (BUNDLED_DIR / name).is_dir():
            raise BuildFailed(f"buildpack {entry}: not a bundled buildpack ({', '.join(BUNDLED)}), "
                              "an absolute folder on the server or a git URL")
        path = BUNDLED_DIR / name
    buildpack = Buildpack(entry, path)
    check_layout(buildpack)
    return buildpack


def check_layout(buildpack: Buildpack) -> None:
    """A buildpack needs executable bin/detect and bin/compile (bin/release is optional)."""
    for script in ("bin/detect", "bin/compile"):
        path = buildpack.path / script
        if not path.is_file():
            raise BuildFailed(f"buildpack {buildpack.label}: {script} is missing")
        if not os.access(path, os.X_OK):
            raise BuildFailed(f"buildpack {buildpack.label}: {script} is not executable (chmod +x {script})")


def clone(url: str, dest: Path) -> Path:
    """``git clone`` a buildpack URL (``#ref`` picks a branch, tag or commit) from this server."""
    repository, _, ref = url.partition("#")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("GIT_") or key in _GIT_VARIABLES_KEPT}
    env["GIT_TERMINAL_PROMPT"] = "0"
    by_commit = bool(ref) and _COMMIT.fullmatch(ref) is not None
    command = ["git", "clone", "--quiet"]
    if not by_commit:
        command += ["--depth", "1"] + (["--branch", ref] if ref else [])
    _git(url, [*command, "--", repository, str(dest)], env)
    if by_commit:
        _git(url, ["git", "-C", str(dest), "checkout", "--quiet", ref], env)
    return dest


def _git(url: str, command: list[str], env: dict[str, str]) -> None:
    try:
        result = subprocess.run(command, check=False, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                                timeout=CLONE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"buildpack {url}: git clone did not finish within {CLONE_TIMEOUT} s") from None
    except OSError as exc:
        raise BuildFailed(f"buildpack {url}: cannot run git: {exc}") from exc
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        fatal = next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1] if lines else "")
        what = "git clone" if command[1] == "clone" else "git checkout"
        raise BuildFailed(f"buildpack {url}: {what} failed: {fatal or f'exit status {result.returncode}'}")
