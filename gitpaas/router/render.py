"""The router's nginx configuration, rendered from the jinja2 templates in ``templates/``.

Pure: settings and app routes in, nginx.conf text out; no files are written and nginx is not run
(``nginx.NginxRouter`` does that). App names, host names, backends and the home's path are
validated or quoted here, so none of them can break out of its directive; app and host names are
checked by ``gitpaas.names``, the one copy of those rules.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from gitpaas.errors import UsageError
from gitpaas.names import is_host, validate_app_name, validate_host
from gitpaas.settings import Settings

TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Balancer:
    """What the main configuration needs to balance with Lua: the module files to load (in that
    order), the folder holding ``gitpaas_balancer.lua`` and that file's sha256 (so that a new one
    changes the configuration), and the token that lets gitpaas set backends (hex: it is written
    into the configuration as it is)."""

    modules: tuple[str, ...]
    lua_dir: str
    token: str
    source_digest: str = ""


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
# A Lua string of a backend address (digits, dots, colons and brackets: nothing to escape).
_environment.filters["lua"] = lambda address: f'"{address}"'


def compile_templates() -> None:
    """Compile the router's templates now; jinja2 keeps them (a fork server does it once for
    every push and command its children run, instead of each child, 10–17 ms apiece here)."""
    for name in ("nginx.conf.j2", "app.conf.j2"):
        _environment.get_template(name)


def render_main_config(
    settings: Settings,
    *,
    worker_user: str | None = None,
    app_includes: list[Path] | None = None,
    tls: dict | None = None,
    temp_dir: Path | None = None,
    balancer: Balancer | None = None,
) -> str:
    """The main nginx.conf of ``settings``' home.

    ``worker_user`` ("user group") is given when nginx starts as root. ``app_includes`` replaces
    the ``apps/*.conf`` include with these files, to test a candidate configuration. ``temp_dir``
    is where the workers buffer large bodies (default: the router folder's ``tmp``). ``balancer``:
    load nginx's Lua module and balance apps with ``gitpaas_balancer.lua`` (see ``Balancer``).
    """
    router_dir = str(settings.router_dir)
    temp = str(temp_dir or settings.router_dir / "tmp")
    for path in (router_dir, temp):
        if "$" in path or any(ord(char) < 32 for char in path):
            raise UsageError(f"the gitpaas home {str(settings.home)!r} must not contain '$' or control characters")
    if balancer is not None and not re.fullmatch(r"[0-9a-f]{16,128}", balancer.token):
        raise ValueError("the balancer's token must be hex")  # it is written into a Lua string as it is
    page = (TEMPLATES_DIR / "404.html").read_text(encoding="utf-8")
    return _environment.get_template("nginx.conf.j2").render(
        router_dir=router_dir,
        temp_dir=temp,
        port=settings.http_port,
        worker_user=worker_user,
        not_found_page=page.replace("$", "&#36;"),
        app_includes=app_includes,
        tls=tls,
        balancer=balancer,
    )


def render_app_config(app: str, hosts: list[str], backends: list[tuple[str, int]], *, port: int,
                      max_body: str = "100m", maintenance_dir: Path | None = None, balanced: bool = False,
                      number: int = 0) -> str:
    """The upstream and server block that route ``hosts`` on ``port`` to ``backends``.

    ``balanced`` (the router loads the Lua module): when every backend is an IP address, the
    upstream names them to ``gitpaas_balancer.lua`` instead of as nginx ``server`` lines, so that
    the router can change them without a reload (a name needs nginx to resolve it at load time).
    ``number`` is this version's: the balancer takes newer backends set in memory over the file's.

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
        balanced=balanced and all(_is_address(host) for host, _port in backends),
        number=int(number),
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


@dataclass(frozen=True)
class Balanced:
    """What an app file gives its balancer: the file without it (its structure), the backends
    ("HOST:PORT HOST:PORT", as the balancer takes them) and the file's number."""

    structure: str
    backends: str
    number: int


def balanced_backends(text: str) -> Balanced | None:
    """An app file's balancer call taken apart; None if the file has no balancer."""
    found = _BALANCED.search(text)
    if found is None:
        return None
    return Balanced(structure=text[:found.start(1)] + text[found.end(2):],
                    backends=" ".join(re.findall(r'"([^"]*)"', found.group(1))), number=int(found.group(2)))


def renumbered(text: str, number: int) -> str:
    """A balanced app file with another number (``balanced_backends``)."""
    found = _BALANCED.search(text)
    return text if found is None else text[:found.start(2)] + str(int(number)) + text[found.end(2):]


def unbalanced(text: str) -> str:
    """An app file with its balancer replaced by nginx ``server`` lines of the same backends: what
    the file is once nginx has no Lua module (a file with a balancer would stop nginx loading)."""
    found = balanced_backends(text)
    if found is None:
        return text
    servers = "".join(f"    server {address} max_fails=1 fail_timeout=5s;\n" for address in found.backends.split())
    result, replaced = _BALANCER_LINES.subn(lambda _match: servers, text, count=1)
    if not replaced:
        raise ValueError("an app file's balancer is not the template's")  # they changed apart: a bug
    return result


_BALANCED = re.compile(r'^\s*balancer_by_lua_block \{ require\("gitpaas_balancer"\)\.balance\("[a-z0-9-]+", '
                       r'\{(.*)\}, (\d+)\) \}$', re.MULTILINE)
# from the placeholder server to the balancer's keepalive_timeout (app.conf.j2)
_BALANCER_LINES = re.compile(r"^    server 0\.0\.0\.1:1;.*?^    keepalive_timeout 2s;\n", re.MULTILINE | re.DOTALL)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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
    if getattr(address, "scope_id", None):
        raise UsageError(f"invalid backend host {host!r} (an address with a zone)")
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
