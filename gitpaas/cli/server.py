"""server: run the Platform API (and git over HTTP) for this gitpaas home."""

from __future__ import annotations

import errno
import socket
import ssl
import threading
import time
from pathlib import Path

import click

from gitpaas.addons.backups import run_scheduled
from gitpaas.api.rendezvous import Rendezvous, certificate
from gitpaas.cli.common import platform
from gitpaas.cli.group import cli
from gitpaas.cluster import follow_swarm
from gitpaas.errors import EnvironmentProblem, UsageError
from gitpaas.notify.drains import Forwarding
from gitpaas.operations import init_home, record_api_url
from gitpaas.pipelines import settle_promotions
from gitpaas.reviewapps import destroy_stale


@cli.command("server")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="port to listen on")
@click.option("--publish", is_flag=True, help="also route api.$GITPAAS_DOMAIN on the router's port(s) to it")
@click.option("--rendezvous-port", type=click.IntRange(0, 65535), default=None,
              help="where clients attach to one-off dynos (`run`), over TLS [default: --port + 1; 0: any free port]")
@click.option("--rendezvous-host", default=None, metavar="ADDRESS",
              help="the address it listens on [default: --host; with --publish, every interface]")
def server(host: str, port: int, publish: bool, rendezvous_port: int | None, rendezvous_host: str | None) -> None:
    """Serve the Heroku-shaped Platform API and git smart HTTP (Ctrl-C stops it); also takes the
    scheduled PostgreSQL backups, feeds the log drains and is where one-off dynos attach."""
    # Imported when the command runs: every other command starts without loading FastAPI and uvicorn.
    import uvicorn

    from gitpaas.api.application import create_app

    plat = platform()
    init_home(plat)  # releases a killed server left pending were settled by the CLI group already
    for promotion in settle_promotions(plat):  # and so the promotions they were part of end too
        click.echo(f"promotion {promotion} was interrupted by the server's stop: settled", err=True)
    click.echo(f"gitpaas API for {plat.settings.home} on http://{host}:{port}/ (OpenAPI: /openapi.json)")
    if publish:
        api_host = f"api.{plat.settings.domain}"
        backend = "127.0.0.1" if host in ("0.0.0.0", "::", "127.0.0.1", "localhost") else host
        plat.router.set_app("api", [api_host], [(backend, port)], max_body="1g")
        tls = plat.router.tls() is not None
        click.echo(f"Published as http://{api_host}:{plat.settings.http_port}/"
                   + (f" and https://{api_host}:{plat.settings.https_port}/" if tls else ""))
        # webhook events link to a release's output there (a signed URL): receivers are elsewhere
        record_api_url(plat, f"https://{api_host}:{plat.settings.https_port}" if tls
                       else f"http://{api_host}:{plat.settings.http_port}")
    rendezvous = _rendezvous(plat, rendezvous_host or ("0.0.0.0" if publish else host), port, rendezvous_port)
    threading.Thread(target=_take_scheduled_backups, args=(plat,), name="scheduled-backups", daemon=True).start()
    if plat.settings.scheduler == "swarm":  # the router follows the web processes Swarm moves
        threading.Thread(target=follow_swarm, args=(plat, threading.Event(), lambda line: click.echo(line, err=True)),
                         name="swarm-router", daemon=True).start()
    Forwarding(plat.settings, lambda: [app.name for app in plat.apps.list()],
               lambda app: plat.scheduler.logs(app, 0, True)).start()
    # open streams (a dashboard's live page, logs --tail) would hold a stop forever: they get 5 s
    uvicorn.run(create_app(plat.settings, rendezvous), host=host, port=port, log_level="info", access_log=True,
                timeout_graceful_shutdown=5)


def _rendezvous(plat, host: str, port: int, wanted: int | None) -> Rendezvous:
    """Where clients attach to one-off dynos: TLS with the router's certificate when the operator
    added one (clients trust it already), else a self-signed one made for this home."""
    tls = plat.router.tls()
    if tls:
        cert, key = Path(tls["certificate"]), Path(tls["key"])
    else:
        names = sorted({"localhost", "127.0.0.1", f"api.{plat.settings.domain}", socket.gethostname(),
                        *([host] if host not in ("0.0.0.0", "::") else [])})
        cert, key = certificate(plat.settings.home / "rendezvous", names)
    chosen = port + 1 if wanted is None else wanted
    try:
        rendezvous = Rendezvous(host, chosen, cert, key)
    except ssl.SSLError as exc:
        raise EnvironmentProblem(f"the rendezvous cannot use its certificate ({exc.reason or exc})") from None
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise EnvironmentProblem(f"the rendezvous cannot start ({exc.strerror or exc})") from None
        raise UsageError(f"cannot listen for one-off dynos on {host} port {chosen} ({exc.strerror}): "
                         "choose another with --rendezvous-port or --rendezvous-host") from None
    rendezvous.serve()
    click.echo(f"One-off dynos (run) attach on {host} port {rendezvous.port} over TLS"
               + ("" if tls else f"; the Heroku CLI trusts its certificate with NODE_EXTRA_CA_CERTS={cert}"))
    return rendezvous


def _take_scheduled_backups(plat, every: float = 60.0) -> None:
    """Each minute, the daily PostgreSQL backups that are due (``pg:backups:schedule``); each hour,
    the stale review apps of pipelines with autodestroy on (``reviewapps:prune``)."""
    minutes = 0
    while True:
        time.sleep(every)
        minutes += 1
        try:
            lines = run_scheduled(plat)
        except Exception as exc:  # noqa: BLE001 — the next minute tries again; the API keeps serving
            lines = [f"scheduled backups could not be checked: {exc}"]
        for line in lines:
            click.echo(f"backups: {line}", err=True)
        if minutes % 60 == 0:
            try:
                for name in destroy_stale(plat):
                    click.echo(f"review apps: destroyed {name} (no push for its pipeline's stale days)", err=True)
            except Exception as exc:  # noqa: BLE001 — the next hour tries again
                click.echo(f"review apps: stale ones could not be checked: {exc}", err=True)
