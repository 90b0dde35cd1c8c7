"""The stack images: the Debian bases that app images are built on, one per stack (gitpaas.stacks).

No container registry is needed (or reachable): each image is made from its suite's Debian packages
with debootstrap and ``docker import``. One image per stack serves every gitpaas home on the
machine. Its ``gitpaas.stack`` label records the fingerprint of the recipe it was built from, so a
changed recipe rebuilds it and an unchanged one is reused; ``gitpaas.stack.runtimes`` records the
exact Python and Node.js versions in it.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import docker.errors
import requests
from docker.utils import parse_repository_tag
from filelock import FileLock

from gitpaas import labels
from gitpaas.dockerutil import engine_call
from gitpaas.errors import EnvironmentProblem
from gitpaas.runtimes import Provided
from gitpaas.settings import Settings
from gitpaas.stacks import STACKS, Stack

DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Bump when the steps below change in a way that the package list does not show.
RECIPE_VERSION = 2
#: the label holding the exact runtime versions a stack image has: {"python": {"3.13": "3.13.5"}, "node": "20.19.2"}
RUNTIMES_LABEL = "gitpaas.stack.runtimes"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
LOG_TAIL_LINES = 40
# Proxy settings are the only part of the caller's environment that the build passes on.
_PASSED_ENVIRONMENT = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")

Progress = Callable[[str], None]


# --- the recipe, as pure values ---------------------------------------------------------------


def stack_fingerprint(stack: Stack, recipe_version: int = RECIPE_VERSION) -> str:
    """A short hash of what goes into the image; the order of the packages does not matter."""
    recipe = json.dumps([recipe_version, stack.suite, sorted(stack.packages), stack.security_updates])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def mirror_from_sources(texts: Iterable[str], suite: str | Callable[[str], bool]) -> str | None:
    """The first plain-http mirror in apt sources (both formats) that serves ``suite`` (a name, or
    a test of one).

    Only http is taken: apt inside the fresh root file system has no CA certificates yet.
    """
    wanted = suite if callable(suite) else suite.__eq__
    for text in texts:
        for uris, suites in _source_entries(text):
            if any(wanted(name) for name in suites):
                for uri in uris:
                    if uri.startswith("http://"):
                        return uri.rstrip("/")
    return None


def _source_entries(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """(URIs, suites) of each entry, from one-line ``deb`` lines or deb822 stanzas."""
    stanza: dict[str, str] = {}
    for raw in text.splitlines() + [""]:
        line = raw.split("#", 1)[0].strip()
        words = re.sub(r"\[[^]]*\]", " ", line).split()
        if words[:1] == ["deb"]:
            if len(words) >= 3:
                yield [words[1]], [words[2]]
        elif ":" in line and not raw[:1].isspace():
            key, value = line.split(":", 1)
            stanza[key.strip().lower()] = value.strip()
        elif not line and stanza:
            if stanza.get("types", "deb").split().count("deb") and stanza.get("enabled", "yes") != "no":
                yield stanza.get("uris", "").split(), stanza.get("suites", "").split()
            stanza = {}


def sources_list(mirror: str, stack: Stack, security_mirror: str | None = None) -> str:
    lines = [f"deb {mirror} {stack.suite} main"]
    if stack.security_updates:
        lines.append(f"deb {mirror} {stack.suite}-updates main")
        if security_mirror:
            lines.append(f"deb {security_mirror} {stack.suite}-security main")
    return "\n".join(lines) + "\n"


def debootstrap_command(rootfs: Path, stack: Stack, mirror: str = DEFAULT_MIRROR) -> list[str]:
    # No --include: debootstrap's own resolver cannot install npm; apt does that afterwards. The
    # script is sid's for a suite this host's debootstrap does not know yet (they are all alike).
    script = stack.suite if Path(f"/usr/share/debootstrap/scripts/{stack.suite}").exists() else "sid"
    return ["debootstrap", "--variant=minbase", stack.suite, str(rootfs), mirror,
            f"/usr/share/debootstrap/scripts/{script}"]


def apt_update_command(rootfs: Path, *options: str) -> list[str]:
    return ["chroot", str(rootfs), "apt-get", *options, "update"]


def apt_install_command(rootfs: Path, packages: Iterable[str]) -> list[str]:
    return ["chroot", str(rootfs), "apt-get", "install", "-y", "--no-install-recommends", *packages]


def apt_clean_command(rootfs: Path) -> list[str]:
    return ["chroot", str(rootfs), "apt-get", "clean"]


def import_changes(fingerprint: str, runtimes: dict | None = None) -> list[str]:
    """The ``docker import --change`` instructions that make the root file system an image."""
    recorded = [f"LABEL {RUNTIMES_LABEL}={json.dumps(json.dumps(runtimes, sort_keys=True))}"] if runtimes else []
    return [*recorded,
        f"ENV PATH={CONTAINER_PATH}",
        "ENV LANG=C.UTF-8",
        f"ENV SSL_CERT_FILE={CA_BUNDLE}",
        f"ENV PIP_CERT={CA_BUNDLE}",
        f"ENV REQUESTS_CA_BUNDLE={CA_BUNDLE}",
        f"ENV NODE_EXTRA_CA_CERTS={CA_BUNDLE}",
        "WORKDIR /app",
        'CMD ["/bin/bash"]',
        f"LABEL {labels.STACK}={fingerprint}",
    ]


# --- the image in the engine --------------------------------------------------------------------


@engine_call("looking up the stack image")
def stack_status(client, image: str, stack: Stack) -> str:
    """"missing", "current" or "outdated" (built from another recipe, or not by gitpaas)."""
    try:
        found = client.images.get(image)
    except docker.errors.ImageNotFound:
        return "missing"
    return "current" if (found.labels or {}).get(labels.STACK) == stack_fingerprint(stack) else "outdated"


@engine_call("looking up the stack images")
def provided_runtimes(client, settings: Settings) -> dict[str, Provided]:
    """What each stack provides: exactly, from the label of its image where it is built; else the
    catalogue's minor versions."""
    found = {}
    for stack in STACKS.values():
        found[stack.name] = Provided({version: "" for version in stack.pythons}, stack.node)
        try:
            recorded = json.loads((client.images.get(settings.stack_image(stack)).labels or {}).get(RUNTIMES_LABEL, ""))
        except (docker.errors.ImageNotFound, ValueError):
            continue
        pythons = recorded.get("python") if isinstance(recorded, dict) else None
        if isinstance(pythons, dict) and pythons:
            found[stack.name] = Provided({minor: pythons.get(minor, "") for minor in stack.pythons},
                                         str(recorded.get("node") or stack.node))
    return found


