"""The builder interface: turn a pushed tree into a runnable image (the slug)."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

from gitpaas.errors import UnsupportedApp
from gitpaas.herokuyml import Manifest
from gitpaas.git.tree import PushedTree
from gitpaas.output import Output
from gitpaas.stacks import DEFAULT_STACK, STACKS, Stack


@dataclass
class BuildRequest:
    app: str
    source: PushedTree
    tag: str
    labels: dict[str, str]
    log_path: Path
    output: Output
    build_args: dict[str, str] = field(default_factory=dict)
    #: the app's config vars (a buildpack build gets them in ENV_DIR, one file per key)
    config_vars: dict[str, str] = field(default_factory=dict)
    #: the app's persistent build cache folder on the host (kept across builds, even failed ones)
    cache_dir: Path | None = None
    #: the stack the app is built on (its build stack)
    stack: Stack = field(default_factory=lambda: STACKS[DEFAULT_STACK])
    #: the tree's heroku.yml, parsed (None: it has none)
    heroku_yml: Manifest | None = None


@dataclass
class BuiltImage:
    image_id: str
    tag: str
    size: int
    #: process types the builder knows the image runs when the Procfile says nothing
    default_process_types: dict[str, str] = field(default_factory=dict)
    #: with no Procfile web entry, run the image's own command (CMD) as web: true for Dockerfile apps
    runs_image_command: bool = False
    #: the process types are ``default_process_types`` and nothing else: the Procfile is not read (heroku.yml)
    replaces_procfile: bool = False
    #: process type → the tag of its own image, for the types that do not run in ``tag`` (heroku.yml)
    process_images: dict[str, str] = field(default_factory=dict)


class Builder(Protocol):
    name: str

    def detect(self, source: PushedTree) -> bool: ...
    def build(self, request: BuildRequest) -> BuiltImage: ...


def select_builder(source: PushedTree, builders: Sequence[Builder]) -> Builder:
    for builder in builders:
        if builder.detect(source):
            return builder
    supported = ", ".join(builder.name for builder in builders)
    raise UnsupportedApp(
        f"cannot tell how to build this app: gitpaas builds apps with {supported} "
        "(add one at the root of the repository)"
    )


def text_context(files: dict[str, tuple[str, int]]) -> io.BytesIO:
    """A build context made of text files only (name → (text, mode)), as a tar in memory."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, (text, mode) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    return context
