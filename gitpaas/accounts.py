"""Who may do what: accounts, API tokens and SSH keys, kept under ``$GITPAAS_HOME/accounts/``.

Three files, each 0600 in a 0700 folder, readable with ``cat``:

- ``users.json``    the accounts, by e-mail;
- ``tokens.json``   API tokens: id, user, the sha256 of the token, description, created_at,
                    revoked_at. The token itself is shown once, when created, and never stored;
- ``ssh_keys.json`` public keys (Platform API ``key`` shape), from which ``ssh/authorized_keys`` is
                    rewritten on every change: each key may run only ``gitpaas.ssh_shell``.

An app belongs to the account that created it (``App.owner``) and its collaborators;
``operations.can_access`` decides. This module only says who a token or a key belongs to; the sshd
that reads ``authorized_keys`` is configured by ``gitpaas.sshd``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from filelock import FileLock

from gitpaas.errors import EnvironmentProblem, UsageError, UserNotFound
from gitpaas.identity import account_id
from gitpaas.release import now_iso
from gitpaas.settings import Settings
from gitpaas.store.files import read_json, write_atomic, write_json

TOKEN_PREFIX = "gp_"
PRIVATE = 0o600
#: how long a dashboard session lasts (a browser that logs in again gets a new one)
SESSION_TTL = 12 * 3600
#: the PATH the forced command runs with (sshd gives non-root logins one without /usr/sbin: nginx)
FORCED_COMMAND_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(rf"[A-Za-z0-9._%+-]+@{_LABEL}(?:\.{_LABEL})*")
_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
              "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def normalize_email(email: str) -> str:
    """``email`` trimmed and lowercased, or UsageError if it does not look like an e-mail address."""
    value = email.strip().lower()
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise UsageError(f"{email!r} is not an e-mail address (like alice@example.com)")
    return value


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Accounts:
    """The accounts of one gitpaas home. Every change happens under one lock, written atomically."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.home / "accounts"
        self.authorized_keys_path = settings.home / "ssh" / "authorized_keys"

    # --- users ---------------------------------------------------------------------------
    def add_user(self, email: str, name: str | None = None) -> dict:
        email = normalize_email(email)
        with self._lock():
            users = self._read("users.json")
            if any(user["email"] == email for user in users):
                raise UsageError(f"user {email} already exists")
            now = now_iso()
            user = {"id": account_id(email), "email": email, "name": name, "created_at": now, "updated_at": now}
            self._write("users.json", [*users, user])
        return user

    def users(self) -> list[dict]:
        return self._read("users.json")

    def get_user(self, email: str) -> dict:
        wanted = email.strip().lower()
        for user in self._read("users.json"):
            if user["email"] == wanted:
                return user
        raise UserNotFound(email)

    # --- tokens --------------------------------------------------------------------------
    def create_token(self, email: str, description: str = "") -> tuple[dict, str]:
        """A new API token for ``email``: (its record, the token). The token is not kept anywhere."""
        user = self.get_user(email)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = {"id": str(uuid.uuid4()), "user": user["email"], "sha256": hash_token(token),
                  "description": description, "created_at": now_iso(), "revoked_at": None}
        with self._lock():
            self._write("tokens.json", [*self._read("tokens.json"), record])
        return record, token

    def tokens(self, email: str | None = None) -> list[dict]:
        wanted = None if email is None else self.get_user(email)["email"]
        return [token for token in self._read("tokens.json") if wanted in (None, token["user"])]

    def revoke_token(self, token_id: str) -> dict:
        """Revoke a token (again: no change). Requests with it get 401 from then on."""
        with self._lock():
            tokens = self._read("tokens.json")
            for token in tokens:
                if token["id"] == token_id:
                    if token["revoked_at"] is None:
                        token["revoked_at"] = now_iso()
                        self._write("tokens.json", tokens)
                    return token
        raise UsageError(f"no token with id {token_id!r} (see `gitpaas tokens`)")

    def authenticate(self, token: str) -> str | None:
        """The e-mail of the account ``token`` belongs to; None if it is unknown or revoked."""
        record = self._token_record(token)
        return record["user"] if record else None

    def _token_record(self, token: str) -> dict | None:
        """The live (unrevoked) record of ``token``. Every stored digest is compared in constant
        time, so the answer's timing tells nothing about how close a guess came."""
        if not token:
            return None
        digest = hash_token(token)
        found = None
        for record in self._read("tokens.json"):
            if hmac.compare_digest(record["sha256"], digest) and record["revoked_at"] is None:
                found = record
        return found

    # --- dashboard sessions ----------------------------------------------------------------
    def start_session(self, token: str, ttl: float = SESSION_TTL) -> tuple[str, dict] | None:
        """A browser session for the account of ``token``: (the session's secret, for its cookie;
        its record). None for an unknown or revoked token. Only the secret's digest is kept, in
        ``accounts/sessions.json``, with the token it came from: revoking the token ends it."""
        token_record = self._token_record(token)
        if token_record is None:
            return None
        secret = secrets.token_urlsafe(32)
        now = time.time()
        record = {"sha256": hash_token(secret), "user": token_record["user"], "token_id": token_record["id"],
                  "csrf": secrets.token_urlsafe(32), "created_at": now_iso(), "expires": now + ttl}
        with self._lock():
            live = [s for s in self._read("sessions.json") if s["expires"] > now]
            self._write("sessions.json", [*live, record])
        return secret, record

    def session(self, secret: str) -> dict | None:
        """The live session whose secret this is: not ended, not expired, its token not revoked."""
        if not secret:
            return None
        digest, now = hash_token(secret), time.time()
        found = next((s for s in self._read("sessions.json")
                      if hmac.compare_digest(s["sha256"], digest) and s["expires"] > now), None)
        if found is None:
            return None
        if not any(t["id"] == found["token_id"] and t["revoked_at"] is None for t in self._read("tokens.json")):
            return None
        return found

    def end_session(self, secret: str) -> None:
        digest = hash_token(secret)
        with self._lock():
            sessions = self._read("sessions.json")
            kept = [s for s in sessions if not hmac.compare_digest(s["sha256"], digest)]
            if len(kept) != len(sessions):
                self._write("sessions.json", kept)

    # --- SSH keys ------------------------------------------------------------------------
    def add_key(self, email: str, public_key_text: str) -> dict:
        """Authorize an OpenSSH public key (one line: ``type base64 [comment]``) to push as ``email``."""
        user = self.get_user(email)
        key_type, blob, comment, fingerprint = parse_public_key(public_key_text)
        with self._lock():
            keys = self._read("ssh_keys.json")
            for key in keys:
                if key["fingerprint"] == fingerprint:
                    raise UsageError(f"key {fingerprint} is already added (to {key['email']})")
            now = now_iso()
            record = {"id": str(uuid.uuid4()), "email": user["email"], "fingerprint": fingerprint,
                      "public_key": f"{key_type} {blob}", "comment": comment,
                      "created_at": now, "updated_at": now}
            keys.append(record)
            self._write("ssh_keys.json", keys)
            self._write_authorized_keys(keys)
        return record

    def remove_key(self, fingerprint: str) -> dict:
        with self._lock():
            keys = self._read("ssh_keys.json")
            for key in keys:
                if fingerprint in (key["fingerprint"], key["id"]):
                    keys.remove(key)
                    self._write("ssh_keys.json", keys)
                    self._write_authorized_keys(keys)
                    return key
        raise UsageError(f"no key {fingerprint!r} (see `gitpaas keys`)")

    def keys(self, email: str | None = None) -> list[dict]:
        wanted = None if email is None else self.get_user(email)["email"]
        return [key for key in self._read("ssh_keys.json") if wanted in (None, key["email"])]

    def authorized_keys_text(self, keys: list[dict] | None = None) -> str:
        """sshd's authorized_keys: each key may run nothing but the git shell, as its user."""
        lines = ["# Written by gitpaas from accounts/ssh_keys.json: change it with gitpaas keys:add/keys:remove."]
        for key in self._read("ssh_keys.json") if keys is None else keys:
            command = " ".join([
                "env", f"GITPAAS_HOME={shlex.quote(str(self.settings.home))}",
                f"PATH={FORCED_COMMAND_PATH}",
                shlex.quote(sys.executable), "-m", "gitpaas.ssh_shell", shlex.quote(key["email"]),
            ])
            quoted = command.replace("\\", "\\\\").replace('"', '\\"')
            comment = f" {key['comment']}" if key.get("comment") else ""
            lines.append(f'command="{quoted}",restrict {key["public_key"]}{comment}')
        return "\n".join(lines) + "\n"

    def write_authorized_keys(self) -> Path:
        with self._lock():
            self._write_authorized_keys(self._read("ssh_keys.json"))
        return self.authorized_keys_path

    # --- files ---------------------------------------------------------------------------
    def _write_authorized_keys(self, keys: list[dict]) -> None:
        self.authorized_keys_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.authorized_keys_path, self.authorized_keys_text(keys).encode(), PRIVATE)

    def _lock(self) -> FileLock:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"))

    def _read(self, name: str) -> list[dict]:
        try:
            return read_json(self.root / name)
        except FileNotFoundError:
            return []

    def _write(self, name: str, value: list[dict]) -> None:
        write_json(self.root / name, value, mode=PRIVATE)


