"""docker-local's containers: one per process, on this machine's Docker engine.

Every container runs with ``--init`` (so signals reach the app), labelled with the home, app,
release and process type, and named ``gp-<home id>-APP.web.1.vN-xxxx``. Formation processes
restart ``unless-stopped``; web ones listen on ``$PORT`` (5000) at an address of their app's
network that they keep for life (``free_address``: the engine gives a container the address it
was started with again after a restart, where one it picks itself may change), and the router,
on the host, proxies to that address — no app shares a network with the router, and no
``docker-proxy`` stands between them (``GITPAAS_PUBLISH_PORTS=1``, a network whose subnet the
engine chose, or one with no address left publishes ``$PORT`` on a free loopback port instead,
the router proxying to that; at its own address, the health check proves the host reaches it).

Apps cannot touch each other: each app has its own bridge network (one app's processes neither
reach nor resolve another's), and every process runs as an unprivileged user (the image's own
``USER`` if it sets one, else nobody), with ``no-new-privileges``, every capability dropped,
Docker's default seccomp profile, and its dyno size's memory, CPU share and process limits
(``gitpaas.sizes``).

A container being retired is renamed with the ``-retiring`` suffix first, so every gitpaas process
sees it as ``stopping`` from then on, whatever the detached retirer is doing to it.

A new release's processes can be started *held* while its release command runs (``start(held=True)``):
the container is made and started — its network, address and init set up, the slow part of a start —
but its first command is a small shell gate (``GATE``) that waits for gitpaas's word on its stdin
before it ``exec``s the process's command. ``release_held`` gives that word once the release phase
has succeeded; a failed one removes them, so no app code of a release runs before its release
phase succeeds. Until released such a container is named with the ``-held`` suffix, runs with no
restart policy and is not one of the app's processes (``dynos`` leaves it out).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import secrets
import shlex
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import docker
import requests
from docker.errors import APIError, NotFound
from docker.models.containers import Container
from docker.types import IPAMConfig, IPAMPool
from filelock import FileLock

from gitpaas import labels, sizes
from gitpaas.errors import BootFailed, EnvironmentProblem
from gitpaas.scheduler import ONE_OFF_TYPES, Process, ReleaseSpec
from gitpaas.settings import Settings

#: Port every web process listens on inside its container (given to it as ``$PORT``).
WEB_PORT = 5000
#: suffix of the name of a container being retired (SIGTERM, then SIGKILL) in the background
RETIRING = "-retiring"
#: suffix of the name of a container started ahead, its command held until the release phase succeeds
HELD = "-held"
#: a held container's first command (``/bin/sh -c GATE gitpaas-held COMMAND...``): wait for the word
#: ``go`` on stdin, then become COMMAND. Shell builtins only (``true`` with a redirection, not ``:``,
#: whose failed redirection would end the shell). ``…released.wait`` says it waits; after ``go``,
#: ``…released`` records that it was released, so that a restart by the engine (a crash, a reboot)
#: runs COMMAND at once. Where it cannot write those, or stdin ends without the word, it exits 70
#: without running COMMAND: unable to wait, it is started as any other process (``release_held``).
HELD_MARKER = "/tmp/.gitpaas-released"
GATE = (f'm={HELD_MARKER}; if [ ! -e "$m" ]; then true 2>/dev/null >"$m.wait" || exit 70; '
        'read -r word; [ "$word" = go ] || exit 70; true 2>/dev/null >"$m" || exit 70; fi; exec "$@" </dev/null')
#: how long ``release_held`` waits for a held container's gate to say it waits
GATE_READY_TIMEOUT = 5.0
#: container label holding the release's id, the Procfile command as written, and the dyno size
RELEASE_ID = "gitpaas.release-id"
COMMAND = "gitpaas.command"
SIZE = "gitpaas.size"
#: label of a detached one-off (``run:detached``): kept a while after it exits, for its logs
DETACHED = "gitpaas.detached"
#: who a process runs as when its image names no USER: nobody, as Heroku's dynos run unprivileged
DYNO_USER = "65534:65534"
#: each app network's size: a /26, whose upper half holds the addresses of up to 31 web processes
#: (``free_address``; during a swap the old ones and the new) and whose lower half the engine hands
#: out to the other processes, one-offs and add-ons (29); a web process past those is published
SUBNET_PREFIX = 26
#: label holding a digest of how a container was set up (user, limits, network, security): one
#: made otherwise — by an older gitpaas, or at another size — is replaced, not kept
SPEC = "gitpaas.spec"
SPEC_VERSION = 2
LOG_TAIL = 20
_STATES = {"created": "starting", "running": "up", "restarting": "crashed", "exited": "crashed", "dead": "crashed",
           "paused": "down", "removing": "down"}

_COMPOUND = re.compile(r"[;&|()`\n]|\$\(")
_KEYWORDS = {"if", "for", "while", "until", "case", "{", "!", "[[", "function", "exec", "time"}


def shell_command(command: str) -> list[str]:
    """``/bin/sh -c COMMAND``, with a simple command exec'd (as bash does) so that the app itself,
    not a shell, is the init's child: it gets SIGTERM first hand and its exit status is the process's."""
    words = command.split(maxsplit=1)
    simple = words and not _COMPOUND.search(command) and "=" not in words[0] and words[0] not in _KEYWORDS
    return ["/bin/sh", "-c", f"exec {command}" if simple else command]


#: where dockerd records its pid when it runs with its defaults (the engine docker-local talks to)
ENGINE_PIDFILE = Path("/var/run/docker.pid")


def engine_instance() -> tuple[int, int] | None:
    """Which dockerd serves the default socket now, as (pid, start time): a restarted engine is
    another instance, and a stopped one is (0, 0). None when that cannot be seen — another engine
    (``DOCKER_HOST``), or no access to its pidfile — and then nobody can tell."""
    if os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock") != "unix:///var/run/docker.sock":
        return None
    try:
        pid = int(ENGINE_PIDFILE.read_text().strip())
    except FileNotFoundError:
        return (0, 0)
    except (OSError, ValueError):
        return None
    try:
        name, _, rest = Path(f"/proc/{pid}/stat").read_text().partition("(")[2].rpartition(")")
    except OSError:
        return (0, 0)  # the pidfile of an engine that is gone
    fields = rest.split()
    if name != "dockerd" or fields[0] == "Z":  # a zombie is an engine that exited
        return (0, 0)
    return (pid, int(fields[19]))


def unix_time(stamp: str) -> float:
    """Docker's ``2026-12-01T20:00:00.123456789Z`` as a unix time, to the second (0 when it cannot be read)."""
    try:
        return datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return 0.0


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Dyno:
    """A process as docker-local knows it: the dyno, its container, and where the router reaches it."""

    process: Process
    container: Container
    #: the (host, port) the router reaches its $PORT at: its own address on the app's network, or
    #: the loopback port it is published on; None for processes that are not web
    address: tuple[str, int] | None = None

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def dead(self) -> bool:
        """Exited and not coming back by itself (the engine restarts a crashed process it still owns)."""
        state = self.container.attrs.get("State", {})
        return self.container.status in ("exited", "dead", "created") and not state.get("Restarting")


