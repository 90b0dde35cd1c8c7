"""The sshd that serves ``git push`` over SSH, configured from ``$GITPAAS_HOME/ssh/``.

``configure_sshd`` writes an sshd_config that accepts only public keys, for one OS user, with no
forwarding and no TTY, next to a host key (kept when present) and the ``authorized_keys`` that
``Accounts`` writes; every key there is forced to run ``gitpaas.ssh_shell``. Starting sshd is
left to the operator (or a service unit), as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gitpaas.accounts import PRIVATE, Accounts
from gitpaas.errors import EnvironmentProblem, UsageError
from gitpaas.settings import Settings
from gitpaas.store.files import write_atomic


@dataclass(frozen=True)
class SshdSetup:
    config_path: Path
    host_key_path: Path
    authorized_keys_path: Path
    port: int
    listen: str
    user: str
    sshd: str

    @property
    def command(self) -> list[str]:
        return [self.sshd, "-f", str(self.config_path)]


SSHD_CONFIG = """\
# Written by `gitpaas sshd:config`: an sshd that only serves `git push` to gitpaas.
# Start it as root: {sshd} -f {config}   (foreground: add -D -e)
Port {port}
ListenAddress {listen}
HostKey {host_key}
PidFile {pid_file}
AllowUsers {user}
PermitRootLogin {root_login}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
AuthorizedKeysFile {authorized_keys}
AuthorizedPrincipalsFile none
StrictModes {strict_modes}
DisableForwarding yes
PermitTTY no
PermitUserRC no
PermitUserEnvironment no
AcceptEnv GIT_PROTOCOL
PrintMotd no
PrintLastLog no
"""


def insecure_directories(path: Path, uid: int) -> list[Path]:
    """The folders above ``path`` that sshd's StrictModes refuses: writable by group or others, or
    owned by someone else than root and ``uid``."""
    found = []
    for folder in path.parents:
        info = folder.stat()
        if info.st_uid not in (0, uid) or info.st_mode & 0o022:
            found.append(folder)
    return found


def configure_sshd(settings: Settings, accounts: Accounts, port: int, listen: str, user: str,
                   strict_modes: bool = True) -> SshdSetup:
    """Write ``$GITPAAS_HOME/ssh/``: sshd_config, a host key (kept when present) and authorized_keys."""
    import pwd

    folder = settings.home / "ssh"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        raise UsageError(f"there is no OS user {user!r} to accept git pushes as (see README: SSH)") from None
    authorized_keys = accounts.write_authorized_keys()
    if strict_modes and (bad := insecure_directories(authorized_keys, uid)):
        owners = "root" if uid == 0 else f"root or {user}"
        raise UsageError(f"sshd would refuse {authorized_keys}: {bad[0]} is writable by others or not owned by "
                         f"{owners}; move GITPAAS_HOME or use --no-strict-modes")
    host_key = folder / "ssh_host_ed25519_key"
    if not host_key.exists():
        keygen = shutil.which("ssh-keygen")
        if keygen is None:
            raise EnvironmentProblem("ssh-keygen is missing: install openssh-client (scripts/setup.sh does)")
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"gitpaas@{settings.home_id}",
                        "-f", str(host_key)], check=True, capture_output=True, timeout=60)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    config = folder / "sshd_config"
    write_atomic(config, SSHD_CONFIG.format(
        sshd=sshd, config=config, port=port, listen=listen, host_key=host_key, pid_file=folder / "sshd.pid",
        user=user, root_login="prohibit-password" if uid == 0 else "no", authorized_keys=authorized_keys,
        strict_modes="yes" if strict_modes else "no",
    ).encode(), PRIVATE)
    setup = SshdSetup(config, host_key, authorized_keys, port, listen, user, sshd)
    _check_config(setup)
    return setup


def _check_config(setup: SshdSetup) -> None:
    """``sshd -t``: the config is valid (when sshd is installed and we may run it)."""
    if not os.path.exists(setup.sshd) or os.geteuid() != 0:
        return
    # sshd needs its privilege separation folder, which Debian's service unit would create.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    result = subprocess.run([setup.sshd, "-t", "-f", str(setup.config_path)], check=False, capture_output=True,
                            text=True, timeout=30)
    if result.returncode != 0:
        raise EnvironmentProblem(f"sshd -t refused {setup.config_path}: {result.stderr.strip()}")
