"""Which buildpacks build an app, whether it may use them, and each one as a folder on this server.

An app names its buildpacks with the ``BUILDPACK_URL`` config var (which wins, as on Dokku) or a
``.buildpacks`` file (one per line, run in order); otherwise the bundled ones are tried in order
and the first whose ``bin/detect`` matches builds it. An entry is a bundled buildpack by name
(``python``, or Heroku's ``heroku/python``), an absolute folder on the server, or a git URL
(``https://…``, ``file:///…``, ``git@host:…``, optionally ``#ref``), cloned here at build time.

Whoever can push names these, and the server fetches them: so only the bundled buildpacks, public
``https://`` URLs (every address of the host public, and the clone pinned to those addresses) and
what the operator lists in ``GITPAAS_BUILDPACK_ALLOW`` are allowed. Everything else gets one
message, which says nothing about what exists on the server.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from gitpaas.build.buildpack_protocol import parse_buildpacks_file
from gitpaas.errors import BuildFailed
from gitpaas.netpolicy import Resolver, Verdict, check_host, system_resolver

#: The repository's ``buildpacks/`` folder: the bundled buildpacks.
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "buildpacks"
#: Detection order when the app names none: the first whose bin/detect matches builds the app.
BUNDLED = ("python", "nodejs", "static", "procfile")
CLONE_TIMEOUT = 300
#: git's own variables that a clone may keep; the hook's GIT_DIR, GIT_QUARANTINE_PATH… must not leak in.
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
_GIT_VARIABLES_KEPT = ("GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "GIT_SSL_NO_VERIFY", "GIT_PROXY_COMMAND")
_GIT_URL = re.compile(r"^(https?|git|ssh|file)://|^[\w.-]+@[\w.-]+:")
_COMMIT = re.compile(r"[0-9a-f]{7,40}")

#: what every refused entry is told, whatever the reason: it must not tell which paths exist
NOT_ALLOWED = ("not allowed: use a bundled buildpack, a public https:// git URL, "
               "or ask the operator to allow it (GITPAAS_BUILDPACK_ALLOW)")
#: git's settings for a clone from a public URL: https only, no redirect to another host
_PUBLIC_CLONE = ("protocol.allow=never", "protocol.https.allow=always", "http.followRedirects=false")

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


@dataclass(frozen=True)
class Allowed:
    """An entry that passed the policy, ready to be fetched."""

    entry: str
    kind: EntryKind
    #: for a public https:// URL: its host's checked addresses, the only ones the clone may connect to
    pinned: Verdict | None = None


def allowed(entry: str, allow: Sequence[str] = (), resolver: Resolver = system_resolver) -> Allowed:
    """``entry`` if this server may fetch it: bundled, a public https:// URL, or on the allow-list.

    ``allow`` is the operator's list (``Settings.buildpack_allow``): folders, which also cover
    ``file://`` URLs and paths of bare repositories inside them (compared after resolving symbolic
    links and ``..``), and URL prefixes. Raises BuildFailed with the one NOT_ALLOWED message.
    """
    kind = kind_of(entry)
    if kind == "bundled":
        name = entry.removeprefix("heroku/")
        if name not in BUNDLED or not (BUNDLED_DIR / name).is_dir():
            raise BuildFailed(f"buildpack {entry}: not a bundled buildpack ({', '.join(BUNDLED)}), "
                              "a public https:// git URL, or one the operator allows (GITPAAS_BUILDPACK_ALLOW)")
        return Allowed(entry, kind)
    if _on_allow_list(entry, allow):
        return Allowed(entry, kind)
    pinned = _public_https(entry, resolver) if kind == "git" else None
    if pinned is None:
        raise BuildFailed(f"buildpack {entry}: {NOT_ALLOWED}")
    return Allowed(entry, kind, pinned)


def _server_path(entry: str) -> str | None:
    """The folder on this server an entry reads from (a folder, a bare repository, ``file://``), if any."""
    # split off #ref exactly as the clone does, and not from a folder (whose name may hold a #)
    location = entry.partition("#")[0] if kind_of(entry) == "git" else entry
    if location.startswith("/"):
        return location
    if location.lower().startswith("file://"):
        parts = urlsplit(location)
        plain = parts.netloc in ("", "localhost") and not parts.query and "%" not in parts.path
        return parts.path if plain else None
    return None


def _within(path: str, folder: str) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real == top or real.startswith(top.rstrip("/") + "/")


def _on_allow_list(entry: str, allow: Sequence[str]) -> bool:
    path = _server_path(entry)
    folders = [_server_path(item) for item in allow]
    if path is not None:
        return any(folder is not None and _within(path, folder) for folder in folders)
    if entry.lower().startswith("file:"):
        return False  # a file:// URL that names no plain path on this server
    if _climbs(entry):
        return False  # `team/../other/repo` starts with `team/`, yet git fetches `other/repo`
    for prefix, folder in zip(allow, folders):
        rest = entry[len(prefix):]
        if folder is None and entry.startswith(prefix) and (
                prefix.endswith(("/", ":")) or not rest or rest[0] in "/#?"):
            return True
    return False


def _climbs(entry: str) -> bool:
    """Does the URL's path hold a ``.`` or ``..`` segment (also percent-encoded), or a backslash,
    that git or curl would resolve to another path than the one written?"""
    location = entry.partition("#")[0]
    path = location.split("://", 1)[-1].split("?", 1)[0]
    segments = re.split(r"[/\\:]", re.sub(r"%2e", ".", path, flags=re.IGNORECASE))
    return any(segment in (".", "..") for segment in segments)


def _public_https(entry: str, resolver: Resolver) -> Verdict | None:
    """The checked host of a public ``https://`` URL, or None when the URL is not one."""
    try:
        parts = urlsplit(entry.partition("#")[0])
        parts.port  # noqa: B018 - a malformed port raises here, not later in git
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.hostname:
        return None
    if re.search(r"[\s\\]", entry) or parts.netloc.count("@") > 1:
        return None  # where git's URL parser might see another host than this one
    verdict = check_host(parts.hostname, resolver)
    return verdict if verdict.public else None


def resolve(entry: str, workdir: Path, allow: Sequence[str] = (),
            resolver: Resolver = system_resolver) -> Buildpack:
    """``entry`` as a checked folder on this server, if the policy allows it (see ``allowed``)."""
    return fetch(allowed(entry, allow, resolver), workdir)


def fetch(source: Allowed, workdir: Path) -> Buildpack:
    """An allowed entry as a checked folder on this server (cloning a git URL into ``workdir``)."""
    entry = source.entry
    if source.kind == "git":
        path = clone(entry, workdir / f"clone-{len(list(workdir.glob('clone-*')))}", source.pinned)
    elif source.kind == "folder":
        # The folder the allow-list check resolved, not a symbolic link to it (tar would copy the link).
        path = Path(os.path.realpath(entry))
        if not path.is_dir():
            raise BuildFailed(f"buildpack {entry}: no such folder on the server")
    else:
        path = BUNDLED_DIR / entry.removeprefix("heroku/")
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


def clone(url: str, dest: Path, pinned: Verdict | None = None) -> Path:
    """``git clone`` a buildpack URL (``#ref`` picks a branch, tag or commit) from this server.

    With ``pinned`` (a public URL's checked host), git connects only to those addresses, over
    https only, and follows no redirect: the host cannot send it somewhere the check did not see.
    """
    repository, _, ref = url.partition("#")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("GIT_") or key in _GIT_VARIABLES_KEPT}
    if pinned is not None:  # through a proxy, the proxy would resolve the host: the pinning would hold nothing
        env = {key: value for key, value in env.items() if key.lower() not in _PROXY_VARIABLES}
    env["GIT_TERMINAL_PROMPT"] = "0"
    by_commit = bool(ref) and _COMMIT.fullmatch(ref) is not None
    command = ["git", *_pinning(repository, pinned), "clone", "--quiet"]
    if not by_commit:
        command += ["--depth", "1"] + (["--branch", ref] if ref else [])
    _git(url, [*command, "--", repository, str(dest)], env)
    if by_commit:
        _git(url, ["git", "-C", str(dest), "checkout", "--quiet", ref], env)
    return dest


def _pinning(repository: str, pinned: Verdict | None) -> list[str]:
    """git's ``-c`` options that hold a clone to the addresses checked for its host."""
    if pinned is None:
        return []
    port = urlsplit(repository).port or 443
    addresses = ",".join(f"[{a}]" if ipaddress.ip_address(a.split("%")[0]).version == 6 else a
                         for a in pinned.addresses)
    options = [*_PUBLIC_CLONE, f"http.curloptResolve={pinned.host}:{port}:{addresses}"]
    return [part for option in options for part in ("-c", option)]


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
        what = "git checkout" if "checkout" in command else "git clone"
        raise BuildFailed(f"buildpack {url}: {what} failed: {fatal or f'exit status {result.returncode}'}")
