"""Settings: one frozen value built from the environment, passed to whatever needs it.

Precedence for each setting: the environment variable, then what the home recorded when it was
first used (``$GITPAAS_HOME/home.json``, so a later command or a ``git push`` from a shell without
the variables still talks to the same router), then the default.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from gitpaas import stacks
from gitpaas.errors import UsageError
from gitpaas.home import home_of, is_root
from gitpaas.stacks import DEFAULT_STACK, Stack

#: where the stack images are: gitpaas/stack:trixie, gitpaas/stack:bookworm, …
DEFAULT_STACK_REPOSITORY = "gitpaas/stack"
#: the schedulers gitpaas has (gitpaas.scheduler); the first is the default
SCHEDULERS = ("docker-local", "swarm")
#: the engine's builders a Dockerfile (or heroku.yml's build) may use, the default first
DOCKER_BUILDERS = ("buildkit", "classic")


def _is_root() -> bool:
    return is_root()


def _number(environ: Mapping[str, str], key: str, default: float, *, integer: bool = False) -> float:
    raw = environ.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise UsageError(f"{key} must be a number, not {raw!r}") from None
    if value <= 0:
        raise UsageError(f"{key} must be greater than zero, not {raw!r}")
    return value


def _port(environ: Mapping[str, str], default: int, key: str = "GITPAAS_HTTP_PORT") -> int:
    port = int(_number(environ, key, default, integer=True))
    if port > 65535:
        raise UsageError(f"{key} must be a TCP port (1-65535), not {port}")
    return port


def _flag(environ: Mapping[str, str], key: str) -> bool:
    raw = (environ.get(key) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise UsageError(f"{key} must be 1 or 0, not {environ[key]!r}")


#: where GITPAAS_BUILDPACK_ALLOW splits: commas and white space (a colon belongs to URLs like git@host:/srv/)
_ALLOW_SEPARATOR = re.compile(r"[,\s]+")


def _buildpack_allow(environ: Mapping[str, str], key: str = "GITPAAS_BUILDPACK_ALLOW") -> tuple[str, ...]:
    """The operator's buildpack allow-list: absolute folders and URL prefixes, in the order given."""
    entries = tuple(entry.strip() for entry in _ALLOW_SEPARATOR.split(environ.get(key) or "") if entry.strip())
    for entry in entries:
        if not entry.startswith("/") and ":" not in entry:  # a URL prefix has a scheme, or is git@host:
            raise UsageError(f"{key}: {entry!r} is neither an absolute folder nor a URL prefix")
    return entries


def _network_pool(value: str) -> str:
    try:
        pool = ipaddress.ip_network(value, strict=False)
    except ValueError:
        pool = None
    if pool is None or pool.version != 4 or pool.prefixlen > 24:
        raise UsageError(f"GITPAAS_NETWORK_POOL must be an IPv4 range of /24 or larger, like 10.219.0.0/16, "
                         f"not {value!r}")
    return str(pool)


