"""users, tokens, keys, access and sshd:config: who may do what, and git push over SSH."""

from __future__ import annotations

import getpass

import click

from gitpaas.accounts import Accounts
from gitpaas.cli.common import (
    app_option,
    backend,
    json_option,
    platform,
    print_json,
    print_table,
)
from gitpaas.cli.group import cli
from gitpaas.operations import init_home
from gitpaas.sshd import configure_sshd

user_option = click.option("--user", "email", required=True, metavar="EMAIL", help="the account")
user_filter = click.option("--user", "email", default=None, metavar="EMAIL", help="only this account's")


def accounts() -> Accounts:
    return Accounts(platform().settings)


# --- users -------------------------------------------------------------------------------------

@cli.command("users:add")
@click.argument("email")
@click.option("--name", default=None, help="the person's full name")
def users_add(email: str, name: str | None) -> None:
    """Create an account. Give it a token (tokens:create) or a key (keys:add) to let it in."""
    user = accounts().add_user(email, name)
    click.echo(f"Adding user {user['email']}... done")


@cli.command("users")
@json_option
def users_list(as_json: bool) -> None:
    """List the accounts."""
    users = accounts().users()
    if as_json:
        print_json(users)
        return
    if not users:
        click.echo("No users yet. Add one with `gitpaas users:add EMAIL`.")
        return
    print_table(["email", "name", "created"], ((u["email"], u.get("name"), u["created_at"]) for u in users))


# --- tokens ------------------------------------------------------------------------------------

@cli.command("tokens:create")
@user_option
@click.option("--description", default="", help="what the token is for")
def tokens_create(email: str, description: str) -> None:
    """Create an API token for an account (also the password for git over HTTPS)."""
    record, token = accounts().create_token(email, description)
    click.echo(f"Creating token for {record['user']}... done")
    click.echo(f"Id:    {record['id']}")
    click.echo(f"Token: {token}")
    click.echo("Copy the token now: gitpaas keeps only its hash and cannot show it again.", err=True)


def _token_rows(tokens: list[dict]):
    for token in tokens:
        yield (token["id"], token["user"], token["description"], token["created_at"],
               f"revoked {token['revoked_at']}" if token["revoked_at"] else "active")


@cli.command("tokens")
@user_filter
@json_option
def tokens_list(email: str | None, as_json: bool) -> None:
    """List API tokens (their ids and descriptions; never the tokens)."""
    tokens = [{key: value for key, value in token.items() if key != "sha256"} for token in accounts().tokens(email)]
    if as_json:
        print_json(tokens)
        return
    if not tokens:
        click.echo("No tokens. Create one with `gitpaas tokens:create --user EMAIL`.")
        return
    print_table(["id", "user", "description", "created", "status"], _token_rows(tokens))


@cli.command("tokens:revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by its id: requests with it are refused (401) from now on."""
    token = accounts().revoke_token(token_id)
    click.echo(f"Revoking token {token['id']} of {token['user']}... done (revoked at {token['revoked_at']})")


# --- SSH keys ----------------------------------------------------------------------------------

@cli.command("keys:add")
@user_option
@click.argument("key_file", type=click.File("r"), default="-", metavar="[PUBLIC_KEY_FILE]")
def keys_add(email: str, key_file) -> None:
    """Let an SSH public key (a file, or standard input) git push as an account."""
    key = accounts().add_key(email, key_file.read())
    click.echo(f"Adding key {key['fingerprint']} for {key['email']}... done")


@cli.command("keys")
@user_filter
@json_option
def keys_list(email: str | None, as_json: bool) -> None:
    """List the SSH keys allowed to git push."""
    keys = accounts().keys(email)
    if as_json:
        print_json(keys)
        return
    if not keys:
        click.echo("No keys. Add one with `gitpaas keys:add --user EMAIL < ~/.ssh/id_ed25519.pub`.")
        return
    print_table(["fingerprint", "user", "type", "comment", "added"],
                ((k["fingerprint"], k["email"], k["public_key"].split()[0], k["comment"], k["created_at"])
                 for k in keys))


@cli.command("keys:remove")
@click.argument("fingerprint")
def keys_remove(fingerprint: str) -> None:
    """Stop an SSH key (named by its SHA256 fingerprint or id) from pushing."""
    key = accounts().remove_key(fingerprint)
    click.echo(f"Removing key {key['fingerprint']} of {key['email']}... done")


# --- access to an app --------------------------------------------------------------------------

@cli.command("access")
@app_option
@json_option
def access_list(app: str, as_json: bool) -> None:
    """Who may use the app: its owner and collaborators."""
    record = backend().access(app)
    rows = ([(record.owner, "owner")] if record.owner else []) + [(c, "collaborator") for c in record.collaborators]
    if as_json:
        print_json([{"user": {"email": email}, "role": role} for email, role in rows])
        return
    if not rows:
        click.echo(f"{app} has no owner: only the server's operator may use it.")
        return
    print_table(["email", "role"], rows, title=f"=== {app} Access List")


@cli.command("access:add")
@click.argument("email")
@app_option
def access_add(email: str, app: str) -> None:
    """Let another account use the app (push, config, releases...)."""
    added = backend().add_access(app, email)
    click.echo(f"Adding {added} access to the app {app}... done")


@cli.command("access:remove")
@click.argument("email")
@app_option
def access_remove(email: str, app: str) -> None:
    """Take a collaborator's access to the app away."""
    wanted = backend().remove_access(app, email)
    click.echo(f"Removing {wanted} access to the app {app}... done")


# --- the sshd ----------------------------------------------------------------------------------

@cli.command("sshd:config")
@click.option("--port", type=click.IntRange(1, 65535), default=2222, show_default=True, help="the port sshd listens on")
@click.option("--listen", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="the address sshd listens on (0.0.0.0: every interface)")
@click.option("--user", "os_user", default=None, metavar="OS_USER",
              help="the OS user git connects as (default: the user running this command)")
@click.option("--strict-modes/--no-strict-modes", default=True, show_default=True,
              help="sshd's check that no one else can write authorized_keys or the folders above it")
def sshd_config(port: int, listen: str, os_user: str | None, strict_modes: bool) -> None:
    """Write an sshd config that serves git push to this home, and print how to start it."""
    plat = platform()
    init_home(plat)
    user = os_user or getpass.getuser()
    setup = configure_sshd(plat.settings, Accounts(plat.settings), port, listen, user, strict_modes)
    host = "HOST" if listen in ("0.0.0.0", "::") else listen
    click.echo(f"Wrote {setup.config_path} (port {port} on {listen}, logins as {user}, public keys only)")
    click.echo(f"Keys allowed to push: {setup.authorized_keys_path} (rewritten by keys:add and keys:remove)")
    click.echo("Start sshd as root (add -D -e to keep it in the foreground):")
    click.echo(f"  {' '.join(setup.command)}")
    click.echo(f"Then: git push ssh://{user}@{host}:{port}/APP.git main")