def to_dyno(container: Container) -> Dyno:
    tags = container.labels
    state = container.attrs.get("State", {})
    address = None
    ports = (container.attrs.get("HostConfig", {}).get("PortBindings") or {}).get(f"{WEB_PORT}/tcp")
    if ports:
        address = (ports[0].get("HostIp") or "127.0.0.1", int(ports[0]["HostPort"]))
    else:
        kept = own_address(container.attrs)
        if kept:
            address = (kept, WEB_PORT)
    status = "crashed" if state.get("Restarting") else _STATES.get(container.status, container.status)
    if container.name.endswith(RETIRING):
        status = "stopping"
    process = Process(
        id=container.id, app=tags[labels.APP], type=tags[labels.PROCESS_TYPE],
        index=int(tags[labels.DYNO].rsplit(".", 1)[1]), release_version=int(tags[labels.RELEASE]),
        release_id=tags.get(RELEASE_ID, ""),
        command=tags.get(COMMAND) or shlex.join(container.attrs.get("Config", {}).get("Cmd") or []),
        state=status, created_at=container.attrs.get("Created", "")[:19] + "Z",
        restarts=int(container.attrs.get("RestartCount", 0)), size=tags.get(SIZE) or sizes.DEFAULT,
    )
    return Dyno(process, container, address)


