"""The forced command of every gitpaas SSH key: ``python -m gitpaas.ssh_shell EMAIL``.

sshd runs it (from ``authorized_keys``) instead of whatever the client asked for, which it leaves in
``SSH_ORIGINAL_COMMAND``. Only ``git-receive-pack 'APP.git'`` (push) and ``git-upload-pack
'APP.git'`` (fetch, clone) are let through, and only to apps the key's account may access; then
git runs on the app's bare repo with ``GITPAAS_USER=EMAIL`` in its environment, so the pre-receive
hook — the same one a local push runs — records who pushed. A refusal is one line on stderr and
exit 1 before git starts, so nothing is received; it is the same whether the app does not exist or
belongs to someone else.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping

from gitpaas.accounts import Accounts
from gitpaas.errors import GitpaasError
from gitpaas.identity import Actor
from gitpaas.names import validate_app_name
from gitpaas.operations import can_access
from gitpaas.platform import Platform
from gitpaas.settings import Settings
from gitpaas.store.files import PRIVATE_UMASK

GIT_COMMANDS = {"git-receive-pack": "push to", "git-upload-pack": "fetch from"}


class Refused(Exception):
    """The one line the client is told."""


def parse_command(original: str | None) -> tuple[str, str]:
    """``git-receive-pack '/APP.git'`` → ("git-receive-pack", "APP"); Refused for anything else."""
    if not original:
        raise Refused("this key may only git push and fetch (no shell): "
                      "git push ssh://USER@HOST/APP.git main")
    try:
        words = shlex.split(original)
    except ValueError:
        words = []
    if len(words) == 3 and words[0] == "git" and f"git-{words[1]}" in GIT_COMMANDS:
        words = [f"git-{words[1]}", words[2]]  # `git receive-pack 'APP.git'`, as some clients send
    if len(words) != 2 or words[0] not in GIT_COMMANDS:
        raise Refused("gitpaas accepts only git push and git fetch over SSH")
    command, path = words
    app = path.removeprefix("/").removesuffix("/").removesuffix(".git")
    return command, app


def authorize(platform: Platform, email: str, command: str, app: str) -> None:
    """Refused unless ``email`` may use ``app`` — one message for "no such app" and "not yours"."""
    refusal = Refused(f"you may not {GIT_COMMANDS[command]} {app}")
    try:
        validate_app_name(app)
        Accounts(platform.settings).get_user(email)
        allowed = can_access(platform, Actor(email), app)
    except GitpaasError:
        raise refusal from None
    if not allowed:
        raise refusal


def run(argv: list[str], environ: Mapping[str, str]) -> int:
    if len(argv) != 1:
        print("usage: python -m gitpaas.ssh_shell EMAIL (run by sshd from gitpaas's authorized_keys)",
              file=sys.stderr)
        return 2
    email = argv[0]
    try:
        settings = Settings.from_env(environ)
        platform = Platform(settings)
        command, app = parse_command(environ.get("SSH_ORIGINAL_COMMAND"))
        authorize(platform, email, command, app)
    except Refused as exc:
        print(f"gitpaas: {exc}", file=sys.stderr)
        return 1
    except GitpaasError as exc:
        print(f"gitpaas: {exc}", file=sys.stderr)
        return 1
    repo = str(platform.apps.repo_path(app))
    os.execvpe(command, [command, repo], {**environ, "GITPAAS_USER": email})
    return 1  # not reached


def main() -> None:
    os.umask(PRIVATE_UMASK)  # for what git writes into the (private) home too
    sys.exit(run(sys.argv[1:], os.environ))


if __name__ == "__main__":
    main()