def ensure_stack(client, settings: Settings, stack: Stack, progress: Progress) -> str:
    """The image of ``stack``, built first when this engine has none (the first build on a stack the
    server has not built yet); one that is outdated is used as it is until ``stack:build``."""
    image = settings.stack_image(stack)
    if stack_status(client, image, stack) != "missing":
        return image
    if os.geteuid() != 0:
        raise EnvironmentProblem(f"the {stack.name} stack is not built on this server: "
                                 f"its operator builds it with `gitpaas stack:build {stack.name}`")
    progress(f"-----> The {stack.name} stack is not built on this server yet: building it first "
             "(once, a few minutes)")
    log = settings.home / "logs" / f"stack-{stack.name}.log"
    try:
        build_stack(client, stack, image, progress)
    except EnvironmentProblem as exc:
        # The details name the server's folders and mirrors: kept for the operator, not told to a pusher.
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as written:
            written.write(f"{exc}\n")
        raise EnvironmentProblem(f"building the {stack.name} stack failed (the server's logs/{log.name} says why); "
                                 f"its operator can run `gitpaas stack:build {stack.name}`") from None
    return image


@engine_call("building the stack image")
def build_stack(
    client,
    stack: Stack,
    image: str,
    progress: Progress,
    *,
    force: bool = False,
    workdir: Path | None = None,
    verbose: bool = False,
) -> bool:
    """Build ``image`` of ``stack`` unless it is current already; True when it was built.

    Needs root (debootstrap, chroot, mount). ``workdir`` holds the temporary root file system
    (about 400 MB); it defaults to /var/tmp, which unlike /tmp is rarely a small tmpfs.
    """
    # One build of a stack at a time on this machine (two pushes, a push and stack:build): the second
    # waits, then finds the image current.
    with FileLock(Path(workdir or _default_workdir() or tempfile.gettempdir()) / f"gitpaas-stack-{stack.name}.lock"):
        return _build_stack(client, stack, image, progress, force=force, workdir=workdir, verbose=verbose)


