"""A release's process types as Swarm services, and their tasks as gitpaas processes.

One service per process type of an app (``gp-<home>-APP-web``), replicas = the formation's
quantity, task slots = process numbers (``web.2`` is slot 2). A one-off process (the release
phase, a detached ``run``) is a service of its own that is never restarted. Every service, task
container and network carries the home's and the app's labels.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.types import ContainerSpec, Healthcheck, Resources, RestartPolicy, RollbackConfig, TaskTemplate, UpdateConfig

from gitpaas import labels, procfile, sizes
from gitpaas.lines import iter_lines
from gitpaas.scheduler import ONE_OFF_TYPES, OneOff, Process, ReleaseSpec
from gitpaas.scheduler.docker_local.containers import (
    COMMAND,
    DETACHED,
    DYNO_USER,
    RELEASE_ID,
    SIZE,
    SPEC,
    WEB_PORT,
    shell_command,
)
from gitpaas.settings import Settings

NANO = 1_000_000_000
#: seconds between two health checks of a web process
HEALTH_INTERVAL = 2
#: task states after which a task never runs again
ENDED = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")
#: task states before its container exists: placing it, pulling its image
PULLING = ("new", "allocated", "pending", "assigned", "accepted", "preparing")
#: Swarm's task states as Heroku's dyno states
STATES = {"new": "starting", "allocated": "starting", "pending": "starting", "assigned": "starting",
          "accepted": "starting", "preparing": "starting", "ready": "starting", "starting": "starting",
          "running": "up", "complete": "down", "shutdown": "down", "failed": "crashed", "rejected": "crashed",
          "orphaned": "down", "remove": "down"}

#: a web process's health check, run in its container by its node's engine: something listens on
#: $PORT (read from the container's own /proc/net/tcp, as docker-local reads it: no traffic)
LISTENING = (f"grep -qE '^ *[0-9]+: [0-9A-F]+:{WEB_PORT:04X} [0-9A-F]+:[0-9A-F]+ 0A ' "
             "/proc/net/tcp /proc/net/tcp6")

#: the web command's wrapper: on SIGTERM (Swarm stopping an old task), wait for the router to have
#: taken it out ($GITPAAS_DRAIN seconds), then pass the SIGTERM to the whole process group
DRAIN = ("trap 'trap \"\" TERM; sleep \"${GITPAAS_DRAIN:-1}\"; kill -TERM 0' TERM\n"  # (before the app
         '"$@" & child=$!\n'                                                            # starts: no gap)
         'while :; do wait "$child"; status=$?; kill -0 "$child" 2>/dev/null || exit "$status"; done\n')


def unix_time(stamp: str) -> float:
    """Swarm's ``2026-12-02T15:20:01.123456789Z`` as a unix time."""
    head, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        whole = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return 0.0
    return whole + (float("0." + fraction) if fraction.isdigit() else 0.0)


@dataclass
class Plan:
    """What one deploy asked of one process type's service."""

    service_id: str
    process_type: str
    quantity: int
    before: int
    version: int
    force: int
    #: its task template changed: Swarm rolls it, task by task
    rolled: bool
    created: bool
    started: float
    #: nothing to change: not waited for
    noop: bool = False


@dataclass
class Progress:
    done: bool = False
    failed: str | None = None
    process: str | None = None
    log_tail: str = ""
    news: list[str] = field(default_factory=list)
    #: a task is still being placed or its node still pulls the image (which the boot timeout does not count)
    pulling: bool = False


@dataclass
class Service:
    """A one-off's (or any) service, as far as gitpaas needs it."""

    id: str
    name: str
    process_type: str
    dyno: str
    release_version: int
    ended: bool


@dataclass
class Ended:
    """How a one-off's task ended."""

    exit_code: int | None
    stopped: bool = False
    error: str = ""


@dataclass
class Task:
    process: Process
    node: str


