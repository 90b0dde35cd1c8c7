"""Accounts, tokens and SSH keys (gitpaas/accounts.py), the sshd config (gitpaas/sshd.py), the SSH
forced command and their CLI commands."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from schema import validate

from gitpaas.accounts import Accounts, parse_public_key
from gitpaas.cli.main import cli
from gitpaas.errors import UsageError, UserNotFound
from gitpaas.identity import account_id
from gitpaas import ssh_shell
from gitpaas.operations import create_app
from gitpaas.platform import Platform
from gitpaas.settings import Settings
from gitpaas.shapes import account_json
from gitpaas.sshd import configure_sshd, insecure_directories

ALICE = "alice@example.com"
BOB = "bob@example.com"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", http_port=8080)


@pytest.fixture
def accounts(settings) -> Accounts:
    made = Accounts(settings)
    made.add_user(ALICE)
    made.add_user(BOB)
    return made


@pytest.fixture
def keypair(tmp_path) -> tuple[Path, str]:
    """(private key path, public key line) of a fresh ed25519 key."""
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", str(path)],
                   check=True)
    return path, path.with_suffix(".pub").read_text()


def all_files(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


# --- users ---------------------------------------------------------------------------------------

def test_users_are_normalized_unique_and_validated(settings):
    accounts = Accounts(settings)
    user = accounts.add_user("  Alice@Example.COM ")
    assert user["email"] == ALICE and user["id"] == account_id(ALICE)
    assert accounts.get_user("ALICE@example.com") == user
    with pytest.raises(UsageError, match="already exists"):
        accounts.add_user(ALICE)
    for junk in ("alice", "alice@", "@example.com", "a b@example.com", 'x"@y.z', "a@b@c.d", ""):
        with pytest.raises(UsageError, match="not an e-mail address"):
            accounts.add_user(junk)
    with pytest.raises(UserNotFound) as caught:
        accounts.get_user("carol@example.com")
    assert caught.value.exit_code == 3 and caught.value.http_status == 404
    assert [u["email"] for u in accounts.users()] == [ALICE]


def test_account_files_are_private(accounts, settings):
    accounts.create_token(ALICE)
    assert stat.S_IMODE((settings.home / "accounts").stat().st_mode) == 0o700
    for name in ("users.json", "tokens.json"):
        assert stat.S_IMODE((settings.home / "accounts" / name).stat().st_mode) == 0o600


def test_account_json_is_a_platform_api_account(accounts):
    payload = account_json(accounts.get_user(ALICE))
    validate("account", payload)
    assert payload["email"] == ALICE and payload["id"] == account_id(ALICE)


# --- tokens --------------------------------------------------------------------------------------

def test_a_token_is_stored_only_as_its_hash(accounts, settings):
    record, token = accounts.create_token(ALICE, "laptop")
    assert token.startswith("gp_") and len(token) > 40
    assert record["sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert record["description"] == "laptop" and record["revoked_at"] is None and record["user"] == ALICE
    assert token not in all_files(settings.home)
    assert token[3:] not in all_files(settings.home)
    stored = json.loads((settings.home / "accounts" / "tokens.json").read_text())
    assert stored == [record] and "token" not in stored[0]


def test_authenticate_and_revoke(accounts):
    alice_record, alice_token = accounts.create_token(ALICE)
    _, bob_token = accounts.create_token(BOB)
    assert accounts.authenticate(alice_token) == ALICE
    assert accounts.authenticate(bob_token) == BOB
    for wrong in ("", "gp_", alice_token + "x", alice_token[:-1], "gp_\udcff", alice_record["sha256"]):
        assert accounts.authenticate(wrong) is None

    revoked = accounts.revoke_token(alice_record["id"])
    assert revoked["revoked_at"] is not None
    assert accounts.authenticate(alice_token) is None
    assert accounts.authenticate(bob_token) == BOB
    assert accounts.revoke_token(alice_record["id"])["revoked_at"] == revoked["revoked_at"]  # again: no change
    assert [t["revoked_at"] is None for t in accounts.tokens()] == [False, True]
    assert [t["user"] for t in accounts.tokens(BOB)] == [BOB]
    with pytest.raises(UsageError, match="no token"):
        accounts.revoke_token("not-an-id")
    with pytest.raises(UserNotFound):
        accounts.create_token("carol@example.com")


def test_authenticate_compares_every_digest_in_constant_time(accounts, monkeypatch):
    records = [accounts.create_token(ALICE)[0] for _ in range(3)]
    compared = []

    def spy(a, b):
        compared.append((a, b))
        return a == b
    monkeypatch.setattr("gitpaas.accounts.hmac.compare_digest", spy)
    assert accounts.authenticate("gp_guess") is None
    guess = hashlib.sha256(b"gp_guess").hexdigest()
    assert compared == [(r["sha256"], guess) for r in records]
    compared.clear()
    _, token = accounts.create_token(BOB)
    assert accounts.authenticate(token) == BOB
    assert len(compared) == 4  # a match does not stop the comparisons early either


# --- SSH keys ------------------------------------------------------------------------------------

def test_a_public_key_is_parsed_and_fingerprinted(keypair):
    path, public = keypair
    key_type, blob, comment, fingerprint = parse_public_key(public)
    expected = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path.with_suffix(".pub"))],
                              capture_output=True, text=True, check=True).stdout.split()[1]
    assert (key_type, comment, fingerprint) == ("ssh-ed25519", "alice@laptop", expected)
    assert public.split()[1] == blob
    assert parse_public_key(f"  {key_type}\t{blob}   my  \x1bkey \n") == (key_type, blob, "my key", fingerprint)


@pytest.mark.parametrize("text, words", [
    ("", "one public key line"),
    ("hello world", "not an OpenSSH public key"),
    ('command="sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA', "not an OpenSSH public key"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBAD", "ssh-keygen cannot read it"),
    ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIB2B03dxeLpTuQmD8gHzJ+kn8Nu6Pm2jYwSnVXAZR7Fp", "ssh-keygen cannot read it"),
    ("ssh-ed25519 AAAA\nssh-ed25519 BBBB", "one public key line"),
])
def test_junk_is_not_a_key(text, words):
    with pytest.raises(UsageError, match=words) as caught:
        parse_public_key(text)
    assert "\n" not in str(caught.value)


def test_a_private_key_is_refused(keypair, accounts, settings):
    path, _ = keypair
    with pytest.raises(UsageError, match="private key"):
        accounts.add_key(ALICE, path.read_text())
    assert accounts.keys() == []
    assert path.read_text() not in all_files(settings.home)


def test_authorized_keys_force_the_git_shell(accounts, keypair, settings):
    _, public = keypair
    key = accounts.add_key(ALICE, public)
    assert key["email"] == ALICE and key["public_key"] == " ".join(public.split()[:2])
    assert set(key) == {"id", "email", "fingerprint", "public_key", "comment", "created_at", "updated_at"}
    path = settings.home / "ssh" / "authorized_keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert lines == [line for line in accounts.authorized_keys_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 1
    assert lines[0].startswith(f'command="env GITPAAS_HOME={settings.home} PATH=')
    assert f" -m gitpaas.ssh_shell {ALICE}\",restrict {key['public_key']} alice@laptop" in lines[0]
    # ssh-keygen reads the line (options and all) as a valid authorized_keys entry
    check = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], check=False, capture_output=True, text=True)
    assert check.returncode == 0 and key["fingerprint"] in check.stdout

    with pytest.raises(UsageError, match="already added"):
        accounts.add_key(BOB, public)
    assert accounts.remove_key(key["fingerprint"])["id"] == key["id"]
    assert accounts.keys() == [] and "ssh-ed25519" not in path.read_text()
    with pytest.raises(UsageError, match="no key"):
        accounts.remove_key(key["fingerprint"])


def test_a_home_with_quotes_is_escaped_in_the_forced_command(tmp_path, keypair):
    settings = Settings(home=tmp_path / 'odd "home"', http_port=8080)
    accounts = Accounts(settings)
    accounts.add_user(ALICE)
    accounts.add_key(ALICE, keypair[1])
    path = settings.home / "ssh" / "authorized_keys"
    check = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], check=False, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_sshd_config_allows_only_public_keys(tmp_path, accounts, settings):
    import getpass

    user = getpass.getuser()
    if insecure_directories(tmp_path / "x", os.getuid()):  # /tmp: sshd's StrictModes would refuse
        with pytest.raises(UsageError, match="no-strict-modes"):
            configure_sshd(settings, accounts, 2222, "127.0.0.1", user)
    setup = configure_sshd(settings, accounts, 2222, "127.0.0.1", user, strict_modes=False)
    text = setup.config_path.read_text()
    for line in ("Port 2222", "ListenAddress 127.0.0.1", f"AllowUsers {user}", "PasswordAuthentication no",
                 "AuthenticationMethods publickey", f"AuthorizedKeysFile {setup.authorized_keys_path}",
                 "DisableForwarding yes", "PermitTTY no"):
        assert line in text.splitlines()
    key = setup.host_key_path.read_text()
    again = configure_sshd(settings, accounts, 2223, "127.0.0.1", user, strict_modes=False)
    assert again.host_key_path.read_text() == key, "the host key is kept"
    with pytest.raises(UsageError, match="no OS user"):
        configure_sshd(settings, accounts, 2222, "127.0.0.1", "no-such-user-here", strict_modes=False)


# --- the forced command --------------------------------------------------------------------------

@pytest.mark.parametrize("original, expected", [
    ("git-receive-pack '/shop.git'", ("git-receive-pack", "shop")),
    ("git-receive-pack 'shop.git'", ("git-receive-pack", "shop")),
    ("git-receive-pack shop", ("git-receive-pack", "shop")),
    ("git-upload-pack '/shop.git'", ("git-upload-pack", "shop")),
    ("git receive-pack 'shop.git'", ("git-receive-pack", "shop")),
])
def test_git_commands_are_understood(original, expected):
    assert ssh_shell.parse_command(original) == expected


@pytest.mark.parametrize("original", [None, "", "ls /", "bash", "git-receive-pack", "git-upload-archive 'shop.git'",
                                      "git-receive-pack 'shop.git' extra", "git-receive-pack 'shop.git; rm -rf /'",
                                      "git-receive-pack 'unterminated"])
def test_anything_else_is_refused(original, settings, capsys, monkeypatch):
    monkeypatch.setattr(ssh_shell.os, "execvpe", pytest.fail)
    create_app(Platform(settings), "shop", owner=ALICE)
    Accounts(settings).add_user(ALICE)
    environ = {"GITPAAS_HOME": str(settings.home)} | ({} if original is None else {"SSH_ORIGINAL_COMMAND": original})
    assert ssh_shell.run([ALICE], environ) == 1
    err = capsys.readouterr().err
    assert err.startswith("gitpaas: ") and err.count("\n") == 1


@pytest.fixture
def shop(settings, accounts):
    """App ``shop`` owned by alice; bob has an account but no access."""
    create_app(Platform(settings), "shop", owner=ALICE)
    return "shop"


def shell(settings, email, original, monkeypatch):
    """Run the forced command; returns its exit status and what it would exec (or None)."""
    execs = []
    monkeypatch.setattr(ssh_shell.os, "execvpe", lambda *args: execs.append(args))
    status = ssh_shell.run([email], {"GITPAAS_HOME": str(settings.home), "SSH_ORIGINAL_COMMAND": original})
    return status, (execs[0] if execs else None)


def test_the_owner_may_push_and_fetch(shop, settings, monkeypatch):
    _, (file, argv, env) = shell(settings, ALICE, "git-receive-pack '/shop.git'", monkeypatch)
    repo = str(settings.home / "apps" / "shop" / "repo.git")
    assert (file, argv) == ("git-receive-pack", ["git-receive-pack", repo])
    assert env["GITPAAS_USER"] == ALICE and env["GITPAAS_HOME"] == str(settings.home)
    _, (file, argv, _) = shell(settings, ALICE, "git-upload-pack 'shop.git'", monkeypatch)
    assert argv == ["git-upload-pack", repo]


def test_others_learn_nothing_about_the_app(shop, settings, monkeypatch, capsys):
    answers = []
    for original in ("git-receive-pack '/shop.git'", "git-receive-pack '/nothing.git'",
                     "git-receive-pack '/NOT_A_NAME.git'"):
        status, executed = shell(settings, BOB, original, monkeypatch)
        assert status == 1 and executed is None
        answers.append(capsys.readouterr().err.replace(original.split("'/")[1][:-5], "APP"))
    assert answers == ["gitpaas: you may not push to APP\n"] * 3


def test_a_collaborator_may_push_and_a_removed_one_may_not(shop, settings, monkeypatch):
    runner = CliRunner()
    env = {"GITPAAS_HOME": str(settings.home), "GITPAAS_HTTP_PORT": "8080"}
    added = runner.invoke(cli, ["access:add", BOB, "-a", "shop"], env=env)
    assert added.exit_code == 0, added.output
    assert shell(settings, BOB, "git-receive-pack 'shop.git'", monkeypatch)[1] is not None  # git runs
    listed = runner.invoke(cli, ["access", "-a", "shop", "--json"], env=env)
    assert json.loads(listed.stdout) == [{"user": {"email": ALICE}, "role": "owner"},
                                         {"user": {"email": BOB}, "role": "collaborator"}]
    assert runner.invoke(cli, ["access:remove", BOB, "-a", "shop"], env=env).exit_code == 0
    assert shell(settings, BOB, "git-receive-pack 'shop.git'", monkeypatch) == (1, None)


# --- the CLI -------------------------------------------------------------------------------------

@pytest.fixture
def run(settings):
    runner = CliRunner()
    env = {"GITPAAS_HOME": str(settings.home), "GITPAAS_HTTP_PORT": "8080"}
    return lambda *args, input=None: runner.invoke(cli, list(args), env=env, input=input)


def test_tokens_are_printed_once(run, settings):
    assert run("users:add", ALICE).exit_code == 0
    created = run("tokens:create", "--user", ALICE, "--description", "ci")
    assert created.exit_code == 0, created.output
    token = next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("Token:"))
    assert "cannot show it again" in created.stderr
    assert Accounts(settings).authenticate(token) == ALICE
    for listing in (run("tokens"), run("tokens", "--json"), run("tokens", "--user", ALICE)):
        assert listing.exit_code == 0 and "ci" in listing.stdout
        assert token not in listing.stdout and "sha256" not in listing.stdout
    token_id = json.loads(run("tokens", "--json").stdout)[0]["id"]
    revoked = run("tokens:revoke", token_id)
    assert revoked.exit_code == 0 and "done" in revoked.stdout
    assert Accounts(settings).authenticate(token) is None


def test_cli_errors_are_one_line(run):
    for args, code, words in ((("users:add", "nope"), 2, "not an e-mail address"),
                              (("tokens:create", "--user", "carol@example.com"), 3, "no user"),
                              (("keys:add", "--user", "carol@example.com"), 3, "no user"),
                              (("access:add", "carol@example.com", "-a", "shop"), 3, "no user")):
        result = run(*args, input="")
        assert result.exit_code == code, result.output
        assert words in result.stderr and result.stderr.count("\n") == 1


def test_keys_from_stdin_or_a_file(run, keypair, settings):
    path, public = keypair
    run("users:add", ALICE)
    added = run("keys:add", "--user", ALICE, input=public)
    assert added.exit_code == 0, added.output
    fingerprint = Accounts(settings).keys()[0]["fingerprint"]
    assert fingerprint in added.stdout and fingerprint in run("keys").stdout
    assert run("keys:remove", fingerprint).exit_code == 0
    assert run("keys:add", "--user", ALICE, str(path.with_suffix(".pub"))).exit_code == 0
    refused = run("keys:add", "--user", ALICE, str(path))
    assert refused.exit_code == 2 and "private key" in refused.stderr