def _build_stack(client, stack: Stack, image: str, progress: Progress, *, force: bool, workdir: Path | None,
                 verbose: bool) -> bool:
    fingerprint = stack_fingerprint(stack)
    status = stack_status(client, image, stack)
    if status == "current" and not force:
        progress(f"-----> {image} is current (stack {fingerprint}), reusing it")
        return False
    if status == "outdated":
        progress(f"-----> {image} was built from another recipe, rebuilding it")
    _check_host()
    old_image = _stack_image_id(client, image)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="gitpaas-stack-", dir=workdir or _default_workdir()))
    rootfs = tmp / "rootfs"
    run = _Runner(progress, verbose)
    try:
        mirror, security_mirror = host_mirrors(stack)
        progress(f"-----> debootstrap {stack.suite} (minbase) from {mirror}")
        run.stage(debootstrap_command(rootfs, stack, mirror), "debootstrap")
        progress(f"-----> installing {', '.join(stack.packages)}")
        _install_packages(rootfs, stack, run, mirror, security_mirror)
        runtimes = _runtimes_in(rootfs, stack)
        progress(f"       Python {', '.join(runtimes['python'].values())}; Node.js {runtimes['node']}")
        progress(f"-----> importing into Docker as {image}")
        stage_started = time.monotonic()
        _import(client, rootfs, image, stack, fingerprint, runtimes)
        progress(f"       done in {time.monotonic() - stage_started:.0f}s")
    finally:
        _remove_rootfs(tmp, rootfs, progress)
    if old_image:
        _remove_old_image(client, old_image, image)
    size = client.images.get(image).attrs.get("Size", 0)
    progress(
        f"-----> {image} built in {time.monotonic() - started:.0f}s "
        f"(stack {fingerprint}, {size / 1e6:.0f} MB)"
    )
    return True


def host_mirrors(stack: Stack, sources: Iterable[Path] = HOST_APT_SOURCES) -> tuple[str, str | None]:
    """The host's Debian mirror for the stack's suite (or any suite's: a mirror has them all, or
    the default) and its security mirror (or None)."""
    texts = []
    for path in sources:
        files = sorted(path.glob("*.list")) + sorted(path.glob("*.sources")) if path.is_dir() else [path]
        for file in files:
            try:
                texts.append(file.read_text(errors="replace"))
            except OSError:
                continue
    # A mirror of Debian has every suite: the host's, whichever suite it runs, serves the stack's
    # (another distribution's mirror does not).
    mirror = mirror_from_sources(texts, stack.suite)
    if mirror is None:
        mirror = mirror_from_sources(texts, lambda name: not name.endswith("-security"))
        mirror = mirror if mirror and "debian" in mirror else DEFAULT_MIRROR
    security = (mirror_from_sources(texts, f"{stack.suite}-security")
                or mirror_from_sources(texts, lambda name: name.endswith("-security")))
    return mirror, security if security and "debian" in security else None


