"""docker-local's add-on containers: one per add-on, on its app's network only, never published.

``gp-<home id>-APP.addon.NAME`` runs the service's image (``gitpaas.build.addon_images``) as the
service's own user, with every capability dropped and ``no-new-privileges``, restarting
``unless-stopped``; its data is on the named volume ``gp-<home id>-NAME-data``, which survives
deploys, restarts, rollbacks, reboots and upgrades of gitpaas — only ``remove(keep_data=False)``
deletes it. Its name on the app's network is the add-on's name, which the app's config var
(``DATABASE_URL``) points at: the processes of other apps can neither resolve nor reach it.
"""

from __future__ import annotations

import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from gitpaas import labels
from gitpaas.build.addon_images import ADDON_STACK, RECIPES, ensure_image, is_current
from gitpaas.errors import EnvironmentProblem
from gitpaas.scheduler import AddonSpec
from gitpaas.scheduler.docker_local.containers import Containers, remove
from gitpaas.scheduler.docker_local.oneoff import DockerExec
from gitpaas.settings import Settings

ROLE = "addon"
ADDON = "gitpaas.addon"
#: an add-on's limits: enough for a small app's database, far from the machine's
MEMORY = 512 * 1024 * 1024
PIDS = 256


class AddonContainers:
    def __init__(self, client: docker.DockerClient, settings: Settings, containers: Containers) -> None:
        self.client = client
        self.settings = settings
        self.containers = containers

    def name(self, addon: AddonSpec) -> str:
        return f"gp-{self.settings.home_id}-{addon.app}.addon.{addon.name}"

    def volume(self, addon: AddonSpec) -> str:
        """Its data: named after the add-on and its id, so a new add-on never finds an old one's."""
        return f"gp-{self.settings.home_id}-{addon.name}-{addon.id[:8]}-data"

    def find(self, addon: AddonSpec) -> Container | None:
        try:
            return self.client.containers.get(self.name(addon))
        except NotFound:
            return None

    def start(self, addon: AddonSpec, progress: Callable[[str], None], refresh: bool = False) -> bool:
        """Make sure the add-on's container exists, as it should be, and runs (creating its volume
        the first time); True when it was not running. A container that is not on its app's
        network under the add-on's name (an engine failure half-way through making it) is made
        again, and with ``refresh`` so is one whose image was rebuilt since: its data is on the
        volume."""
        network = self.containers.network(addon.app)
        found = self.find(addon)
        if found is not None and not self._wired(found, network, addon):
            remove(found)
            found = None
        stack = self.settings.stack_image(ADDON_STACK)
        if found is not None and refresh and not is_current(self.client, found.image, addon.service, stack):
            ensure_image(self.client, addon.service, progress, stack)  # before the old one goes
            remove(found)
            found = None
        if found is not None:
            if found.status == "running":
                return False
            found.start()
            return True
        image = ensure_image(self.client, addon.service, progress, stack)
        try:
            self.client.volumes.get(self.volume(addon))
        except NotFound:
            self.client.volumes.create(self.volume(addon), labels=self._labels(addon))
        recipe = RECIPES[addon.service]
        container = self.client.containers.create(
            image, name=self.name(addon), hostname=addon.name[:63], environment=dict(addon.env),
            labels=self._labels(addon), volumes={self.volume(addon): {"bind": recipe.data_dir, "mode": "rw"}},
            restart_policy={"Name": "unless-stopped"}, init=True, detach=True,
            security_opt=["no-new-privileges:true"], cap_drop=["ALL"], mem_limit=MEMORY, memswap_limit=MEMORY,
            pids_limit=PIDS, network=network,
            # its name on the app's network is the add-on's: what DATABASE_URL points at
            networking_config={network: self.client.api.create_endpoint_config(aliases=[addon.name])})
        try:
            container.start()
        except BaseException:
            remove(container)
            raise
        return True

    def _labels(self, addon: AddonSpec) -> dict[str, str]:
        return labels.for_app(self.settings, addon.app, **{labels.ROLE: ROLE, ADDON: addon.name})

    @staticmethod
    def _wired(container: Container, network: str, addon: AddonSpec) -> bool:
        networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
        return list(networks) == [network] and addon.name in (networks[network].get("Aliases") or [])

    def wait(self, addon: AddonSpec, timeout: float) -> None:
        """Until the service accepts connections (its readiness command succeeds); EnvironmentProblem
        naming the add-on and its last words otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            container = self.find(addon)
            if container is not None and container.status == "running":
                if container.exec_run(list(addon.readiness), environment=dict(addon.secrets)).exit_code == 0:
                    return
            if time.monotonic() > deadline:
                tail = container.logs(tail=5).decode(errors="replace").strip() if container is not None else ""
                raise EnvironmentProblem(f"the add-on {addon.name} does not accept connections within {timeout:g} s"
                                         + (f": {tail.splitlines()[-1]}" if tail else ""))
            time.sleep(0.2)

    def exec(self, addon: AddonSpec, argv: Sequence[str], *, stdin_file: Path | None = None,
             stdout_file: Path | None = None, env: Mapping[str, str] | None = None) -> tuple[int, str]:
        """Run ``argv`` in the add-on's container with its secrets and ``env`` in its environment;
        its stdout streams into ``stdout_file`` if given (a dump), ``stdin_file`` is its input if
        given (copied in first, the service user's, removed afterwards); returns (status, output)."""
        container = self.find(addon)
        if container is None:
            raise EnvironmentProblem(f"the add-on {addon.name} has no container: run `gitpaas boot`")
        environment = {**addon.secrets, **(env or {})}
        command = list(argv)
        staged = None
        if stdin_file is not None:
            staged = f"/tmp/gitpaas-input-{uuid.uuid4().hex}"
            self._copy_in(container, stdin_file, staged)
            command = ["/bin/sh", "-c", f'exec "$@" < {staged}', "sh", *command]
        try:
            if stdout_file is None:
                result = container.exec_run(command, demux=True, environment=environment)
                out, err = result.output
                return result.exit_code, ((out or b"") + (err or b"")).decode(errors="replace")
            exec_id = self.client.api.exec_create(container.id, command, environment=environment)["Id"]
            errors = bytearray()
            with open(stdout_file, "wb") as sink:
                for out, err in self.client.api.exec_start(exec_id, stream=True, demux=True):
                    if out:
                        sink.write(out)
                    if err:
                        errors.extend(err)
            return self.client.api.exec_inspect(exec_id)["ExitCode"], errors.decode(errors="replace")
        finally:
            if staged is not None:
                container.exec_run(["rm", "-f", staged])

    def attach(self, addon: AddonSpec, argv: Sequence[str], tty: bool) -> DockerExec:
        """A session in the add-on's container, to start once its user is there (a rendezvous)."""
        container = self.find(addon)
        if container is None:
            raise EnvironmentProblem(f"the add-on {addon.name} has no container: run `gitpaas boot`")
        return DockerExec(self.client, container, list(argv), addon.secrets, tty, f"{addon.name} session")

    def session(self, addon: AddonSpec, argv: Sequence[str], interactive: bool, env_names: Sequence[str]) -> list[str]:
        """The ``docker exec`` command line of a session in the add-on (for a terminal to run);
        ``env_names`` are passed by name, their values from the caller's environment."""
        passed = [arg for name in env_names for arg in ("-e", name)]
        return ["docker", "exec", *(["-it"] if interactive else ["-i"]), *passed, self.name(addon), *argv]

    def remove(self, addon: AddonSpec, keep_data: bool) -> None:
        container = self.find(addon)
        if container is not None:
            remove(container)
        if not keep_data:
            try:
                self.client.volumes.get(self.volume(addon)).remove(force=True)
            except NotFound:
                pass  # never made, or removed meanwhile

    def _copy_in(self, container: Container, source: Path, target: str) -> None:
        """Copy a file into the container, owned by the service's user and readable by it alone
        (through a temporary tar on disk: a dump may be large)."""
        ids = container.exec_run(["/bin/sh", "-c", "id -u; id -g"]).output.decode().split()
        with tempfile.TemporaryFile() as buffer:
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                info = tar.gettarinfo(str(source), arcname=target.lstrip("/"))
                info.uid, info.gid = (int(ids[0]), int(ids[1])) if len(ids) == 2 else (0, 0)
                info.uname = info.gname = ""
                info.mode = 0o600
                with open(source, "rb") as handle:
                    tar.addfile(info, handle)
            buffer.seek(0)
            try:
                container.put_archive("/", buffer)
            except APIError as exc:
                raise EnvironmentProblem(f"could not copy the backup into the add-on: {exc.explanation}") from exc