def _choice(environ: Mapping[str, str], key: str, recorded: str | None, choices: tuple[str, ...]) -> str:
    value = environ.get(key) or recorded or choices[0]
    if value not in choices:
        raise UsageError(f"{key} must be one of {', '.join(choices)}, not {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    domain: str = "localhost"
    http_port: int = 8080
    https_port: int = 8443
    #: the image repository of the stacks, each tagged with its name (gitpaas.stacks)
    stack_repository: str = DEFAULT_STACK_REPOSITORY
    #: the stack of new apps
    default_stack: str = DEFAULT_STACK
    release_timeout: float = 3600.0
    boot_timeout: float = 60.0
    stop_timeout: float = 30.0
    #: seconds every new process must stay up (not exit, not restart) before a release is live
    startup_window: float = 2.0
    #: seconds between taking old processes out of the router and sending them SIGTERM
    drain_seconds: float = 1.0
    #: which scheduler runs the apps' processes (one of SCHEDULERS)
    scheduler: str = SCHEDULERS[0]
    #: swarm: the manager's engine (``unix:///…`` or ``tcp://…``) and the registry its nodes pull
    #: slugs from (``HOST:PORT``); both recorded by ``gitpaas scheduler:set swarm``
    swarm_manager: str = ""
    swarm_registry: str = ""
    #: the IPv4 range docker-local takes each app's own network from (a /26 each)
    network_pool: str = "10.219.0.0/16"
    #: folders and URL prefixes a buildpack may come from besides the bundled ones and public https:// URLs
    buildpack_allow: tuple[str, ...] = ()
    #: whether webhooks may target loopback, link-local and private addresses (a receiver on this network)
    webhook_private_targets: bool = False
    #: whether the router changes backends without a reload (nginx's Lua module, when installed)
    router_lua: bool = True
    #: which of the engine's builders builds Dockerfiles (one of DOCKER_BUILDERS)
    docker_builder: str = DOCKER_BUILDERS[0]
    #: whether a release's new processes start (held) while its release command runs
    hold_processes: bool = True
    #: whether web processes are reached on a published loopback port (a ``docker-proxy`` each)
    #: instead of at their own address on the app's network
    publish_ports: bool = False
    # Extra environment given to the process that runs (for example) the release phase.
    environ: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        home = home_of(env, _is_root())
        recorded = read_home_record(home)
        port_default = recorded.get("http_port") or (80 if _is_root() else 8080)
        return cls(
            home=home,
            domain=env.get("GITPAAS_DOMAIN") or recorded.get("domain") or "localhost",
            http_port=_port(env, port_default),
            https_port=_port(env, recorded.get("https_port") or (443 if _is_root() else 8443), "GITPAAS_HTTPS_PORT"),
            stack_repository=env.get("GITPAAS_STACK_REPOSITORY") or DEFAULT_STACK_REPOSITORY,
            default_stack=stacks.get(env.get("GITPAAS_STACK") or DEFAULT_STACK).name,
            release_timeout=_number(env, "GITPAAS_RELEASE_TIMEOUT", 3600.0),
            boot_timeout=_number(env, "GITPAAS_BOOT_TIMEOUT", 60.0),
            stop_timeout=_number(env, "GITPAAS_STOP_TIMEOUT", 30.0),
            startup_window=_number(env, "GITPAAS_STARTUP_WINDOW", 2.0),
            drain_seconds=_number(env, "GITPAAS_DRAIN_SECONDS", 1.0),
            scheduler=_choice(env, "GITPAAS_SCHEDULER", recorded.get("scheduler"), SCHEDULERS),
            swarm_manager=env.get("GITPAAS_SWARM_MANAGER") or recorded.get("swarm_manager") or "",
            swarm_registry=env.get("GITPAAS_SWARM_REGISTRY") or recorded.get("swarm_registry") or "",
            network_pool=_network_pool(env.get("GITPAAS_NETWORK_POOL") or "10.219.0.0/16"),
            buildpack_allow=_buildpack_allow(env),
            webhook_private_targets=_flag(env, "GITPAAS_WEBHOOK_PRIVATE_TARGETS"),
            router_lua=_flag(env, "GITPAAS_ROUTER_LUA") if env.get("GITPAAS_ROUTER_LUA") else True,
            docker_builder=_choice(env, "GITPAAS_DOCKER_BUILDER", None, DOCKER_BUILDERS),
            hold_processes=_flag(env, "GITPAAS_HOLD_PROCESSES") if env.get("GITPAAS_HOLD_PROCESSES") else True,
            publish_ports=_flag(env, "GITPAAS_PUBLISH_PORTS"),
            environ=env,
        )

    # --- derived names -------------------------------------------------------------------

    @property
    def home_id(self) -> str:
        """A short stable id of this home, used in Docker object names."""
        return hashlib.sha256(str(self.home).encode()).hexdigest()[:8]

    @property
    def home_label(self) -> str:
        return str(self.home)

    def app_network(self, app: str) -> str:
        """The app's own Docker network: its processes (and add-ons) only."""
        return f"gitpaas-{self.home_id}-{app}"

    def stack_image(self, stack: Stack | str) -> str:
        """The image of a stack (or of the stack named so): ``gitpaas/stack:trixie``."""
        return f"{self.stack_repository}:{stack if isinstance(stack, str) else stack.name}"

    def image_repository(self, app: str) -> str:
        return f"gitpaas-{self.home_id}/{app}"

    def app_dir(self, app: str) -> Path:
        return self.home / "apps" / app

    @property
    def router_dir(self) -> Path:
        return self.home / "router"

    def app_host(self, app: str) -> str:
        return f"{app}.{self.domain}"

    def web_url(self, app: str) -> str:
        port = "" if self.http_port == 80 else f":{self.http_port}"
        return f"http://{self.app_host(app)}{port}/"


#: changes whenever the commands gitpaas writes into a home (each app's git hook, the SSH keys'
#: forced command) change: homes made before are rewritten by ``operations.refresh_entry_points``
ENTRY_POINTS = "4:gitpaas.forkserver.client,gitpaas.hook,gitpaas.ssh_shell,private"


#: the script each app's git hook runs with ``python -S`` (``gitpaas.forkserver.client``)
HOOK_CLIENT = str(Path(__file__).resolve().parent / "forkserver" / "hook_client.py")


def entry_points() -> dict[str, str]:
    """What a home records of the gitpaas that wrote its entry points (``home.json``): their kind,
    the Python they run and the hook's client script (where this gitpaas is installed)."""
    return {"entry_points": ENTRY_POINTS, "python": sys.executable, "hook_client": HOOK_CLIENT}


def entry_points_outdated(record: dict) -> bool:
    """Were a home's entry points (``record``: its ``home.json``) written by another gitpaas, or
    another Python? A home without a record has none yet."""
    return bool(record) and {key: record.get(key) for key in entry_points()} != entry_points()


def read_home_record(home: Path) -> dict:
    try:
        return json.loads((home / "home.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}