# --- steps ------------------------------------------------------------------------------------


class _Runner:
    """Runs the long commands: streams their output when verbose, keeps the tail for errors."""

    def __init__(self, progress: Progress, verbose: bool) -> None:
        self.progress = progress
        self.verbose = verbose
        self.env = {key: os.environ[key] for key in _PASSED_ENVIRONMENT if key in os.environ}
        self.env.update(
            PATH=CONTAINER_PATH, HOME="/root", LANG="C.UTF-8", LC_ALL="C.UTF-8",
            DEBIAN_FRONTEND="noninteractive",
        )

    def stage(self, command: list[str], what: str) -> None:
        started = time.monotonic()
        self(command, what)
        self.progress(f"       done in {time.monotonic() - started:.0f}s")

    def __call__(self, command: list[str], what: str) -> None:
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, text=True, errors="replace",
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip()
                tail.append(line)
                if self.verbose:
                    self.progress(f"       {line}")
        if process.returncode != 0:
            raise EnvironmentProblem(_with_tail(f"{what} failed (exit status {process.returncode})", tail))


def _install_packages(rootfs: Path, stack: Stack, run: _Runner, mirror: str, security_mirror: str | None) -> None:
    started = time.monotonic()
    _replace_file(rootfs / "etc/apt/sources.list", sources_list(mirror, stack, security_mirror))
    # Keep maintainer scripts from starting services inside the chroot.
    _replace_file(rootfs / "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", mode=0o755)
    _mount_pseudo_filesystems(rootfs)
    try:
        try:
            run(apt_update_command(rootfs), "apt-get update")
        except EnvironmentProblem as exc:
            if "is expired" not in str(exc):
                raise
            # A snapshot mirror serves a suite's Release file past its Valid-Until (testing's last a
            # week): taken as it is, its signature still checked.
            run.progress(f"       the mirror's Release file of {stack.suite} has expired (a snapshot mirror?): "
                         "using it as it is, its signature still checked")
            run(apt_update_command(rootfs, "-o", "Acquire::Check-Valid-Until=false"), "apt-get update")
        run(apt_install_command(rootfs, stack.packages), "apt-get install")
        run(apt_clean_command(rootfs), "apt-get clean")
    finally:
        _unmount_all(rootfs)
    (rootfs / "usr/sbin/policy-rc.d").unlink()
    # Containers must trust what the host trusts (a proxy's CA, for one) to reach PyPI and npm.
    host_bundle = Path(CA_BUNDLE)
    if host_bundle.is_file():
        _replace_file(rootfs / CA_BUNDLE.lstrip("/"), host_bundle.read_bytes())
    lists = rootfs / "var/lib/apt/lists"
    for entry in lists.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    # debootstrap copied the host's resolver settings; the engine provides its own at run time.
    _replace_file(rootfs / "etc/resolv.conf", "")
    run.progress(f"       done in {time.monotonic() - started:.0f}s")


def _runtimes_in(rootfs: Path, stack: Stack) -> dict:
    """The exact Python and Node.js versions installed in the root file system."""
    def version(*command: str) -> str:
        result = subprocess.run(["chroot", str(rootfs), *command], capture_output=True, text=True)
        if result.returncode != 0:
            raise EnvironmentProblem(f"{command[0]} does not run in the {stack.name} stack: {result.stderr.strip()[:200]}")
        return result.stdout.strip().removeprefix("v")
    pythons = {minor: version(f"python{minor}", "-c", "import platform; print(platform.python_version())")
               for minor in stack.pythons}
    return {"python": pythons, "node": version("node", "--version")}


