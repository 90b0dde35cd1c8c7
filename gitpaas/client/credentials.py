"""Where a login is kept: ``~/.config/gitpaas/credentials.json`` (or ``$XDG_CONFIG_HOME``), mode
0600 in a 0700 folder, as the Heroku CLI keeps its token in ``~/.netrc``. One server at a time.

``GITPAAS_SERVER`` with ``GITPAAS_API_KEY`` in the environment stand in for a stored login (for CI
jobs and scripts, like ``HEROKU_API_KEY``)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from gitpaas.errors import EnvironmentProblem, UsageError


@dataclass(frozen=True)
class Login:
    #: the API's base URL, e.g. ``https://paas.example.com`` (no trailing slash)
    server: str
    email: str
    token: str

    @property
    def host(self) -> str:
        """``host`` or ``host:port``: what git's credential requests and the remote's URL name."""
        return urlsplit(self.server).netloc


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or "~").expanduser() / ".config")
    return Path(base) / "gitpaas"


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    return config_dir(environ) / "credentials.json"


def normalize_server(url: str) -> str:
    """``paas.example.com`` → ``https://paas.example.com``; refuses what is not an HTTP(S) URL."""
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise UsageError(f"{url!r} is not a server URL: write it as https://HOST[:PORT]")
    try:
        parts.port  # noqa: B018  (reading it checks it)
    except ValueError:
        raise UsageError(f"{url!r} has a port that is not a number from 1 to 65535") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def load(environ: Mapping[str, str] | None = None) -> Login | None:
    """The login in effect: the environment's, else the stored one, else None."""
    env = os.environ if environ is None else environ
    if env.get("GITPAAS_API_KEY"):
        if not env.get("GITPAAS_SERVER"):
            raise UsageError("GITPAAS_API_KEY is set but GITPAAS_SERVER is not: set both (the server's URL too)")
        return Login(normalize_server(env["GITPAAS_SERVER"]), env.get("GITPAAS_EMAIL", ""), env["GITPAAS_API_KEY"])
    path = credentials_path(env)
    try:
        data = json.loads(path.read_text())
        return Login(server=data["server"], email=data["email"], token=data["token"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"{_shown(path, env)} cannot be read: run `gitpaas logout` and log in again") from None


def save(login: Login, environ: Mapping[str, str] | None = None) -> Path:
    """Write the login atomically, readable by its owner only (the folder too)."""
    path = credentials_path(environ)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
    except OSError as exc:
        raise EnvironmentProblem(f"cannot keep the login in {_shown(path.parent, os.environ if environ is None else environ)}: "
                                 f"{exc.strerror}") from None
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(asdict(login), handle, indent=2)
            handle.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def forget(environ: Mapping[str, str] | None = None) -> Login | None:
    """Remove the stored login; returns what it was (None when there was none)."""
    path = credentials_path(environ)
    try:
        data = json.loads(path.read_text())
        login = Login(server=data["server"], email=data["email"], token=data["token"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        login = Login("", "", "")
    path.unlink(missing_ok=True)
    return login


def _shown(path: Path, environ: Mapping[str, str]) -> str:
    """The path as its owner knows it, under their home: errors name no other folder."""
    home = Path(environ.get("HOME") or "~").expanduser()
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return path.name
