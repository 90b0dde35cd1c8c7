"""The text side of Heroku's classic buildpack API, as pure functions: the ``.buildpacks`` file,
``bin/release``'s YAML, the ``----->`` step headers of build output, and which of the server's
environment variables a build container gets.

No I/O here: the builder (``gitpaas.build.buildpack``) feeds these text and acts on what they return.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from gitpaas.errors import BuildFailed

#: Package-index and proxy settings that a build container gets from the server's environment.
#: Only values that mean the same inside a container are passed: http(s) URLs (a pip config that
#: points at ``file:///opt/...`` on the host would point at nothing in the container).
URL_VARIABLES = ("PIP_INDEX_URL", "npm_config_registry", "NPM_CONFIG_REGISTRY",
                 "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
URL_LIST_VARIABLES = ("PIP_EXTRA_INDEX_URL",)
PLAIN_VARIABLES = ("NO_PROXY", "no_proxy", "PIP_TRUSTED_HOST")

StepKind = Literal["stage", "info", "warn"]


def parse_buildpacks_file(text: str) -> list[str]:
    """``.buildpacks``: one buildpack per line, in the order they run; blank lines and ``#`` comments skipped."""
    entries = []
    for raw in text.splitlines():
        line = raw.strip().lstrip("\ufeff")
        if line and not line.startswith("#"):
            entries.append(line)
    return entries


def parse_release(text: str, buildpack: str) -> dict[str, str]:
    """``default_process_types`` from ``bin/release``'s YAML (the only key gitpaas uses).

    Heroku's buildpacks print a small, fixed shape::

        ---
        addons: []
        default_process_types:
          web: npm start

    so this reads that shape (flow ``{}`` or a block of ``name: command`` lines, quoted or not)
    rather than bringing in a YAML library.
    """
    types: dict[str, str] = {}
    inside = False
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#") or raw.strip() in ("---", "..."):
            continue
        indented = raw[:1] in (" ", "\t")
        if not indented:
            key, sep, rest = raw.partition(":")
            if not sep:
                raise BuildFailed(f"buildpack {buildpack}: bin/release line {number} is not YAML: {raw.strip()!r}")
            inside = key.strip() == "default_process_types"
            if inside and rest.strip() not in ("", "{}", "~", "null"):
                raise BuildFailed(f"buildpack {buildpack}: bin/release line {number}: write default_process_types "
                                  f"as one 'name: command' line each, indented")
            continue
        if not inside:
            continue
        name, sep, command = raw.strip().partition(":")
        name, command = _unquote(name.strip()), _unquote(command.strip())
        if not sep or not name:
            raise BuildFailed(f"buildpack {buildpack}: bin/release line {number} is not 'name: command': {raw.strip()!r}")
        if command:
            types[name] = command
    return types


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        return inner.replace("''", "'") if value[0] == "'" else inner.replace('\\"', '"').replace("\\\\", "\\")
    return value


def route_line(line: str) -> tuple[StepKind, str]:
    """Map a buildpack's output line to gitpaas's output: ``-----> `` headers stay headers,
    ``       `` detail and `` !     `` warnings keep their meaning, anything else is detail."""
    stripped = line.rstrip("\r")
    if stripped.startswith("-----> "):
        return "stage", stripped[7:]
    if stripped.startswith(" !     "):
        return "warn", stripped[7:]
    if stripped.startswith(" ! "):
        return "warn", stripped[3:].lstrip()
    if stripped.startswith("       "):
        return "info", stripped[7:]
    return "info", stripped


def build_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The server's package-index and proxy settings that make sense inside a build container."""
    passed = {}
    for key in URL_VARIABLES:
        value = environ.get(key, "").strip()
        if _is_http_url(value):
            passed[key] = value
    for key in URL_LIST_VARIABLES:
        urls = [url for url in environ.get(key, "").split() if _is_http_url(url)]
        if urls:
            passed[key] = " ".join(urls)
    for key in PLAIN_VARIABLES:
        value = environ.get(key, "").strip()
        if value:
            passed[key] = value
    return passed


def _is_http_url(value: str) -> bool:
    return re.match(r"https?://[^\s/]+", value) is not None