def _import(client, rootfs: Path, image: str, stack: Stack, fingerprint: str, runtimes: dict) -> None:
    """Stream ``tar`` of the root file system into the engine, as ``docker import`` does."""
    repository, tag = parse_repository_tag(image)
    with tempfile.TemporaryFile() as tar_errors:
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
            stdout=subprocess.PIPE, stderr=tar_errors, stdin=subprocess.DEVNULL,
        )
        try:
            answer = client.api.import_image_from_data(
                _chunks(tar.stdout), repository=repository, tag=tag or "latest",
                changes=import_changes(fingerprint, runtimes),
            )
        except (docker.errors.DockerException, requests.RequestException) as exc:
            reason = getattr(exc, "explanation", None) or exc
            raise EnvironmentProblem(f"docker import of the stack failed: {reason}") from exc
        finally:
            tar.stdout.close()
            tar.wait()
        if tar.returncode != 0:
            tar_errors.seek(0)
            tail = tar_errors.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            raise EnvironmentProblem(_with_tail(f"tar of the stack failed (exit status {tar.returncode})", tail))
    for line in answer.splitlines():
        message = json.loads(line) if line.strip().startswith("{") else {}
        if message.get("error"):
            raise EnvironmentProblem(f"docker import of the stack failed: {message['error']}")
    if stack_status(client, image, stack) != "current":
        raise EnvironmentProblem(f"docker import did not leave {image} labelled {labels.STACK}={fingerprint}")


def _chunks(stream) -> Iterator[bytes]:
    while data := stream.read(1 << 20):
        yield data


def _remove_old_image(client, old_id: str, image: str) -> None:
    """Drop the image this build replaced, unless app images or containers still use it."""
    if client.images.get(image).id == old_id:
        return
    try:
        client.images.remove(old_id)
    except docker.errors.APIError:
        pass  # still used by a container or another tag: the old stack stays until nothing needs it


def _stack_image_id(client, image: str) -> str | None:
    try:
        found = client.images.get(image)
    except docker.errors.ImageNotFound:
        return None
    return found.id if labels.STACK in (found.labels or {}) else None


# --- the host ---------------------------------------------------------------------------------


def _check_host() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "building the stack image needs root (debootstrap, chroot, mount): run scripts/setup.sh as root"
        )
    for tool in ("debootstrap", "chroot", "mount", "tar"):
        if not shutil.which(tool, path=f"{os.environ.get('PATH', '')}:{CONTAINER_PATH}"):
            raise EnvironmentProblem(
                f"{tool} is not installed: run scripts/setup.sh, or apt-get install debootstrap"
            )


def _default_workdir() -> str | None:
    return "/var/tmp" if os.path.isdir("/var/tmp") else None


def _mount_pseudo_filesystems(rootfs: Path) -> None:
    for command in (
        ["mount", "-t", "proc", "proc", str(rootfs / "proc")],
        ["mount", "--bind", "/dev", str(rootfs / "dev")],
    ):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise EnvironmentProblem(f"{' '.join(command)} failed: {result.stderr.strip()}")


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    found = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            point = line.split()[1].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _unmount_all(path: Path) -> None:
    """Unmount everything under ``path``, deepest first (debootstrap may leave /proc mounted)."""
    for point in sorted(_mounts_under(path), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", point], capture_output=True)


def _remove_rootfs(tmp: Path, rootfs: Path, progress: Progress) -> None:
    _unmount_all(rootfs)
    if _mounts_under(rootfs):
        # Deleting now would delete the host's /dev through the bind mount.
        progress(f"-----> left {tmp} in place: something is still mounted under it")
        return
    shutil.rmtree(tmp, ignore_errors=True)


def _replace_file(path: Path, content: str | bytes, mode: int = 0o644) -> None:
    """Write a file inside the root file system without following a symlink out of it."""
    path.unlink(missing_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)


def _with_tail(message: str, tail: Iterable[str]) -> str:
    lines = list(tail)
    return message + ("\n" + "\n".join(f"       {line}" for line in lines) if lines else "")


__all__ = [
    "ensure_stack",
    "provided_runtimes",
    "build_stack",
    "stack_fingerprint",
    "stack_status",
]