class Services:
    def __init__(self, client: docker.DockerClient, local: docker.DockerClient | None, settings: Settings) -> None:
        self.client = client
        self.api = client.api
        self.local = local
        self.settings = settings
        self._users: dict[str, str] = {}

    # --- names and lookups ------------------------------------------------------------------
    def service_name(self, app: str, process_type: str) -> str:
        return f"gp-{self.settings.home_id}-{app}-{process_type}"[:63]

    def _find(self, app: str | None = None, **extra: str) -> list[dict]:
        wanted = labels.for_app(self.settings, app, **extra) if app else {**labels.for_home(self.settings), **extra}
        return self.api.services(filters=labels.filters(wanted))

    def all(self, app: str | None = None) -> list[Service]:
        return [self._summary(s) for s in self._find(app)]

    def formation(self, app: str) -> dict[str, dict]:
        return {s["Spec"]["Labels"][labels.PROCESS_TYPE]: s for s in self._find(app, **{labels.ROLE: "process"})}

    def one_offs(self, app: str) -> list[Service]:
        return [self._summary(s) for s in self._find(app)
                if s["Spec"]["Labels"].get(labels.ROLE) in ONE_OFF_TYPES]

    def logged(self, app: str) -> list[Service]:
        """The services whose output is the app's logs: its processes and its detached one-offs."""
        return [self._summary(s) for s in self._find(app)
                if s["Spec"]["Labels"].get(labels.ROLE) == "process" or s["Spec"]["Labels"].get(DETACHED)]

    def _summary(self, service: dict) -> Service:
        tags = service["Spec"]["Labels"]
        tasks = self.api.tasks(filters={"service": service["ID"]}) if tags.get(labels.ROLE) in ONE_OFF_TYPES else []
        return Service(id=service["ID"], name=service["Spec"]["Name"], process_type=tags.get(labels.PROCESS_TYPE, ""),
                       dyno=tags.get(labels.DYNO, ""), release_version=int(tags.get(labels.RELEASE) or 0),
                       ended=bool(tasks) and all(t["Status"]["State"] in ENDED for t in tasks))

    def network(self, app: str) -> str:
        """The app's own overlay network (its processes only), made on first use; its id."""
        name = self.settings.app_network(app)
        for network in self.client.networks.list(names=[name], filters=labels.filters(labels.for_app(self.settings, app))):
            if network.name == name:
                return network.id
        return self.client.networks.create(name, driver="overlay", labels=labels.for_app(self.settings, app),
                                           check_duplicate=True).id

    def remove_network(self, app: str) -> None:
        self._remove_networks(labels.for_app(self.settings, app))

    def remove_networks(self) -> None:
        self._remove_networks(labels.for_home(self.settings))

    def _remove_networks(self, wanted: dict[str, str], timeout: float = 30.0) -> None:
        """Remove the networks once the tasks of removed services have left them (Swarm stops
        those in the background)."""
        deadline = time.monotonic() + timeout
        for network in self.client.networks.list(filters=labels.filters(wanted)):
            while True:
                try:
                    network.remove()
                    break
                except NotFound:
                    break
                except APIError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)

    def remove(self, service_id: str) -> None:
        _quietly(lambda: self.api.remove_service(service_id))

    # --- specs ------------------------------------------------------------------------------
    def user_of(self, image: str) -> str:
        """Who runs ``image``'s processes: the USER it names, else nobody; never root (read from the
        local engine, which built it)."""
        local_tag = image.partition("/")[2] if self.settings.swarm_registry and image.startswith(
            self.settings.swarm_registry + "/") else image
        if local_tag not in self._users:
            user = ""
            if self.local is not None:
                try:
                    user = (self.local.images.get(local_tag).attrs.get("Config") or {}).get("User") or ""
                except (ImageNotFound, NotFound):
                    user = ""
            self._users[local_tag] = DYNO_USER if user.partition(":")[0] in ("", "0", "root") else user
        return self._users[local_tag]

    def template(self, release: ReleaseSpec, process_type: str, size: str | None, network: str, *,
                 dyno: str, command: str | None, role: str, restart: str, extra_labels: dict | None = None,
                 checks: list[dict] | None = None, host: str = "localhost", env: Mapping[str, str] | None = None) -> dict:
        limits = sizes.get(size)
        # Swarm reads environment values as Go templates: a config var's "{{" stays literal
        env = {key: value.replace("{{", '{{"{{"}}') for key, value in {**release.env, **(env or {})}.items()}
        env["DYNO"] = dyno
        argv = shell_command(command) if command else None
        web = process_type == procfile.WEB
        if web:
            env["PORT"] = str(WEB_PORT)
        if web and argv:  # (an image's own command cannot be wrapped: it gets its SIGTERM at once)
            env["GITPAAS_DRAIN"] = f"{self.settings.drain_seconds:g}"
            argv = ["/bin/sh", "-c", DRAIN, "gitpaas-drain", *argv]
        else:
            # the init signals the whole process group, as docker-local's does
            env.setdefault("TINI_KILL_PROCESS_GROUP", "1")
            if command and role != "process":
                argv = ["/bin/sh", "-c", "exec 2>&1\n" + command]  # one stream: the output keeps its order
        container_labels = labels.for_app(self.settings, release.app, **{
            labels.RELEASE: release.version, RELEASE_ID: release.id, labels.PROCESS_TYPE: process_type,
            labels.ROLE: role, COMMAND: command or "", SIZE: limits.name, **(extra_labels or {})})
        health = None
        if web:
            test = LISTENING
            if checks:  # app.json's startup checks: until they passed once (then only $PORT is watched)
                test += (f" && {{ [ -e {STARTED} ] || {{ " + " && ".join(_http_check(c, host) for c in checks)
                         + f" && touch {STARTED}; }}; }}")
            # Every check is an exec in the container, for the task's whole life: every 2 s, not every
            # second (with 37 web processes checked each second on the 2-core rig, the engines ran 15
            # execs a second at a load average of 44); engine 20.10 has no faster interval for the
            # start alone (start_interval came in engine 25)
            health = Healthcheck(test=["CMD-SHELL", test], interval=HEALTH_INTERVAL * NANO, timeout=5 * NANO,
                                 retries=max(3, int(self.settings.boot_timeout / HEALTH_INTERVAL)), start_period=0)
        spec = ContainerSpec(
            image=release.image_of(process_type), command=argv, env=env, labels=container_labels,
            hostname=f"{release.app}-{process_type}-{{{{.Task.Slot}}}}"[:63],
            user=self.user_of(release.image_of(process_type)), init=True, healthcheck=health,
            stop_grace_period=int((self.settings.stop_timeout + (self.settings.drain_seconds if web else 0)) * NANO),
            cap_drop=["ALL"])
        return TaskTemplate(container_spec=spec, resources=Resources(mem_limit=limits.memory_bytes),
                            restart_policy=RestartPolicy(condition=restart), networks=[{"Target": network}])

    def _update_config(self) -> UpdateConfig:
        return UpdateConfig(parallelism=1, delay=0, failure_action="rollback", max_failure_ratio=0,
                            monitor=int(max(self.settings.startup_window, 0.5) * NANO), order="start-first")

    def _rollback_config(self) -> RollbackConfig:
        return RollbackConfig(parallelism=1, delay=0, failure_action="pause",
                              monitor=int(max(self.settings.startup_window, 0.5) * NANO), order="start-first")

    @staticmethod
    def _endpoint(process_type: str) -> dict:
        """DNS round robin (no VIP, no routing mesh); a web task publishes $PORT on its node, on a
        port the node picks (``Status.PortStatus`` tells which)."""
        ports = [{"Protocol": "tcp", "TargetPort": WEB_PORT, "PublishMode": "host"}] if process_type == procfile.WEB else []
        return {"Mode": "dnsrr", "Ports": ports}

    # --- a deploy ---------------------------------------------------------------------------
    def apply(self, release: ReleaseSpec, process_type: str, quantity: int, size: str | None, network: str,
              current: dict | None, restart: bool, host: str = "localhost") -> Plan:
        """Create, update or scale one process type's service; what to wait for."""
        template = self.template(release, process_type, size, network, dyno=f"{process_type}.{{{{.Task.Slot}}}}",
                                 command=release.process_types.get(process_type), role="process", restart="any",
                                 checks=release.healthchecks.get(process_type), host=host)
        key = hashlib.sha256(json.dumps(template, sort_keys=True, default=str).encode()).hexdigest()[:16]
        service_labels = labels.for_app(self.settings, release.app, **{
            labels.PROCESS_TYPE: process_type, labels.ROLE: "process", labels.RELEASE: release.version, SPEC: key})
        mode = docker.types.ServiceMode("replicated", replicas=quantity)
        if current is None:
            created = self.api.create_service(
                template, name=self.service_name(release.app, process_type), labels=service_labels, mode=mode,
                update_config=self._update_config(), rollback_config=self._rollback_config(),
                endpoint_spec=self._endpoint(process_type))
            return Plan(created["ID"], process_type, quantity, 0, release.version, 0, rolled=False, created=True,
                        started=self._changed_at(created["ID"]))
        spec = current["Spec"]
        before = int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas") or 0)
        force = int(spec["TaskTemplate"].get("ForceUpdate") or 0) + (1 if restart else 0)
        rolled = spec["Labels"].get(SPEC) != key or restart
        if rolled:
            template["ForceUpdate"] = force
        else:  # the very template Swarm has: only the quantity changes, nothing rolls
            template = spec["TaskTemplate"]
            service_labels = spec["Labels"]
            version = int(service_labels.get(labels.RELEASE) or release.version)
        if not rolled and before == quantity:
            return Plan(current["ID"], process_type, quantity, before, version, force, rolled=False, created=False,
                        started=unix_time(current.get("UpdatedAt", "")), noop=True)
        self.api.update_service(
            current["ID"], current["Version"]["Index"], task_template=template, name=spec["Name"],
            labels=service_labels, mode=mode, update_config=self._update_config(),
            rollback_config=self._rollback_config(), endpoint_spec=self._endpoint(process_type),
            fetch_current_spec=False)
        return Plan(current["ID"], process_type, quantity, before, release.version if rolled else version, force,
                    rolled=rolled, created=False, started=self._changed_at(current["ID"]))

    def _changed_at(self, service_id: str) -> float:
        """When the manager recorded the service's last change, by the manager's clock (what task
        and update times compare with: gitpaas's own clock may be another machine's)."""
        return unix_time(self.api.inspect_service(service_id).get("UpdatedAt", ""))

    def progress(self, plan: Plan) -> Progress:
        """How far Swarm got with ``plan``: done, failed (and why), or news of tasks come up."""
        service = self.api.inspect_service(plan.service_id)
        status = service.get("UpdateStatus") or {}
        # (an earlier update's status, until Swarm starts this one: not this plan's)
        update = status.get("State") or "" if unix_time(status.get("StartedAt", "")) >= plan.started - 0.001 else "waiting"
        tasks = self.api.tasks(filters={"service": plan.service_id})
        nodes = self.node_names()
        mine = [t for t in tasks if self._of_plan(t, plan)]
        progress = Progress(pulling=any(t["Status"]["State"] in PULLING for t in mine))
        for task in mine:
            if task["Status"]["State"] == "running" and task.get("DesiredState") == "running":
                progress.news.append(f"{plan.process_type}.{task.get('Slot')} of v{plan.version} is up on "
                                     f"{nodes.get(task.get('NodeID'), '?')}"
                                     + (" (healthy: listening on $PORT)" if plan.process_type == procfile.WEB else ""))
        failures = sorted((t for t in mine if t["Status"]["State"] in ("failed", "rejected")
                           and unix_time(t.get("CreatedAt", "")) >= plan.started - 0.001), key=lambda t: t.get("CreatedAt", ""))
        if plan.rolled and update.startswith("rollback") or update == "paused":
            reason = self._why(failures[-1], nodes) if failures else (service.get("UpdateStatus") or {}).get(
                "Message", "the update failed")
            progress.failed = f"failed on the swarm, which rolled its service back: {reason}"
            if failures:
                progress.process = f"{plan.process_type}.{failures[-1].get('Slot')}"
                progress.log_tail = self.log_tail(plan.service_id, failures[-1]["ID"])
            return progress
        if not plan.rolled and failures:
            progress.failed = f"could not start on the swarm: {self._why(failures[-1], nodes)}"
            progress.process = f"{plan.process_type}.{failures[-1].get('Slot')}"
            progress.log_tail = self.log_tail(plan.service_id, failures[-1]["ID"])
            return progress
        stuck = [t for t in mine if t["Status"]["State"] == "pending" and "no suitable node" in (t["Status"].get("Err") or "")]
        if stuck:  # (Swarm keeps it pending: nothing would change by waiting)
            progress.failed = f"has no node to run on: {stuck[0]['Status']['Err']}"
            progress.process = f"{plan.process_type}.{stuck[0].get('Slot')}"
            return progress
        wanted = [t for t in tasks if t.get("DesiredState") == "running"]
        serving = [t for t in mine if t.get("DesiredState") == "running" and t["Status"]["State"] == "running"]
        if plan.quantity == 0:  # (Swarm records no update for a service with no task to update)
            progress.done = not wanted
        else:
            progress.done = (len(serving) == plan.quantity and len(wanted) == plan.quantity
                             and (not plan.rolled or update in ("completed", "")))
        return progress

    def _of_plan(self, task: dict, plan: Plan) -> bool:
        spec = task.get("Spec") or {}
        container_labels = (spec.get("ContainerSpec") or {}).get("Labels") or {}
        return (container_labels.get(labels.RELEASE) == str(plan.version)
                and int(spec.get("ForceUpdate") or 0) == plan.force)

    @staticmethod
    def _why(task: dict, nodes: dict[str, str]) -> str:
        status = task["Status"]
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        error = status.get("Err") or status.get("Message") or status.get("State")
        if "unhealthy" in error.lower():
            error = f"its health check failed (nothing listening on PORT {WEB_PORT}, or an app.json check)"
        elif code:
            error = f"exited with status {code}"
        return f"{error} (on {nodes.get(task.get('NodeID'), 'a node')})"

    def undo(self, plan: Plan) -> None:
        if plan.created:
            self.remove(plan.service_id)
            return
        service = self.api.inspect_service(plan.service_id)
        if plan.rolled:
            if ((service.get("UpdateStatus") or {}).get("State") or "").startswith("rollback"):
                return  # Swarm rolls it back already
            # docker-py has no `rollback=previous`: the engine's own rollback, asked directly
            answer = self.api._post_json(  # noqa: SLF001
                self.api._url("/services/{0}/update", plan.service_id), data=service.get("PreviousSpec") or service["Spec"],
                params={"version": service["Version"]["Index"], "rollback": "previous"})
            self.api._result(answer)  # noqa: SLF001 — (raises what the engine refused)
            return
        if plan.before != plan.quantity:
            spec = service["Spec"]
            self.api.update_service(plan.service_id, service["Version"]["Index"], task_template=spec["TaskTemplate"],
                                    name=spec["Name"], labels=spec["Labels"],
                                    mode=docker.types.ServiceMode("replicated", replicas=plan.before),
                                    update_config=self._update_config(), rollback_config=self._rollback_config(),
                                    endpoint_spec=self._endpoint(plan.process_type), fetch_current_spec=False)

    def settled(self, plan: Plan) -> bool:
        """After an undo: nothing in flight (a rollback completed, the old quantity running)."""
        try:
            service = self.api.inspect_service(plan.service_id)
        except NotFound:
            return True
        state = (service.get("UpdateStatus") or {}).get("State") or ""
        return state not in ("updating", "rollback_started")

    # --- tasks ------------------------------------------------------------------------------
    def node_names(self) -> dict[str, str]:
        return {n["ID"]: n["Description"]["Hostname"] for n in self.api.nodes()}

    def _node_addresses(self) -> dict[str, str]:
        """Ready nodes → the address their published ports answer on."""
        found = {}
        for node in self.api.nodes():
            if (node.get("Status") or {}).get("State") != "ready":
                continue
            address = node["Status"].get("Addr") or ""
            if address in ("", "0.0.0.0"):
                address = ((node.get("ManagerStatus") or {}).get("Addr") or "").rpartition(":")[0]
            found[node["ID"]] = address
        return found

    def web_backends(self, app: str) -> list[tuple[str, int]]:
        """Where the app's web tasks that serve now answer: (node address, published port)."""
        service = self.formation(app).get(procfile.WEB)
        if service is None:
            return []
        addresses = self._node_addresses()
        backends = []
        for task in self.api.tasks(filters={"service": service["ID"], "desired-state": "running"}):
            if task["Status"]["State"] != "running" or task.get("NodeID") not in addresses:
                continue
            for port in (task["Status"].get("PortStatus") or {}).get("Ports") or []:
                if port.get("TargetPort") == WEB_PORT and port.get("PublishedPort"):
                    backends.append((addresses[task["NodeID"]], int(port["PublishedPort"])))
        return sorted(set(backends))  # (a port is listed once per address family)

    def tasks(self, app: str) -> list[Task]:
        """The app's processes now, each where it runs; a task being stopped shows as ``stopping``."""
        nodes = self.node_names()
        found: list[Task] = []
        for service in self._find(app):
            tags = service["Spec"]["Labels"]
            try:
                tasks = self.api.tasks(filters={"service": service["ID"]})
            except NotFound:
                continue  # (removed meanwhile: a one-off that ended)
            one_off = tags.get(labels.ROLE) in ONE_OFF_TYPES
            history: dict[int, list[dict]] = {}
            for task in tasks:
                history.setdefault(int(task.get("Slot") or 0), []).append(task)
            for task in tasks:
                state = task["Status"]["State"]
                live = task.get("DesiredState") == "running" or (state == "running" and not one_off)
                if not live and not (one_off and len(tasks) == 1):
                    continue
                spec = task.get("Spec") or {}
                container_labels = (spec.get("ContainerSpec") or {}).get("Labels") or {}
                slot = int(task.get("Slot") or 0)
                crashed = [t for t in history.get(slot, []) if t is not task and t["Status"]["State"] in ("failed", "rejected")
                           and ((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels", {}).get(labels.RELEASE)
                           == container_labels.get(labels.RELEASE)]  # (a failed deploy's tasks are not its crashes)
                shown = STATES.get(state, state)
                if task.get("DesiredState") != "running" and state == "running":
                    shown = "stopping"
                name = tags.get(labels.DYNO, "") if one_off else f"{tags.get(labels.PROCESS_TYPE)}.{slot}"
                process_type, _, number = name.partition(".")
                node = nodes.get(task.get("NodeID"), "")
                found.append(Task(Process(
                    id=task["ID"], app=app, type=process_type, index=int(number or 0),
                    release_version=int(container_labels.get(labels.RELEASE) or 0),
                    release_id=container_labels.get(RELEASE_ID, ""), command=container_labels.get(COMMAND, ""),
                    state=shown, created_at=(task.get("CreatedAt") or "")[:19] + "Z", restarts=len(crashed),
                    size=container_labels.get(SIZE) or sizes.DEFAULT, node=node or None,
                    crash_reason=(self._why(crashed[-1], nodes) if crashed else None)), node))
        found.sort(key=lambda t: (t.process.type, t.process.index, t.process.state == "stopping"))
        return found

    def serving(self, app: str) -> set[str]:
        """The names of the app's formation processes that are up."""
        return {t.process.name for t in self.tasks(app) if not t.process.one_off and t.process.state == "up"}

    def on_node(self, node_id: str) -> list[str]:
        """This home's processes whose containers still exist on ``node_id`` (stopping ones too)."""
        found = []
        for service in self._find():
            tags = service["Spec"]["Labels"]
            for task in self.api.tasks(filters={"service": service["ID"], "node": node_id}):
                if task["Status"]["State"] not in ENDED:
                    name = tags.get(labels.DYNO) or f"{tags.get(labels.PROCESS_TYPE)}.{task.get('Slot')}"
                    found.append(f"{tags.get(labels.APP)}/{name}")
        return sorted(found)

    def placement(self, app: str) -> dict[str, list[str]]:
        """Node → the app's formation processes running there."""
        placed: dict[str, list[str]] = {}
        for task in self.tasks(app):
            if not task.process.one_off and task.process.state == "up":
                placed.setdefault(task.node or "?", []).append(task.process.name)
        return dict(sorted(placed.items()))

    def nodes_with_tasks(self) -> list[dict]:
        running: dict[str, list[str]] = {}
        mine = {service["ID"]: service["Spec"]["Labels"] for service in self._find()}
        for task in self.api.tasks(filters={"desired-state": "running"}):  # (one call, whatever the services)
            tags = mine.get(task.get("ServiceID"))
            if tags is not None:
                if task["Status"]["State"] == "running":
                    name = tags.get(labels.DYNO) or f"{tags.get(labels.PROCESS_TYPE)}.{task.get('Slot')}"
                    running.setdefault(task.get("NodeID", ""), []).append(f"{tags.get(labels.APP)}/{name}")
        found = []
        for node in self.api.nodes():
            manager = node.get("ManagerStatus") or {}
            found.append({
                "id": node["ID"][:12], "hostname": node["Description"]["Hostname"], "role": node["Spec"].get("Role"),
                "leader": bool(manager.get("Leader")), "state": node["Status"].get("State"),
                "availability": node["Spec"].get("Availability"),
                "address": node["Status"].get("Addr") if node["Status"].get("Addr") not in ("", "0.0.0.0")
                else manager.get("Addr", "").rpartition(":")[0],
                "engine": (node["Description"].get("Engine") or {}).get("EngineVersion"),
                "processes": sorted(running.get(node["ID"], [])),
            })
        return sorted(found, key=lambda n: n["hostname"])

    # --- one-offs ---------------------------------------------------------------------------
    def create_one_off(self, job: OneOff, network: str, detached: bool, env: Mapping[str, str] | None = None) -> str:
        extra = {labels.DYNO: job.name, **({DETACHED: "1"} if detached and job.type == "run" else {})}
        template = self.template(job.release, job.type, job.size, network, dyno=job.name, command=job.command,
                                 role=job.type, restart="none", extra_labels=extra, env=env)
        service_labels = labels.for_app(self.settings, job.release.app, **{
            labels.PROCESS_TYPE: job.type, labels.ROLE: job.type, labels.RELEASE: job.release.version, **extra})
        created = self.api.create_service(
            template, name=f"gp-{self.settings.home_id}-{job.release.app}-{job.type}-{job.number}"[:63],
            labels=service_labels, mode=docker.types.ServiceMode("replicated", replicas=1),
            endpoint_spec={"Mode": "dnsrr"})
        return created["ID"]

    def wait_one_off(self, service_id: str, timeout: float, poll: float = 0.2, until_started: bool = False) -> Ended | None:
        """Until the one-off's task ended (None: its service was removed: stopped or timed out);
        ``until_started``: only until its container started (or it ended)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                tasks = self.api.tasks(filters={"service": service_id})
            except NotFound:
                return None
            try:
                self.api.inspect_service(service_id)
            except NotFound:
                return None
            if until_started and any(t["Status"]["State"] in ("starting", "running") for t in tasks):
                return None
            ended = [t for t in tasks if t["Status"]["State"] in ENDED]
            if tasks and len(ended) == len(tasks):
                task = max(ended, key=lambda t: t.get("CreatedAt", ""))
                status = task["Status"]
                code = (status.get("ContainerStatus") or {}).get("ExitCode")
                return Ended(exit_code=code, stopped=status["State"] in ("shutdown", "orphaned", "remove"),
                             error="" if status["State"] in ("complete", "failed") else status.get("Err") or status.get("Message", ""))
            time.sleep(poll)
        return None

    # --- logs -------------------------------------------------------------------------------
    def log_tail(self, service_id: str, task_id: str | None = None, lines: int = 20) -> str:
        try:
            raw = self.api.service_logs(service_id, stdout=True, stderr=True, details=True, tail=200)
        except (APIError, NotFound):
            return ""
        kept = []
        for line in iter_lines(raw):
            details, text = _split_details(line)
            if task_id is None or details.get("com.docker.swarm.task.id") == task_id:
                kept.append(text)
        return "\n".join(kept[-lines:])

    def log_lines(self, service: Service, tail: int | str | None, follow: bool, opened: list | None = None):
        """``service``'s output as Heroku-format lines (``… app[web.2]: text``)."""
        raw = self.api.service_logs(service.id, stdout=True, stderr=True, details=True, timestamps=True,
                                    follow=follow, tail=tail if tail else "all")
        if opened is not None:
            opened.append(raw)
        slots: dict[str, str] = {}
        for line in iter_lines(raw):
            stamp, _, rest = line.partition(" ")
            details, text = _split_details(rest)
            task_id = details.get("com.docker.swarm.task.id", "")
            if service.dyno:
                name = service.dyno
            else:
                if task_id not in slots:
                    try:
                        slots[task_id] = str(self.api.inspect_task(task_id).get("Slot", "?"))
                    except (APIError, NotFound):
                        slots[task_id] = "?"
                name = f"{service.process_type}.{slots[task_id]}"
            yield f"{stamp[:26].ljust(26, '0')}+00:00 app[{name}]: {text}"


def _split_details(line: str) -> tuple[dict[str, str], str]:
    """A ``details=True`` log line: ``com.docker.swarm.node.id=…,com.docker.swarm.task.id=… text``."""
    head, _, text = line.partition(" ")
    if "com.docker.swarm." not in head:
        return {}, line
    details = dict(item.partition("=")[::2] for item in head.split(","))
    return details, text


#: an app.json check's script (bash's /dev/tcp: no HTTP client needed in the image): GET $1 with
#: Host $2 on $PORT answers 2xx, with $3 in its body when $3 is not empty
HTTP_CHECK = ('exec 3<>/dev/tcp/127.0.0.1/$PORT && printf "GET %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n" "$1" "$2" >&3 '
              '&& answer=$(timeout "$4" cat <&3) && status=${answer%%' "$'\\r'" '*} '
              '&& case "$status" in "HTTP/"*" 2"[0-9][0-9]*) ;; *) exit 1;; esac '
              '&& { [ -z "$3" ] || printf %s "$answer" | grep -qF -- "$3"; }')
#: where a task notes that its startup checks passed
STARTED = "/tmp/.gitpaas-started"


def _http_check(check: dict, host: str) -> str:
    """An app.json startup check as a shell command (its values passed as arguments, never as code)."""
    return " ".join(shlex.quote(word) for word in (
        "bash", "-c", HTTP_CHECK, "gitpaas-check", str(check.get("path", "/")), host, str(check.get("content") or ""),
        f"{float(check.get('timeout', 5.0)):g}"))


def _quietly(action) -> None:
    try:
        action()
    except NotFound:
        pass  # gone already
