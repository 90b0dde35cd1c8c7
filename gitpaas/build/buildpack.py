"""Build an app that has no ``Dockerfile`` with Heroku classic buildpacks.

One build container per build, made from the stack image and removed whatever happens:

    /app       the pushed tree (the commit written as a tar straight into the container)
    /cache     the app's build cache (``apps/NAME/cache``), bind-mounted: CACHE_DIR
    /gitpaas   the buildpacks and ENV_DIR (the config vars, one file per key); removed before the commit
    /tmp       a tmpfs, so nothing written there reaches the slug

``bin/detect``, ``bin/compile`` and ``bin/release`` run in it one after the other with ``docker
exec``, as an unprivileged user that can write only /app, /tmp and /cache, their output streamed
into ``git push``. Then the container is committed: the stack plus one layer holding /app is the
slug image. Builds of one app are serialized by the release lock that ``deploy_push`` holds.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import secrets
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types import Mount

from gitpaas import labels
from gitpaas.build import cache
from gitpaas.build.base import BuildRequest, BuiltImage
from gitpaas.build.buildpack_list import (
    BUNDLED,
    Buildpack,
    allowed,
    bundled,
    chosen_entries,
    fetch,
)
from gitpaas.build.buildpack_protocol import (
    build_environment,
    parse_release,
    route_line,
)
from gitpaas.build.stack import CA_BUNDLE, CONTAINER_PATH, ensure_stack, provided_runtimes
from gitpaas.dockerutil import ENGINE_ERRORS, describe
from gitpaas.errors import BuildFailed, EnvironmentProblem, GitpaasError, UnsupportedApp
from gitpaas.lines import iter_lines
from gitpaas.runtimes import check_node, choose_python, node_request, python_request
from gitpaas.settings import Settings
from gitpaas.store.files import open_private, read_json, write_json

#: A warm build stands on the previous build's slug rather than on the stack: the folders the
#: bundled buildpacks install dependencies into stay in its layer (each buildpack keeps its folder
#: only when the key it wrote there matches, else it makes it anew), everything else in /app is
#: removed, and the new slug is that image plus one layer with the new code. Nothing heavy is copied
#: or committed again. ``BASE_RECORD`` (in the app's folder, out of the builds' reach; `builds:cache:clear`
#: removes it) names that slug; a build stands on it only with the same bundled buildpacks, stack
#: image, dependency inputs and config vars, and at most ``MAX_LAYERS`` builds in a row, after which
#: one starts from the stack again (from the cache) so the chain of layers stays short. What an
#: earlier build of the chain had in /app stays in a lower layer of the slug until then.
KEPT = (".venv", "node_modules")
#: which bundled buildpack keeps which folder: one that does not compile this time has its removed
KEPT_BY = {".venv": "python", "node_modules": "nodejs"}
#: the files the bundled buildpacks make dependencies from (with the config vars): when one
#: changes, the build starts from the stack, so no earlier dependencies stay in a lower layer
DEPENDENCY_INPUTS = (
    "requirements.txt", "Pipfile", "Pipfile.lock", "pyproject.toml", "poetry.lock", "uv.lock", ".python-version",
    "runtime.txt", "package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml",
    ".nvmrc", ".node-version", ".npmrc", ".yarnrc", ".yarnrc.yml", "bin/pre_compile", "bin/post_compile",
)
MAX_LAYERS = 10
WIPE_APP = "find /app -mindepth 1 -maxdepth 1 " + " ".join(f"! -name {name}" for name in KEPT) + " -exec rm -rf {} +"
BUILD_ROOT = "/gitpaas"
ENV_DIR = f"{BUILD_ROOT}/env"
BUILD_HOME = "/tmp/build-home"
LOG_TAIL_LINES = 30
#: The slug's PATH: the bundled buildpacks' virtualenv and node_modules first, then the stack's.
SLUG_PATH = f"/app/.venv/bin:/app/node_modules/.bin:/app/bin:{CONTAINER_PATH}"
#: As on Heroku, every process of the slug first sources /app/.profile.d/*.sh (buildpacks put
#: runtime settings there); the scheduler's command follows as "$@".
PROFILE_ENTRYPOINT = ["/bin/bash", "-c", 'for f in /app/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done; exec "$@"',
                      "profile.d"]
#: Runs one buildpack script: output in one ordered stream, HOME on the tmpfs, and the ``export``
#: files of the buildpacks that ran before sourced first (Heroku's multi-buildpack convention).
_SCRIPT = ('{merge}mkdir -p "$HOME"; for bp in $GITPAAS_EXPORTS; do if [ -f "$bp/export" ]; then . "$bp/export"; fi; done; '
           'exec "$@"')


class BuildpackBuilder:
    name = "buildpacks"

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def detect(self, source) -> bool:
        # The fallback after the Dockerfile builder: which buildpack applies, if any, is what the
        # buildpacks' own bin/detect say, inside the build container.
        return True

    def build(self, request: BuildRequest) -> BuiltImage:
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="gitpaas-buildpacks-") as workdir, \
                open_private(request.log_path) as log:
            build = _Build(self.client, self.settings, request, log)
            try:
                entries, origin = chosen_entries(request.source.read_text(".buildpacks"), request.config_vars)
                if entries:
                    build.say(f"Buildpacks from {origin}: {', '.join(entries)}")
                    # Every entry is checked before any is fetched: a refused one clones nothing.
                    sources = [allowed(entry, self.settings.buildpack_allow) for entry in entries]
                    for source in sources:
                        if source.kind == "git":
                            build.say(f"Cloning {source.entry}")
                    chosen = [fetch(source, Path(workdir)) for source in sources]
                else:
                    chosen = [bundled(name) for name in BUNDLED]
                return build.run(chosen, detect_first_match=not entries)
            except BuildFailed as exc:
                build.record(f" !     {exc}")  # the log ends with what the push was told
                if exc.log_path is None:  # raised by a helper that does not know where the log is
                    raise BuildFailed(exc.reason, exc.log_tail or build.tail_text(),
                                      log_path=str(request.log_path)) from exc
                raise
            except GitpaasError as exc:
                build.record(f" !     {exc}")
                raise


class _Build:
    """One build: its container, its log, and what it tells the pusher."""

    def __init__(self, client: docker.DockerClient, settings: Settings, request: BuildRequest, log: IO[str]) -> None:
        self.client = client
        self.settings = settings
        self.request = request
        self.log = log
        self.tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.uid, self.gid = cache.build_user()
        self.stack_image = settings.stack_image(request.stack)
        #: whether this build stands on the previous build's slug (its kept folders in /app)
        self.standing_on_base = False

    # --- telling ---------------------------------------------------------------------------
    def failed(self, reason: str) -> BuildFailed:
        return BuildFailed(reason, self.tail_text(), log_path=str(self.request.log_path))

    def tail_text(self) -> str:
        return "\n".join(self.tail)

    def record(self, line: str) -> None:
        self.log.write(line + "\n")
        self.log.flush()
        self.tail.append(line)

    def stage(self, text: str) -> None:
        self.record(f"-----> {text}")
        self.request.output.stage(text)

    def say(self, text: str) -> None:
        self.record(f"       {text}")
        self.request.output.info(text)

    def relay(self, line: str) -> None:
        """A line of a buildpack script's output: kept as written in the log, shown with its meaning."""
        self.record(line)
        kind, text = route_line(line)
        getattr(self.request.output, kind)(text)

    # --- the build ---------------------------------------------------------------------------
    def run(self, buildpacks: list[Buildpack], detect_first_match: bool) -> BuiltImage:
        container = None
        built = None
        try:
            self.stack_image = ensure_stack(self.client, self.settings, self.request.stack, self.relay)
            self._remove_leftover_containers()
            signature = self._signature(buildpacks)
            base = self._reusable_base(signature)
            self.standing_on_base = base is not None
            container = self._create_container(base["image"] if base else self.stack_image,
                                               base["environment"] if base else None)
            container.start()
            if base:
                self.say(f"Building on the previous build's slug ({base['image'][7:19]}): what its buildpacks "
                         "installed stays in place if what it depends on is unchanged")
                self._exec_as_root(container, WIPE_APP)
            self._copy_in(container, buildpacks)
            # Only what is not the build user's yet (what was just copied in): a chown of the kept
            # folders would copy every file of theirs up into the new layer.
            self._exec_as_root(container, f"find /app {BUILD_ROOT} \\( ! -user {self.uid} -o ! -group {self.gid} \\) "
                                          f"-exec chown -h {self.uid}:{self.gid} {{}} + && chmod 0700 {ENV_DIR}")
            process_types = self._run_buildpacks(container, buildpacks, detect_first_match)
            self._exec_as_root(container, f"rm -rf {BUILD_ROOT}")  # ENV_DIR holds secrets: never in the slug
            built = self._commit(container, process_types)
            self._record_base(built, signature, base)
            return built
        except ENGINE_ERRORS as exc:
            raise self.failed(f"Docker: {describe(exc)}") from exc
        finally:
            if container is not None and built is not None:
                # Deleting the container's layer takes about a second that the release need not wait
                # for; the thread is not a daemon, so the process still removes it before exiting.
                threading.Thread(target=_remove, args=(container,), name="remove-build-container").start()
            elif container is not None:
                _remove(container)

    def _remove_leftover_containers(self) -> None:
        """A build killed with SIGKILL cannot clean up; builds of one app are serialized by the
        release lock, so any build container of this app found now is such a leftover (or the
        previous build's, which its process is still removing)."""
        wanted = labels.for_app(self.settings, self.request.app, **{labels.ROLE: "build"})
        for container in self.client.containers.list(all=True, filters=labels.filters(wanted)):
            _remove(container)

    def _signature(self, buildpacks: list[Buildpack]) -> list[str] | None:
        """What must not change for a build to stand on the previous one: the buildpacks and their
        bin/compile, and everything the dependencies are made from (``DEPENDENCY_INPUTS``, the
        config vars); None when a buildpack is not bundled (only the bundled ones check what they keep)."""
        bundled_paths = {bundled(name).path for name in BUNDLED}
        if any(buildpack.path not in bundled_paths for buildpack in buildpacks):
            return None
        inputs = hashlib.sha256()
        for path in DEPENDENCY_INPUTS:
            inputs.update(f"{path}\0".encode() + (self.request.source.read_bytes(path) or b"\0absent") + b"\0")
        for key, value in sorted(self.request.config_vars.items()):
            inputs.update(f"{key}={value}\0".encode())
        return [f"{buildpack.label}:{hashlib.sha256((buildpack.path / 'bin' / 'compile').read_bytes()).hexdigest()[:16]}"
                for buildpack in buildpacks] + [f"inputs:{inputs.hexdigest()[:16]}"]

    def _reusable_base(self, signature: list[str] | None) -> dict | None:
        """The previous build's slug, if this build may stand on it (see ``BASE_RECORD``)."""
        try:
            record = read_json(self._base_record())
        except (OSError, ValueError):
            return None  # none yet (a first build, a cleared cache), or unreadable: from the stack
        if not (isinstance(record, dict) and isinstance(record.get("image"), str)
                and isinstance(record.get("stack_image"), str) and isinstance(record.get("depth"), int)):
            return None
        if signature is None or record.get("signature") != signature or record["depth"] >= MAX_LAYERS:
            return None
        if any(path == name or path.startswith(name + "/") for path in self.request.source.paths() for name in KEPT):
            return None  # the tree brings its own: it is put in a clean /app, as from the stack
        try:
            stack = self.client.images.get(self.stack_image)
            image = self.client.images.get(record["image"])
        except (ImageNotFound, NotFound):
            return None
        if stack.id != record["stack_image"]:
            return None  # the stack was rebuilt (or another chosen): start from it
        wanted = labels.for_app(self.settings, self.request.app, **{labels.ROLE: "slug"})
        if any((image.labels or {}).get(key) != value for key, value in wanted.items()):
            return None  # only this app's own slug
        # The build runs in the stack's environment, not the slug's (whose PATH puts /app/.venv/bin first).
        environment = list((stack.attrs.get("Config") or {}).get("Env") or [])
        return {**record, "image": image.id, "stack_image": stack.id,
                "environment": environment + ([] if any(e.startswith("HOME=") for e in environment) else ["HOME=/root"])}

    def _record_base(self, built: BuiltImage, signature: list[str] | None, base: dict | None) -> None:
        """Name the new slug as the next build's base. Best effort: without a record the next build
        starts from the stack, which is always right."""
        path = self._base_record()
        try:
            if signature is None:
                path.unlink(missing_ok=True)
                return
            stack = base["stack_image"] if base else self.client.images.get(self.stack_image).id
            write_json(path, {"image": built.image_id, "stack_image": stack, "signature": signature,
                              "depth": (base["depth"] + 1) if base else 0})
        except (*ENGINE_ERRORS, OSError):
            path.unlink(missing_ok=True)

    def _base_record(self) -> Path:
        # In the app's folder, not in the build cache: a build can write its cache, never this.
        return self.settings.app_dir(self.request.app) / cache.BASE_RECORD

    def _cache_dir(self) -> Path:
        return self.request.cache_dir or self.settings.app_dir(self.request.app) / "cache"

    def _create_container(self, image: str, environment: list[str] | None = None) -> Container:
        cache_dir = self._cache_dir()
        cache.prepare(cache_dir, (self.uid, self.gid))
        # Mounts, not volumes: a volume would be recorded in the container's config, and so in the slug's.
        mounts = [Mount("/cache", str(cache_dir), type="bind")]
        if os.path.isfile(CA_BUNDLE):  # the host's current bundle, in case it changed since the stack was built
            mounts.append(Mount(CA_BUNDLE, os.path.realpath(CA_BUNDLE), type="bind", read_only=True))
        try:
            return self.client.containers.create(
                # (a previous slug runs its command through the .profile.d entrypoint: not this one)
                image, entrypoint=["sleep"], command=["infinity"], init=True, detach=True, user="0:0",
                environment=environment,
                name=f"gp-{self.settings.home_id}-{self.request.app}.build-{secrets.token_hex(3)}",
                labels={**self.request.labels, labels.ROLE: "build"}, working_dir="/app",
                mounts=mounts, tmpfs={"/tmp": "exec,mode=1777"},
            )
        except ImageNotFound as exc:
            raise EnvironmentProblem(f"the stack image {self.stack_image} is missing: run "
                                     f"`gitpaas stack:build {self.request.stack.name}`") from exc

    def _copy_in(self, container: Container, buildpacks: list[Buildpack]) -> None:
        with tempfile.TemporaryFile() as tree:
            self.request.source.write_tar(tree, prefix="app/")
            tree.seek(0)
            container.put_archive("/", tree)
        with tempfile.TemporaryFile() as staging:
            write_staging_tar(staging, buildpacks, self.request.config_vars)
            staging.seek(0)
            container.put_archive("/", staging)

    def _run_buildpacks(self, container: Container, buildpacks: list[Buildpack],
                        detect_first_match: bool) -> dict[str, str]:
        process_types: dict[str, str] = {}
        compiled: list[str] = []
        if detect_first_match:
            match = next(((index, bp) for index, bp in enumerate(buildpacks)
                          if self._detect(container, index, bp) is not None), None)
            if match is None:
                raise UnsupportedApp(
                    "cannot tell how to build this app: it has no Dockerfile, and no bundled buildpack detects it "
                    "(python: requirements.txt or pyproject.toml; nodejs: package.json; static: index.html or "
                    "public/; procfile: a Procfile). Name one in .buildpacks or BUILDPACK_URL")
            selected = [match]
        else:
            selected = list(enumerate(buildpacks))
        if self.standing_on_base:
            compiling = {buildpack.path for _index, buildpack in selected}
            stale = [name for name, owner in KEPT_BY.items() if bundled(owner).path not in compiling]
            if stale:  # kept for a buildpack that does not build this app (any more)
                self._exec_as_root(container, "rm -rf " + " ".join(f"/app/{name}" for name in stale))
        for position, (index, buildpack) in enumerate(selected):
            if not detect_first_match:
                if len(selected) > 1:
                    self.stage(f"Buildpack {position + 1} of {len(selected)}: {buildpack.label}")
                if self._detect(container, index, buildpack) is None:
                    raise self.failed(f"buildpack {buildpack.label} does not apply to this app "
                                      "(its bin/detect found nothing to build)")
            self._compile(container, index, buildpack, compiled)
            compiled.append(staged_path(index, buildpack))
            process_types.update(self._release(container, index, buildpack))
        if process_types:
            self.stage("Discovering process types")
            self.say(f"Default types for buildpack -> {', '.join(process_types)}")
        return process_types

    def _detect(self, container: Container, index: int, buildpack: Buildpack) -> str | None:
        """The app's kind as bin/detect names it, or None when it does not apply."""
        lines: list[str] = []
        status = self._exec(container, [f"{staged_path(index, buildpack)}/bin/detect", "/app"], lines.append)
        for line in lines:
            self.record(f"       {buildpack.label} bin/detect: {line}")
        if status != 0:
            return None
        name = next((line.strip() for line in lines if line.strip()), buildpack.label)
        self.stage(f"{name} app detected")
        return name

    def _runtime(self, buildpack: Buildpack) -> dict[str, str]:
        """For the bundled python and nodejs buildpacks: the runtime version the app asks for,
        checked against its stack before anything is installed (refused with the versions there are);
        the environment that tells bin/compile which interpreter to use."""
        if buildpack.path not in (bundled("python").path, bundled("nodejs").path):
            return {}
        read, stack, app = self.request.source.read_text, self.request.stack, self.request.app
        provided = provided_runtimes(self.client, self.settings)
        if buildpack.path == bundled("nodejs").path:
            requested = node_request(read)
            if requested is not None:
                self.say(check_node(requested, stack.name, provided, app))
            return {}
        requested = python_request(read)
        if requested is None:
            default = stack.pythons[0]
            self.say(f"Python {provided[stack.name].python.get(default) or default} (the {stack.name} stack's; "
                     "a .python-version file chooses another)")
            return {"GITPAAS_PYTHON": f"python{default}"}
        minor, said = choose_python(requested, stack.name, provided, app)
        self.say(said)
        return {"GITPAAS_PYTHON": f"python{minor}"}

    def _compile(self, container: Container, index: int, buildpack: Buildpack, compiled: list[str]) -> None:
        try:
            runtime = self._runtime(buildpack)
        except UnsupportedApp as exc:  # a failed build like any other: its log says why, and where it is
            raise self.failed(exc.message) from None
        started = time.monotonic()
        last = [""]

        def relay(line: str) -> None:
            self.relay(line)
            if line.strip():
                last[0] = line
        status = self._exec(container, [f"{staged_path(index, buildpack)}/bin/compile", "/app", "/cache", ENV_DIR],
                            relay, exports=compiled, extra_env=runtime)
        if status != 0:
            # A buildpack says why it failed in a last " !     " line; else the exit status is all there is.
            kind, text = route_line(last[0])
            cause = text if kind == "warn" and text else f"bin/compile exited with status {status}"
            raise self.failed(f"buildpack {buildpack.label}: {cause}")
        self.say(f"{buildpack.label}: compiled in {time.monotonic() - started:.1f} s")

    def _release(self, container: Container, index: int, buildpack: Buildpack) -> dict[str, str]:
        if not (buildpack.path / "bin" / "release").is_file():
            return {}
        out: list[str] = []
        status = self._exec(container, [f"{staged_path(index, buildpack)}/bin/release", "/app"], out.append,
                            merge_stderr=False)
        for line in out:
            self.record(f"       {buildpack.label} bin/release: {line}")
        if status != 0:
            raise self.failed(f"buildpack {buildpack.label}: bin/release exited with status {status}")
        return parse_release("\n".join(out), buildpack.label)

    def _exec(self, container: Container, command: list[str], on_line: Callable[[str], None], *,
              exports: Iterable[str] = (), merge_stderr: bool = True, extra_env: dict[str, str] | None = None) -> int:
        """Run ``command`` as the build user, each line of its output to ``on_line``; its exit status.

        Without ``merge_stderr``, only stdout reaches ``on_line`` (stderr goes to the log).
        """
        env = {
            **build_environment(self.settings.environ), "HOME": BUILD_HOME, "STACK": self.request.stack.name,
            "SOURCE_VERSION": self.request.source.commit_sha, "GITPAAS_EXPORTS": " ".join(exports),
            "npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", **(extra_env or {}),
        }
        script = _SCRIPT.format(merge="exec 2>&1; " if merge_stderr else "")
        api = self.client.api
        exec_id = api.exec_create(container.id, ["/bin/bash", "-c", script, "gitpaas-build", *command],
                                  user=f"{self.uid}:{self.gid}", environment=env, workdir="/app")["Id"]
        if merge_stderr:
            for line in iter_lines(api.exec_start(exec_id, stream=True)):
                on_line(line)
        else:
            stdout, stderr = api.exec_start(exec_id, demux=True)
            for line in (stdout or b"").decode("utf-8", "replace").splitlines():
                on_line(line)
            for line in (stderr or b"").decode("utf-8", "replace").splitlines():
                self.record(f"       (stderr) {line}")
        return api.exec_inspect(exec_id)["ExitCode"]

    def _exec_as_root(self, container: Container, shell: str) -> None:
        result = container.exec_run(["/bin/sh", "-c", shell], user="0:0")
        if result.exit_code != 0:
            output = result.output.decode("utf-8", "replace").strip()
            raise self.failed(f"preparing the build container failed ({shell.split()[0]}): {output}")

    def _commit(self, container: Container, process_types: dict[str, str]) -> BuiltImage:
        """The slug image: the stack plus one layer holding /app."""
        repository, _, tag = self.request.tag.rpartition(":")
        # No pause: nothing runs in the container any more but its idle `sleep`.
        image = container.commit(repository=repository, tag=tag, pause=False, conf={
            "Labels": self.request.labels, "Env": [f"PATH={SLUG_PATH}", "HOME=/app"], "WorkingDir": "/app",
            # The slug's processes run as the user that compiled /app (nobody when gitpaas runs as
            # root), so they may write /app as on Heroku, and are never root.
            "Entrypoint": PROFILE_ENTRYPOINT, "Cmd": ["/bin/bash"], "User": f"{self.uid}:{self.gid}",
        })
        total = image.attrs.get("Size", 0)
        try:
            slug = total - self.client.images.get(self.stack_image).attrs.get("Size", 0)
        except ENGINE_ERRORS:
            slug = total  # the stack image went away meanwhile: report the whole image
        self.stage("Slug image")
        self.say(f"/app is {cache.describe_size(slug)} (the image, stack included: {cache.describe_size(total)})")
        return BuiltImage(image_id=image.id, tag=self.request.tag, size=total,
                          default_process_types=dict(process_types))


def _remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except NotFound:
        pass  # removed already
    except APIError:
        pass  # 409: being removed already; otherwise the app's next build removes it as a leftover


def staged_path(index: int, buildpack: Buildpack) -> str:
    """Where a buildpack is inside the build container."""
    return f"{BUILD_ROOT}/buildpacks/{index + 1}-{buildpack.folder_name}"


def write_staging_tar(fileobj: IO[bytes], buildpacks: list[Buildpack], config_vars: dict[str, str]) -> None:
    """The buildpacks (without their .git) and ENV_DIR — one 0600 file per config var, value byte for byte."""
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for index, buildpack in enumerate(buildpacks):
            tar.add(str(buildpack.path), arcname=staged_path(index, buildpack).lstrip("/"), filter=_without_git)
        folder = tarfile.TarInfo(ENV_DIR.lstrip("/"))
        folder.type, folder.mode = tarfile.DIRTYPE, 0o700
        tar.addfile(folder)
        for key, value in sorted(config_vars.items()):
            data = value.encode("utf-8", "surrogateescape")
            info = tarfile.TarInfo(f"{ENV_DIR.lstrip('/')}/{key}")
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))


def _without_git(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if "/.git/" in f"/{info.name}/":
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