def parse_public_key(text: str) -> tuple[str, str, str, str]:
    """One OpenSSH public key line → (type, base64 blob, comment, SHA256 fingerprint).

    ssh-keygen has the last word on whether it is a key; private keys and anything with
    authorized_keys options are refused, each with a one-line reason.
    """
    if "PRIVATE KEY" in text:
        raise UsageError("that is a private key: give its public half (the .pub file), and keep the private one secret")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        raise UsageError("expected one public key line (like `ssh-ed25519 AAAA... you@laptop`), "
                         f"got {len(lines)} lines")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or parts[0] not in _KEY_TYPES or not _BASE64.fullmatch(parts[1]):
        raise UsageError("not an OpenSSH public key: expected `TYPE BASE64 [COMMENT]` with TYPE one of "
                         + ", ".join(_KEY_TYPES))
    key_type, blob = parts[:2]
    comment = " ".join("".join(c for c in parts[2] if c.isprintable()).split()) if len(parts) == 3 else ""
    return key_type, blob, comment, _fingerprint(f"{key_type} {blob}")


def _fingerprint(line: str) -> str:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise EnvironmentProblem("ssh-keygen is missing: install openssh-client (scripts/setup.sh does)")
    with tempfile.NamedTemporaryFile("w", suffix=".pub") as handle:
        handle.write(line + "\n")
        handle.flush()
        result = subprocess.run([keygen, "-l", "-E", "sha256", "-f", handle.name], check=False,
                                capture_output=True, text=True, timeout=30)
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) < 2 or not fields[1].startswith("SHA256:"):
        raise UsageError("not a valid public key: ssh-keygen cannot read it")
    return fields[1]
