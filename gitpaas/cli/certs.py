"""certs, certs:add, certs:remove: HTTPS for every app and the API, with the operator's certificate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click

from gitpaas.cli.common import platform
from gitpaas.cli.group import cli
from gitpaas.errors import UsageError


def _openssl(*args: str, data: bytes | None = None) -> str:
    result = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=30)
    if result.returncode != 0:
        raise UsageError(result.stderr.decode(errors="replace").strip().splitlines()[-1:][0]
                         if result.stderr.strip() else f"openssl {args[0]} failed")
    return result.stdout.decode(errors="replace")


@cli.command("certs:add")
@click.argument("certificate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def certs_add(certificate: Path, key: Path) -> None:
    """Serve HTTPS on $GITPAAS_HTTPS_PORT with CERTIFICATE (PEM, chain allowed) and its KEY."""
    cert_pem, key_pem = certificate.read_bytes(), key.read_bytes()
    try:
        subject = _openssl("x509", "-noout", "-subject", "-enddate", data=cert_pem).strip()
    except UsageError as exc:
        raise UsageError(f"{certificate} is not a PEM certificate: {exc}") from None
    try:
        key_public = _openssl("pkey", "-pubout", data=key_pem)
    except UsageError as exc:
        raise UsageError(f"{key} is not a PEM private key: {exc}") from None
    if _openssl("x509", "-noout", "-pubkey", data=cert_pem) != key_public:
        raise UsageError(f"{key} is not the private key of {certificate}")
    plat = platform()
    plat.router.set_certificate(cert_pem, key_pem)
    click.echo(f"Serving HTTPS on port {plat.settings.https_port} with {certificate.name}: "
               + " ".join(subject.split("\n")))


@cli.command("certs")
def certs_show() -> None:
    """Show the certificate HTTPS is served with."""
    plat = platform()
    tls = plat.router.tls()
    if tls is None:
        click.echo("No certificate: the router serves plain HTTP only. Add one with `gitpaas certs:add CERT KEY`.")
        return
    details = _openssl("x509", "-noout", "-subject", "-issuer", "-enddate", "-in", tls["certificate"])
    click.echo(f"HTTPS on port {tls['port']}\n{details.strip()}")


@cli.command("certs:remove")
def certs_remove() -> None:
    """Stop serving HTTPS."""
    platform().router.remove_certificate()
    click.echo("Removed the certificate: the router serves plain HTTP only.")