def own_address(attrs: dict) -> str | None:
    """The address a container was given to keep on its network (``start``: a web process's), or None."""
    for endpoint in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).values():
        kept = ((endpoint or {}).get("IPAMConfig") or {}).get("IPv4Address")
        if kept:
            return kept
    return None


class _NotWaiting(Exception):
    """A held container's gate is not waiting for its word (or did not hear it)."""


class Containers:
    """The containers of one gitpaas home: find them by label, start, stop and tail them."""

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._networks_ready: set[str] = set()
        self._image_configs: dict[str, dict] = {}

    # --- finding ---------------------------------------------------------------------------
    def find(self, app: str | None = None, **extra: str) -> list[Container]:
        """Containers with these labels; one removed while being listed is simply not listed."""
        wanted = labels.for_home(self.settings) if app is None else labels.for_app(self.settings, app)
        wanted.update(extra)
        found = []
        for summary in self.client.api.containers(all=True, filters=labels.filters(wanted)):
            try:
                found.append(self.client.containers.get(summary["Id"]))
            except NotFound:
                pass  # removed while being listed: it is simply not listed
        return found

    def dynos(self, app: str) -> list[Dyno]:
        """The app's formation processes and any running one-off (``release.1234``, ``run.5678``);
        not a detached one-off that ended (it is only kept for its logs), nor a held container."""
        return self.dynos_and_held(app)[0]

    def dynos_and_held(self, app: str) -> tuple[list[Dyno], list[Dyno]]:
        """``dynos``, and the app's held containers (``start(held=True)``) not yet released."""
        roles = ("process", *ONE_OFF_TYPES)
        found, held = [], []
        for container in self.find(app):
            if container.labels.get(labels.ROLE) not in roles:
                continue
            if container.name.endswith(HELD):
                held.append(to_dyno(container))
            elif not (container.labels.get(DETACHED) and container.status in ("exited", "dead")):
                found.append(to_dyno(container))

        def order(dyno: Dyno) -> tuple:
            process = dyno.process
            return process.one_off, process.type != "web", process.type, process.index, process.release_version
        return sorted(found, key=order), held

    def neighbour(self, app: str) -> Container | None:
        """A running process of ``app`` on the app's own network whose network a release command
        can share (``beside``): web before the other types, the lowest index first; not one being
        retired, nor one the engine has restarted (a crash or a memory kill: it may go again, and
        its network with it). None when the app has none."""
        network = self.settings.app_network(app)
        wanted = labels.filters(labels.for_app(self.settings, app, **{labels.ROLE: "process"}))
        candidates = [
            summary for summary in self.client.api.containers(filters={**wanted, "status": ["running"]})
            if not any(name.endswith((RETIRING, HELD)) for name in summary.get("Names") or [])
            and network in ((summary.get("NetworkSettings") or {}).get("Networks") or {})]

        def order(summary: dict) -> tuple:
            tags = summary.get("Labels") or {}
            kind, _, index = tags.get(labels.DYNO, "").rpartition(".")
            return kind != "web", kind, int(index) if index.isdigit() else 0
        for summary in sorted(candidates, key=order):
            try:
                container = self.client.containers.get(summary["Id"])
            except NotFound:
                continue  # gone meanwhile
            state = container.attrs.get("State") or {}
            if state.get("Running") and not state.get("Restarting") and not container.attrs.get("RestartCount"):
                return container
        return None

    @staticmethod
    def beside(args: dict, neighbour: str) -> dict:
        """``run_args`` for a container that shares ``neighbour``'s network (its addresses, its
        resolver, its host name) instead of being given one of its own on the app's network."""
        shared = {key: value for key, value in args.items() if key not in ("network", "hostname")}
        shared["network_mode"] = f"container:{neighbour}"
        return shared

    def refresh(self, dyno: Dyno) -> Dyno | None:
        """The dyno as its container is now; None when it is gone."""
        try:
            return to_dyno(self.client.containers.get(dyno.process.id))
        except NotFound:
            return None

    # --- starting --------------------------------------------------------------------------
    def network(self, app: str) -> str:
        """The app's own bridge network, created once (under a lock: Docker allows duplicate names).

        Its subnet is a small one (a /26: 62 addresses) from gitpaas's own pool
        (``GITPAAS_NETWORK_POOL``), not from the engine's default pools, which hold only about
        thirty networks in all: a server runs hundreds of apps."""
        name = self.settings.app_network(app)
        if name in self._networks_ready:
            return name
        # The lock only when it is to be made: two threads of a release (its command's container and
        # its processes held meanwhile) ask at once, and ``FileLock`` waits by polling every 50 ms.
        if not self._networks_named(name):
            locks = self.settings.home / "locks"
            locks.mkdir(parents=True, exist_ok=True)
            with FileLock(str(locks / "network.lock")):
                if not self._networks_named(name):
                    self._create_network(name, app)
        self._networks_ready.add(name)
        return name

    def _create_network(self, name: str, app: str) -> None:
        for subnet in self._free_subnets():
            try:
                # (the engine hands out addresses from the lower half; web processes keep theirs in
                # the upper one: ``free_address``)
                lower = next(subnet.subnets(prefixlen_diff=1))
                self.client.networks.create(
                    name, driver="bridge", check_duplicate=True, labels=labels.for_app(self.settings, app),
                    ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), iprange=str(lower))]))
                return
            except APIError as exc:
                if exc.status_code == 409:
                    return  # made meanwhile by another home's process: it is there
                if "overlap" in str(exc.explanation or exc).lower():
                    continue  # another home took this subnet meanwhile: the next one
                raise EnvironmentProblem(f"cannot create network {name}: {exc.explanation}") from exc
        raise EnvironmentProblem(f"no free /{SUBNET_PREFIX} subnet left in GITPAAS_NETWORK_POOL "
                                 f"({self.settings.network_pool}) for {name}")

    def _free_subnets(self) -> Iterator[ipaddress.IPv4Network]:
        taken = []
        for network in self.client.api.networks():
            for config in (network.get("IPAM") or {}).get("Config") or []:
                try:
                    taken.append(ipaddress.ip_network(config.get("Subnet", ""), strict=False))
                except ValueError:
                    continue  # IPv6 or none: cannot overlap an IPv4 candidate
        pool = ipaddress.ip_network(self.settings.network_pool, strict=False)
        for candidate in pool.subnets(new_prefix=SUBNET_PREFIX):
            if not any(candidate.overlaps(used) for used in taken if used.version == 4):
                yield candidate

    def _networks_named(self, name: str) -> list:
        """The networks called exactly ``name``: the engine's name filter also matches longer names
        (app ``news``'s network's name is the start of app ``news-staging``'s)."""
        return [network for network in self.client.networks.list(names=[name]) if network.name == name]

    def remove_network(self, app: str) -> None:
        for network in self._networks_named(self.settings.app_network(app)):
            remove_network(network)
        self._networks_ready.discard(self.settings.app_network(app))

    def spec(self, release: ReleaseSpec, size: str | None, process_type: str) -> str:
        """The digest a ``process_type`` container of ``release`` at ``size`` is labelled with (see SPEC)."""
        limits = sizes.get(size)
        parts = (SPEC_VERSION, self.user_of(release.image_of(process_type)), limits.name, limits.memory_mb, limits.cpu_shares,
                 limits.pids, self.settings.app_network(release.app))
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

    def image_config(self, image: str) -> dict:
        """``image``'s own configuration (its USER, ENTRYPOINT, CMD), read once per image."""
        if image not in self._image_configs:
            self._image_configs[image] = self.client.images.get(image).attrs.get("Config") or {}
        return self._image_configs[image]

    def user_of(self, image: str) -> str:
        """Who runs ``image``'s processes: the USER it names, else nobody. Never root."""
        user = self.image_config(image).get("User") or ""
        return DYNO_USER if user.partition(":")[0] in ("", "0", "root") else user

    def run_args(self, release: ReleaseSpec, process_type: str, index: int, command: str | None,
                 role: str, size: str | None = None) -> dict:
        """``containers.run``/``create`` arguments for one process of ``release``."""
        dyno = f"{process_type}.{index}"
        limits = sizes.get(size)
        env: dict[str, str] = dict(release.env)
        env["DYNO"] = dyno
        # docker stop signals PID 1, the init (tini); this makes it signal the whole process group,
        # so `sh -c "a && b"` commands get SIGTERM too, as every process of a Heroku dyno does.
        env.setdefault("TINI_KILL_PROCESS_GROUP", "1")
        return dict(
            image=release.image_of(process_type),
            command=shell_command(command) if command else None,
            name=f"gp-{self.settings.home_id}-{release.app}.{dyno}.v{release.version}-{secrets.token_hex(2)}",
            hostname=f"{release.app}-{process_type}-{index}"[:63],
            environment=env,
            labels=labels.for_app(
                self.settings, release.app, **{
                    labels.RELEASE: release.version, RELEASE_ID: release.id,
                    labels.PROCESS_TYPE: process_type, labels.DYNO: dyno, labels.ROLE: role,
                    COMMAND: command or "", SIZE: limits.name,
                    SPEC: self.spec(release, size, process_type),
                }),
            network=self.network(release.app),
            init=True,
            detach=True,
            user=self.user_of(release.image_of(process_type)),
            security_opt=["no-new-privileges:true"],
            cap_drop=["ALL"],
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,  # no swap: past its memory a process is killed (R15)
            cpu_shares=limits.cpu_shares,
            pids_limit=limits.pids,
        )

    def start(self, release: ReleaseSpec, process_type: str, index: int, size: str | None = None, *,
              held: bool = False) -> Dyno:
        """Start one formation process; a web one gets an address of its own (or a published port).
        ``held``: its container starts but its command waits for ``release_held`` (see the module)."""
        args = self.run_args(release, process_type, index, release.process_types.get(process_type), role="process",
                             size=size)
        args["restart_policy"] = {"Name": "unless-stopped"}
        if held:
            command = self.holdable(args["image"], args["command"])
            if command is None:
                raise BootFailed(f"{process_type}.{index}", "cannot be held", version=release.version)
            args["name"] += HELD
            args["restart_policy"] = {"Name": "no"}  # (a reboot does not bring back one whose release never ran)
            args["stdin_open"] = True
            args["entrypoint"] = ["/bin/sh", "-c", GATE, "gitpaas-held"]
            args["command"] = command
        last_error: APIError | None = None
        refused: set[str] = set()  # addresses the engine would not give, whatever the listings say
        publish = self.settings.publish_ports
        for _attempt in range(5):
            address = None
            if process_type == "web":
                args["environment"]["PORT"] = str(WEB_PORT)
                args.pop("ports", None)
                args.pop("networking_config", None)
                address = None if publish else self.free_address(release.app, args["network"], refused)
                if address:
                    args["networking_config"] = {
                        args["network"]: self.client.api.create_endpoint_config(ipv4_address=address)}
                else:
                    args["ports"] = {f"{WEB_PORT}/tcp": ("127.0.0.1", free_loopback_port())}
            try:
                container = self.client.containers.run(**args)
            except APIError as exc:
                last_error = exc
                self._remove_named(args["name"])
                said = str(exc).lower()
                if address and "user configured subnets" in said:
                    publish = True  # a network whose subnet the engine chose: it keeps no address there
                    continue
                if address and "address already in use" in said:
                    refused.add(address)  # another start took it meanwhile (or the engine holds it)
                    continue
                if "port is already allocated" in said or "address already in use" in said:
                    continue  # another program took the free port meanwhile: pick another
                raise BootFailed(f"{process_type}.{index}", f"could not start: {exc.explanation or exc}",
                                 version=release.version) from exc
            except BaseException:  # (no answer from the engine, Ctrl-C): made, perhaps started, unknown to all
                with contextlib.suppress(Exception):
                    self._remove_named(args["name"])
                raise
            try:
                container.reload()
            except BaseException:
                with contextlib.suppress(Exception):
                    remove(container)  # started, but nobody would know of it
                raise
            return to_dyno(container)
        raise BootFailed(f"{process_type}.{index}", f"could not start: {last_error.explanation or last_error}",
                         version=release.version)

    def free_address(self, app: str, network: str, refused: set[str] | frozenset[str] = frozenset()) -> str | None:
        """An address on the app's ``network`` for a web process to keep for its whole life: the
        engine gives it back after a restart (its own, or a reboot), where one it picks would
        change — so the router can reach the process there, with no published port in between.

        Taken from the upper half of the network's subnet (gitpaas gives the engine the lower half
        for the addresses it hands out itself, ``_create_network``), the first free one after the
        highest in use, round the half: so an address is not given again deploy after deploy.
        Free: no running container holds it, no container of the app keeps it (a stopped one keeps
        its own), and the engine did not refuse it (``refused``). None when the network has no IPv4
        subnet, or no address left there: the process is then reached on a published loopback port."""
        info = self.client.api.inspect_network(network)
        configs = [config for config in (info.get("IPAM") or {}).get("Config") or []
                   if "." in (config.get("Subnet") or "")]
        if not configs:
            return None
        subnet = ipaddress.ip_network(configs[0]["Subnet"], strict=False)
        first = int(subnet.network_address) + subnet.num_addresses // 2
        upper = [ipaddress.IPv4Address(n) for n in range(first, first + min(subnet.num_addresses // 2 - 1, 1024))]
        taken = set(refused) | {configs[0].get("Gateway") or ""}
        taken.update((endpoint.get("IPv4Address") or "").split("/")[0]
                     for endpoint in (info.get("Containers") or {}).values())
        for summary in self.client.api.containers(all=True, filters=labels.filters(labels.for_app(self.settings, app))):
            taken.add(own_address(summary) or "")
        used = [index for index, address in enumerate(upper) if str(address) in taken]
        start = used[-1] + 1 if used else 0
        for step in range(len(upper)):
            address = str(upper[(start + step) % len(upper)])
            if address not in taken:
                return address
        return None

    def _remove_named(self, name: str) -> None:
        for leftover in self.client.containers.list(all=True, filters={"name": name}):
            if leftover.name == name:  # (the filter also matches longer names)
                remove(leftover)

    def holdable(self, image: str, command: list[str] | None) -> list[str] | None:
        """What a held container of ``image`` passes its gate to exec (the image's ENTRYPOINT, then
        ``command`` or the image's CMD); None when such a process is not to be held: an image
        with a HEALTHCHECK (the engine would run it in the container, the app's code, before the
        release phase succeeded), or with nothing to run (the engine's own error says so)."""
        config = self.image_config(image)
        check = (config.get("Healthcheck") or {}).get("Test") or []
        if check and check[0] != "NONE":
            return None
        wrapped = [*(config.get("Entrypoint") or []), *(command or config.get("Cmd") or [])]
        return wrapped or None

    def release_held(self, dyno: Dyno) -> Dyno | None:
        """Let a held container's command run: once its gate says it waits (its ``.wait`` file:
        just started, it may not yet), it is given ``go``, and it has heard it once it records its
        release. None — and the container removed — when it does not wait or did not hear (its
        gate exited: no ``/bin/sh``, no writable /tmp; someone stopped or removed it; an engine
        that will not say): the caller then starts the process as it starts any other. ``settle``
        does the rest."""
        container = dyno.container
        deadline = time.monotonic() + GATE_READY_TIMEOUT
        try:
            if not self._gate_file(container, HELD_MARKER + ".wait", deadline):
                raise _NotWaiting
            sock = container.attach_socket(params={"stdin": 1, "stream": 1})
            try:
                getattr(sock, "_sock", sock).sendall(b"go\n")
            finally:
                sock.close()
            if not self._gate_file(container, HELD_MARKER, deadline):
                raise _NotWaiting
        except (_NotWaiting, NotFound, APIError, OSError, requests.RequestException):
            with contextlib.suppress(Exception):
                remove(container)
            return None
        return dyno

    def _gate_file(self, container: Container, path: str, deadline: float) -> bool:
        """Whether ``path`` appears in the running ``container`` before ``deadline`` (asked of the
        engine's archive API, which runs nothing in the container). False at once when the
        container stops or the engine answers anything but found or not found."""
        api = self.client.api
        url = api._url("/containers/{0}/archive", container.id)
        while True:
            left = deadline - time.monotonic()
            answer = api.head(url, params={"path": path}, timeout=max(0.1, min(left, api.timeout)))
            if answer.status_code == 200:
                return True
            if answer.status_code != 404 or left <= 0:
                return False
            container.reload()
            if container.status != "running":
                return False
            time.sleep(0.005)

    def settle(self, dynos: list[Dyno]) -> None:
        """Released held containers become processes like any other: named without ``-held``
        (``ps`` shows them), restarted by the engine unless stopped. (Done while their health is
        checked: 20–25 ms here, the restart policy's update most of it.)"""
        for dyno in dynos:
            container = dyno.container
            name = container.name.removesuffix(HELD)
            container.rename(name)
            container.attrs["Name"] = "/" + name
            container.update(restart_policy={"Name": "unless-stopped"})

    # --- stopping --------------------------------------------------------------------------
    def stop(self, dynos: list[Dyno], grace: float) -> None:
        """SIGTERM each (through the init), SIGKILL after ``grace`` seconds; remove. In parallel."""
        def stop_one(dyno: Dyno) -> None:
            try:
                dyno.container.stop(timeout=int(grace))
                dyno.container.remove(force=True)
            except NotFound:
                pass  # stopped and removed by someone else already
        if dynos:
            with ThreadPoolExecutor(max_workers=min(8, len(dynos))) as pool:
                list(pool.map(stop_one, dynos))

    def mark_retiring(self, dyno: Dyno) -> None:
        """From now on every gitpaas process sees it as ``stopping``."""
        try:
            if not dyno.container.name.endswith(RETIRING):
                dyno.container.rename(dyno.container.name + RETIRING)
        except (NotFound, APIError):
            pass  # gone already, or being removed: either way it serves no more

    def tail(self, container: Container, lines: int = LOG_TAIL) -> str:
        try:
            return container.logs(tail=lines).decode("utf-8", "replace")
        except APIError:
            return ""  # the container is going away: there is no tail to show


def remove(container: Container) -> None:
    """Remove a container, which the background retirer may have removed already — or be removing."""
    try:
        container.remove(force=True)
    except NotFound:
        pass  # removed already
    except APIError as exc:
        if exc.status_code != 409 or "in progress" not in str(exc.explanation or exc):
            raise
        # being removed by someone else (the retirer): it is going, which is all that was asked


#: how long a network the engine says still has endpoints is tried again
NETWORK_BUSY_SECONDS = 3.0


def remove_network(network) -> None:
    """Remove a network, gone already or not. One the engine says "has active endpoints" when its
    containers are removed (an endpoint still being torn down; or one the engine lost count of, a
    Docker bug: moby/moby#42119, which only an engine restart clears) is tried again for a few seconds."""
    deadline = time.monotonic() + NETWORK_BUSY_SECONDS
    while True:
        try:
            network.remove()
            return
        except NotFound:
            return  # removed meanwhile
        except APIError as exc:
            if "active endpoints" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def kill(container: Container) -> None:
    try:
        container.kill()
    except APIError:
        pass  # it exited already (409) or is gone (404): nothing left to kill
