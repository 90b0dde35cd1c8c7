"""login, logout, whoami, git:remote and git:credential: the gitpaas CLI on a team member's machine.

A login is the server's URL and a token (``gitpaas tokens:create`` on the server, or
``gitpaas authorizations:create``), kept 0600 (``gitpaas.client.credentials``). ``git:remote``
points a repository at the server's git over HTTPS; git asks ``gitpaas git:credential`` for the
token each time it needs one, so the token is never written into the repository's config."""

from __future__ import annotations

import ipaddress
import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from gitpaas.cli.common import app_option, backend
from gitpaas.cli.group import cli
from gitpaas.client import credentials
from gitpaas.client.credentials import Login
from gitpaas.errors import EnvironmentProblem, Unauthorized, UsageError


def _loopback(server: str) -> bool:
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command("login")
@click.option("--server", metavar="URL", help="the gitpaas server's API, e.g. https://api.paas.example.com "
                                                "(default: the one you last logged in to)")
@click.option("--token", metavar="TOKEN", help="the API token (default: asked for, or read from standard input; "
                                                "a token on the command line shows in `ps` and your shell's history)")
def login(server: str | None, token: str | None) -> None:
    """Log in to a gitpaas server: its app commands then work from this machine."""
    previous = credentials.load() if server is None else None
    if server is None and previous is None:
        raise UsageError("which server? run `gitpaas login --server https://HOST[:PORT]`")
    url = credentials.normalize_server(server) if server else previous.server
    if token is None:
        if sys.stdin.isatty():
            token = click.prompt(f"Token for {url}", hide_input=True, err=True)
        else:
            token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise UsageError("no token given: create one on the server with `gitpaas tokens:create --user EMAIL`")
    if url.startswith("http://") and not _loopback(url):
        click.echo(f" !    {url} is plain HTTP: your token crosses the network unencrypted; use HTTPS unless "
                   "this network is trusted", err=True)
    account = _api(Login(url, "", token)).get("/account")
    email = account.get("email") if isinstance(account, dict) else None
    if not isinstance(email, str):
        raise EnvironmentProblem(f"{url} did not answer as gitpaas's API does (no account): is that the address "
                                 "of `gitpaas server`?")
    path = credentials.save(Login(url, email, token))
    click.echo(f"Logged in to {url} as {email} (token kept in {_shown(path)}, readable by you only)")
    if os.environ.get("GITPAAS_HOME"):
        click.echo(" !    GITPAAS_HOME is set in this shell: commands here act on that home; unset it to use "
                   "this login", err=True)


def _api(found: Login):
    from gitpaas.client.api import (
        Api,  # (requests: loaded only by the commands that talk to a server)
    )

    return Api(found)


def _shown(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)  # (the user's own config folder, on their own machine)


@cli.command("logout")
def logout() -> None:
    """Forget this machine's login (the token stays valid on the server until revoked there)."""
    gone = credentials.forget()
    if gone is None:
        click.echo("Not logged in to a gitpaas server.")
    else:
        click.echo(f"Logged out of {gone.server or 'the server'}.")


@cli.command("whoami")
def whoami() -> None:
    """Show the account this machine is logged in as (asking the server, so a revoked token shows)."""
    found = credentials.load()
    if found is None:
        raise Unauthorized("not logged in to a gitpaas server: run `gitpaas login --server URL` "
                           "(on the server itself, commands act on its home as its operator)")
    account = _api(found).get("/account")
    if not isinstance(account, dict) or not isinstance(account.get("email"), str):
        raise EnvironmentProblem(f"{found.server} did not answer as gitpaas's API does (no account)")
    click.echo(account["email"])


@cli.command("git:remote")
@app_option
@click.option("-r", "--remote", "name", default="gitpaas", show_default=True, help="the git remote's name")
def git_remote(app: str, name: str) -> None:
    """Add (or repoint) a git remote that pushes APP to the server over HTTP(S) with your login.

    The token is not written into the repository: git asks `gitpaas git:credential` for it."""
    found = credentials.load()
    if found is None:
        raise UsageError("git:remote needs a login: run `gitpaas login --server URL` first")
    url = backend().app(app)["git_url"]
    if _git("rev-parse", "--git-dir", check=False).returncode != 0:
        raise UsageError("this folder is not in a git repository: run `git init` (or cd into one) first")
    existing = _git("remote", "get-url", name, check=False)
    _git("remote", "set-url" if existing.returncode == 0 else "add", name, url)
    scope = f"credential.{found.server}"
    helper = f"!{shlex.quote(sys.executable)} -m gitpaas git:credential"
    _git("config", "--unset-all", f"{scope}.helper", check=False)
    _git("config", "--add", f"{scope}.helper", "")  # no other helper stores the token
    _git("config", "--add", f"{scope}.helper", helper)
    _git("config", f"{scope}.username", found.email or "gitpaas")
    click.echo(f"{'Set' if existing.returncode == 0 else 'Added'} git remote {name}: {url}")
    click.echo(f"Deploy with: git push {name} main")


def _git(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise EnvironmentProblem("git is not installed here: git:remote configures git") from None
    if check and result.returncode != 0:
        raise UsageError(f"git {args[0]} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return result


@cli.command("git:credential", hidden=True)
@click.argument("operation")
def git_credential(operation: str) -> None:
    """git's credential helper protocol: ``get`` answers with the login's token for its server."""
    asked = {}
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            break
        key, _, value = line.partition("=")
        asked[key] = value
    if operation != "get":
        return  # store and erase: the login is the only place the token lives
    found = credentials.load()
    if found is None:
        return
    server = urlsplit(found.server)
    if asked.get("protocol") == server.scheme and asked.get("host") == server.netloc:
        click.echo(f"username={found.email or 'gitpaas'}")
        click.echo(f"password={found.token}")
