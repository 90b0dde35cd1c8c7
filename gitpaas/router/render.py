"""The router's nginx configuration, rendered from the jinja2 templates in ``templates/``.

Pure: settings and app routes in, nginx.conf text out; no files are written and nginx is not run
(``nginx.NginxRouter`` does that). App names, host names, backends and the home's path are
validated or quoted here, so none of them can break out of its directive; app and host names are
checked by ``gitpaas.names``, the one copy of those rules.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import jinja2

from gitpaas.errors import UsageError
from gitpaas.names import is_host, validate_app_name, validate_host
from gitpaas.settings import Settings

TEMPLATES_DIR = Path(__file__).parent / "templates"


def _nginx_quote(value: object) -> str:
    """A double-quoted nginx string. nginx has no escape for ``$``: callers keep it out."""
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)
_environment.filters["q"] = _nginx_quote


def render_main_config(
    settings: Settings,
    *,
    worker_user: str | None = None,
    app_includes: list[Path] | None = None,
    tls: dict | None = None,
    temp_dir: Path | None = None,
) -> str:
    """The main nginx.conf of ``settings``' home.

    ``worker_user`` ("user group") is given when nginx starts as root. ``app_includes`` replaces
    the ``apps/*.conf`` include with these files, to test a candidate configuration. ``temp_dir``
    is where the workers buffer large bodies (default: the router folder's ``tmp``).
    """
    router_dir = str(settings.router_dir)
    temp = str(temp_dir or settings.router_dir / "tmp")
    for path in (router_dir, temp):
        if "$" in path or any(ord(char) < 32 for char in path):
            raise UsageError(f"the gitpaas home {str(settings.home)!r} must not contain '$' or control characters")
    page = (TEMPLATES_DIR / "404.html").read_text(encoding="utf-8")
    return _environment.get_template("nginx.conf.j2").render(
        router_dir=router_dir,
        temp_dir=temp,
        port=settings.http_port,
        worker_user=worker_user,
        not_found_page=page.replace("$", "&#36;"),
        app_includes=app_includes,
        tls=tls,
    )


def render_app_config(app: str, hosts: list[str], backends: list[tuple[str, int]], *, port: int,
                      max_body: str = "100m", maintenance_dir: Path | None = None) -> str:
    """The upstream and server block that route ``hosts`` on ``port`` to ``backends``.

    With no backends the app's hosts answer 503, so an app scaled to zero is not a 404. The server
    block includes ``maintenance_dir/APP.conf`` when it exists (a glob: nginx takes a pattern that
    matches nothing), which turns every answer into the maintenance page (``render_maintenance``).
    """
    validate_app_name(app)
    folder = maintenance_dir or Path("/nonexistent")
    return _environment.get_template("app.conf.j2").render(
        maintenance=f"{folder}/{app}.con[f]",
        app=app,
        upstream=f"gitpaas-app-{app}",
        hosts=_valid_hosts(hosts),
        backends=[_backend_address(host, backend_port) for host, backend_port in backends],
        port=port,
        max_body=max_body if re.fullmatch(r"\d+[kmg]?", max_body) else "100m",
    )


def render_maintenance() -> str:
    """What an app in maintenance mode answers every request with: 503, a page, and when to retry."""
    page = (TEMPLATES_DIR / "maintenance.html").read_text(encoding="utf-8").replace("$", "&#36;")
    return ("# gitpaas: this app is in maintenance mode (gitpaas maintenance:off ends it)\n"
            "default_type text/html;\nadd_header Retry-After 60 always;\n"
            f"return 503 {_nginx_quote(page)};\n")


def _valid_hosts(hosts: list[str]) -> list[str]:
    """``hosts`` normalized (see ``gitpaas.names.validate_host``), each once, in their order."""
    valid: list[str] = []
    for host in hosts:
        name = validate_host(host)
        if name not in valid:
            valid.append(name)
    if not valid:
        raise UsageError("an app needs at least one host name")
    return valid


def _backend_address(host: str, port: int) -> str:
    """``host:port`` as an nginx ``server`` takes it (IPv6 in brackets); no wildcard hosts."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise UsageError(f"invalid backend port {port!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not is_host(host) or host.startswith("*"):
            raise UsageError(f"invalid backend host {host!r}") from None
        return f"{host}:{port}"
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
