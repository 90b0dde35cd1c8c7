"""heroku.yml, Heroku's manifest for Docker apps, read with pyyaml: text in, a Manifest out.

    setup:
      addons:
        - plan: heroku-postgresql
          as: DATABASE
    build:
      docker:
        web: Dockerfile
        worker:
          dockerfile: worker/Dockerfile
          target: runtime
      config:
        RAILS_ENV: production
    release:
      command:
        - ./deployment-tasks.sh
      image: worker
    run:
      web: bundle exec puma -C config/puma.rb
      worker:
        command:
          - python myworker.py
        image: worker

Every mistake is a PushRefused naming the key and its line (``heroku.yml line 7: build.docker.worker:
…``), never a Python error. No I/O here.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field

import yaml

from gitpaas import procfile
from gitpaas.addons.plans import normalize_attachment, parse_plan
from gitpaas.errors import PushRefused, UsageError

FILE = "heroku.yml"
#: the most a manifest may hold: far more than any app needs, a bound on what parsing costs
MAX_BYTES = 64 * 1024
#: how deep its mappings and lists may nest, and how many images it may build
MAX_DEPTH = 16
MAX_BUILDS = 32
_BUILD_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DockerBuild:
    """One image to build: a Dockerfile (relative to the repository's root), built with the folder it
    is in as the context, optionally to one ``target`` stage."""

    process_type: str
    dockerfile: str
    target: str | None = None

    @property
    def context(self) -> str:
        """The build context, relative to the repository's root ("" for the root itself)."""
        return posixpath.dirname(self.dockerfile)


@dataclass(frozen=True)
class Process:
    #: the command, or None for the image's own CMD
    command: str | None
    #: the process type whose image runs it
    image: str


@dataclass(frozen=True)
class Manifest:
    builds: tuple[DockerBuild, ...]
    #: build.config: passed to every build as build arguments
    build_args: dict[str, str] = field(default_factory=dict)
    #: the process types and what each runs (the Procfile is not read when heroku.yml is there)
    processes: dict[str, Process] = field(default_factory=dict)
    #: release.command, run in the image of ``release_image`` before the new release goes live
    release_command: str | None = None
    release_image: str = procfile.WEB
    #: setup.addons: provisioned before the app's first release phase, like app.json's
    addons: tuple[tuple[str, str | None], ...] = ()
    #: setup.config: config vars the app gets on its first deploy (those it has not set already)
    config: dict[str, str] = field(default_factory=dict)

    def build_of(self, process_type: str) -> DockerBuild:
        return next(build for build in self.builds if build.process_type == process_type)

    @property
    def images_used(self) -> set[str]:
        """The build.docker entries some process type (or the release phase) runs in."""
        return {process.image for process in self.processes.values()} | ({self.release_image} if self.release_command else set())


class _Refused(Exception):
    def __init__(self, node: yaml.Node | None, where: str, problem: str) -> None:
        super().__init__(problem)
        self.node, self.where, self.problem = node, where, problem


def parse(text: str) -> Manifest:
    """The manifest in ``text``; PushRefused naming the key and line of the first mistake."""
    if len(text.encode("utf-8", "surrogateescape")) > MAX_BYTES:
        raise PushRefused(f"{FILE} is larger than {MAX_BYTES // 1024} KB")
    try:
        _check_shape(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except _Refused as refused:
        raise PushRefused(f"{FILE} line {refused.node.start_mark.line + 1}: {refused.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise PushRefused(f"{FILE} is not valid YAML:{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise PushRefused(f"{FILE} is not valid YAML: {exc}") from None
    try:
        return _manifest(root)
    except _Refused as refused:
        line = f" line {refused.node.start_mark.line + 1}" if refused.node is not None else ""
        raise PushRefused(f"{FILE}{line}: {refused.where}: {refused.problem}") from None


def _check_shape(text: str) -> None:
    """No anchors or aliases (a few bytes of aliases can stand for gigabytes of command), nesting at
    most MAX_DEPTH deep: checked on the event stream, before any node is made."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _Refused(event, "", "anchors and aliases (& and *) are not allowed in heroku.yml")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(event, "", f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


# --- the sections ------------------------------------------------------------------------------


def _manifest(root: yaml.Node | None) -> Manifest:
    top = _mapping(root, "the file", {"setup", "build", "release", "run"})
    build = _mapping(top.get("build"), "build", {"docker", "config", "languages", "packages"})
    if "languages" in build or "packages" in build:
        key = "languages" if "languages" in build else "packages"
        raise _Refused(build[key], f"build.{key}", "only Docker builds are supported (build.docker)")
    if "docker" not in build:
        raise _Refused(top.get("build") or root, "build.docker",
                       "name at least the web image's Dockerfile, like `web: Dockerfile`")
    builds = tuple(_build(name, node) for name, node in _entries(build["docker"], "build.docker"))
    if not builds:
        raise _Refused(build["docker"], "build.docker", "name at least one Dockerfile, like `web: Dockerfile`")
    if len(builds) > MAX_BUILDS:
        raise _Refused(build["docker"], "build.docker", f"more than {MAX_BUILDS} images")
    images = {b.process_type for b in builds}
    build_args = {}
    for key, node in _entries(build.get("config"), "build.config"):
        if not _BUILD_ARG.match(key):
            raise _Refused(node, f"build.config.{key}", "a build argument's name is letters, digits and _")
        build_args[key] = _text(node, f"build.config.{key}", allow_number=True)

    processes: dict[str, Process] = {b.process_type: Process(None, b.process_type)
                                     for b in builds if b.process_type != procfile.RELEASE}
    for name, node in _entries(top.get("run"), "run"):
        _process_type(name, node, "run")
        if name == procfile.RELEASE:
            raise _Refused(node, "run.release", "the release phase is the `release` section, not a run entry")
        if isinstance(node, yaml.MappingNode):
            entry = _mapping(node, f"run.{name}", {"command", "image"})
            image = _text(entry["image"], f"run.{name}.image") if "image" in entry else (
                name if name in images else procfile.WEB)
            command = _command(entry["command"], f"run.{name}.command") if "command" in entry else None
        else:
            image, command = (name if name in images else procfile.WEB), _command(node, f"run.{name}")
        if image not in images:
            at = entry["image"] if isinstance(node, yaml.MappingNode) and "image" in entry else node
            raise _Refused(at, f"run.{name}", f"it runs in the image of {image!r}, which build.docker does not build")
        processes[name] = Process(command, image)

    release_command, release_image = None, procfile.WEB
    if top.get("release") is not None:
        release = _mapping(top["release"], "release", {"command", "image"})
        if "command" not in release:
            raise _Refused(top["release"], "release", "give the release phase a command")
        release_command = _command(release["command"], "release.command")
        if "image" in release:
            release_image = _text(release["image"], "release.image")
        if release_image not in images:
            raise _Refused(release.get("image", top["release"]), "release.image",
                           f"{release_image!r} is not an image build.docker builds")

    setup = _mapping(top.get("setup"), "setup", {"addons", "config"})
    config = {}
    for key, node in _entries(setup.get("config"), "setup.config"):
        if not _BUILD_ARG.match(key):
            raise _Refused(node, f"setup.config.{key}", "a config var's name is letters, digits and _")
        config[key] = _text(node, f"setup.config.{key}", allow_number=True)
    return Manifest(builds=builds, build_args=build_args, processes=processes, release_command=release_command,
                    release_image=release_image, addons=_addons(setup.get("addons")), config=config)


def _build(name: str, node: yaml.Node) -> DockerBuild:
    _process_type(name, node, "build.docker")
    where = f"build.docker.{name}"
    if isinstance(node, yaml.MappingNode):
        entry = _mapping(node, where, {"dockerfile", "target"})
        if "dockerfile" not in entry:
            raise _Refused(node, where, "name its Dockerfile (dockerfile: path/to/Dockerfile)")
        path = _text(entry["dockerfile"], f"{where}.dockerfile")
        target = _text(entry["target"], f"{where}.target") if "target" in entry else None
    else:
        path, target = _text(node, where), None
    normalized = posixpath.normpath(path)
    if path.startswith("/") or normalized == ".." or normalized.startswith("../") or "\0" in path:
        raise _Refused(node, where, f"{path!r} is not a path inside the repository")
    return DockerBuild(name, normalized, target)


def _addons(node: yaml.Node | None) -> tuple[tuple[str, str | None], ...]:
    if node is None:
        return ()
    if not isinstance(node, yaml.SequenceNode):
        raise _Refused(node, "setup.addons", "a list of plans, like `- plan: heroku-postgresql`")
    found = []
    for number, item in enumerate(node.value, start=1):
        where = f"setup.addons entry {number}"
        if isinstance(item, yaml.ScalarNode):
            plan, attachment = _text(item, where), None
        else:
            entry = _mapping(item, where, {"plan", "as", "options"})
            if "plan" not in entry:
                raise _Refused(item, where, "name its plan (plan: heroku-postgresql)")
            plan = _text(entry["plan"], f"{where}.plan")
            attachment = _text(entry["as"], f"{where}.as") if "as" in entry else None
        try:
            found.append((parse_plan(plan).name, attachment and normalize_attachment(attachment)))
        except UsageError as exc:
            raise _Refused(item, where, exc.message) from None
    return tuple(found)


# --- values ---------------------------------------------------------------------------------------


def _mapping(node: yaml.Node | None, where: str, allowed: set[str]) -> dict[str, yaml.Node]:
    """A mapping's keys → value nodes; None is an empty mapping. An unknown or repeated key is refused."""
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise _Refused(node, where, "expected a mapping of keys to values")
    found: dict[str, yaml.Node] = {}
    for key_node, value in node.value:
        key = _key(key_node, where)
        if key not in allowed:
            raise _Refused(key_node, where, f"unknown key {key!r} (known: {', '.join(sorted(allowed))})")
        if key in found:
            raise _Refused(key_node, where, f"{key!r} is given twice")
        found[key] = value
    return found


def _entries(node: yaml.Node | None, where: str) -> list[tuple[str, yaml.Node]]:
    """A mapping of names chosen by the app (process types, build arguments), in file order."""
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
        return []
    if not isinstance(node, yaml.MappingNode):
        raise _Refused(node, where, "expected a mapping of names to values")
    seen: set[str] = set()
    entries = []
    for key_node, value in node.value:
        key = _key(key_node, where)
        if key in seen:
            raise _Refused(key_node, where, f"{key!r} is given twice")
        seen.add(key)
        entries.append((key, value))
    return entries


def _key(node: yaml.Node, where: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
        raise _Refused(node, where, "keys must be plain names")
    return node.value


def _text(node: yaml.Node, where: str, *, allow_number: bool = False) -> str:
    tags = {"tag:yaml.org,2002:str"} | ({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                                         "tag:yaml.org,2002:bool"} if allow_number else set())
    if not isinstance(node, yaml.ScalarNode) or node.tag not in tags or not node.value.strip():
        raise _Refused(node, where, "expected a non-empty string")
    if "\0" in node.value:
        raise _Refused(node, where, "a NUL character cannot be passed on")
    return node.value


def _command(node: yaml.Node, where: str) -> str:
    """A command: a string (run by a shell), or a list — one string, or the words of one command."""
    if isinstance(node, yaml.SequenceNode):
        words = [_text(item, where) for item in node.value]
        if not words:
            raise _Refused(node, where, "an empty list is no command")
        return words[0] if len(words) == 1 else shlex.join(words)
    return _text(node, where)


def _process_type(name: str, node: yaml.Node, where: str) -> None:
    if not procfile.is_process_type(name):
        raise _Refused(node, f"{where}.{name}", "a process type is letters, digits, '-' and '_' "
                       "(30 characters at most, starting with a letter or digit)")
