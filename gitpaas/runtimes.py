"""The runtime versions an app asks for, read as Heroku reads them, and the stack that has them.

Python: ``.python-version`` (comment and blank lines skipped; ``3.13`` or ``3.13.1``), then
``runtime.txt`` (``python-3.13.1``), then ``Pipfile.lock``'s ``requires``. Node.js: package.json's
``engines.node``, a range read as npm reads it. A version the app's stack does not have is refused
with one line that says which versions there are and, when another stack has it, the command that
switches to that stack. Pure: the files' text in, a choice or an error out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import semantic_version

from gitpaas.errors import UnsupportedApp

#: what .python-version may say: a minor version, or a patch release of one
_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}(\.\d{1,3})?$")


@dataclass(frozen=True)
class Requested:
    version: str
    #: the file that asked (".python-version", "runtime.txt", "package.json engines.node", …)
    origin: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class Provided:
    """What one stack provides: Python minor → exact version ("" until the stack is built), Node.js."""

    python: Mapping[str, str] = field(default_factory=dict)
    node: str = ""


Reader = Callable[[str], "str | None"]


# --- what the app asks for -------------------------------------------------------------------


def python_request(read: Reader) -> Requested | None:
    """The Python version the app's files ask for, or None; UnsupportedApp when a file is unreadable.
    Heroku's order: ``runtime.txt`` (deprecated, but it wins when both are there), ``.python-version``,
    then ``Pipfile.lock``."""
    text = read("runtime.txt")
    if text is not None:
        raw = text.strip()
        if not raw.startswith("python-"):
            raise UnsupportedApp(f"runtime.txt must say python-3.X or python-3.X.Y, not {raw[:40]!r}")
        return Requested(_python_version(raw.removeprefix("python-"), "runtime.txt"), "runtime.txt")
    text = read(".python-version")
    if text is not None:
        lines = [line.strip() for line in text.splitlines()]
        versions = [line for line in lines if line and not line.startswith("#")]
        if len(versions) != 1:
            raise UnsupportedApp(".python-version must name one Python version, like 3.13 "
                                 f"(found {len(versions)} lines that are not comments)")
        return Requested(_python_version(versions[0], ".python-version"), ".python-version")
    text = read("Pipfile.lock")
    if text is not None:
        try:
            lock = json.loads(text)
        except ValueError:
            return None  # pipenv itself reports a broken lock file, with more to say than we could
        meta = lock.get("_meta") if isinstance(lock, dict) else None
        requires = meta.get("requires") if isinstance(meta, dict) else None
        if not isinstance(requires, dict):
            return None
        version = requires.get("python_full_version") or requires.get("python_version")
        if isinstance(version, str) and version:
            return Requested(_python_version(version, "Pipfile.lock"), "Pipfile.lock")
    return None


def _python_version(raw: str, origin: str) -> str:
    version = raw.strip()
    if not _PYTHON_VERSION.match(version):
        shown = version if len(version) <= 40 else version[:40] + "…"
        raise UnsupportedApp(f"{origin} asks for Python {shown!r}: write a version like 3.13 or 3.13.1")
    return version


def _patch(version: str) -> int:
    parts = version.split(".")
    return int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0


def node_request(read: Reader) -> Requested | None:
    """package.json's ``engines.node``, or None (no package.json, no engines.node)."""
    text = read("package.json")
    if text is None:
        return None
    try:
        engines = json.loads(text).get("engines") or {}
    except (ValueError, AttributeError):
        return None  # npm reports a broken package.json itself, with its line
    wanted = engines.get("node") if isinstance(engines, dict) else None
    if not isinstance(wanted, str) or not wanted.strip():
        return None
    return Requested(wanted.strip(), "package.json engines.node")


# --- which stack has it ----------------------------------------------------------------------


def choose_python(requested: Requested, stack: str, stacks: Mapping[str, Provided], app: str) -> tuple[str, str]:
    """The interpreter (``3.13``) for ``requested`` on ``stack`` and a line saying what runs; or
    UnsupportedApp listing what there is and the stack to switch to."""
    here = stacks[stack].python
    if requested.minor in here:
        exact = here[requested.minor]
        said = f"Python {exact or requested.minor} ({requested.origin} asks for {requested.version})"
        if exact and requested.version != requested.minor and requested.version != exact:
            newer = _patch(requested.version) > _patch(exact)
            said += (f"; Debian ships {requested.minor} as {exact}, "
                     + ("older than asked: the newest this stack has" if newer else "with its security fixes"))
        return requested.minor, said
    elsewhere = [name for name, provided in stacks.items() if requested.minor in provided.python]
    available = ", ".join(here)
    if elsewhere:
        raise UnsupportedApp(
            f"Python {requested.version} ({requested.origin}) is not on the {stack} stack, which has {available}; "
            f"the {elsewhere[0]} stack has it: run `gitpaas stack:set {elsewhere[0]} -a {app}` and push again")
    everywhere = "; ".join(f"{', '.join(provided.python)} ({name})" for name, provided in stacks.items())
    raise UnsupportedApp(f"Python {requested.version} ({requested.origin}) is on no stack of this server: "
                         f"it has {everywhere}")


def check_node(requested: Requested, stack: str, stacks: Mapping[str, Provided], app: str) -> str:
    """A line saying which Node.js runs when the stack's satisfies ``requested``; else UnsupportedApp
    naming the versions there are and the stack to switch to."""
    try:
        # npm allows a space after an operator (">= 18"); semantic_version does not
        spec = semantic_version.NpmSpec(re.sub(r"(<=|>=|<|>|=|~|\^)\s+", r"\1", requested.version))
    except ValueError:
        raise UnsupportedApp(f"{requested.origin} is {requested.version[:40]!r}, which is not a version range "
                             "npm understands (write one like 20.x or >=20)") from None

    def matches(version: str) -> bool:
        try:
            return version != "" and spec.match(semantic_version.Version.coerce(version))
        except ValueError:
            return False
    here = stacks[stack].node
    if matches(here):
        return f"Node.js {here} ({requested.origin} asks for {requested.version})"
    elsewhere = [name for name, provided in stacks.items() if name != stack and matches(provided.node)]
    if elsewhere:
        raise UnsupportedApp(
            f"Node.js {requested.version} ({requested.origin}) is not on the {stack} stack, which has {here}; "
            f"the {elsewhere[0]} stack has {stacks[elsewhere[0]].node}: run `gitpaas stack:set {elsewhere[0]} "
            f"-a {app}` and push again")
    everywhere = ", ".join(f"{provided.node} ({name})" for name, provided in stacks.items())
    raise UnsupportedApp(f"Node.js {requested.version} ({requested.origin}) is on no stack of this server: "
                         f"it has {everywhere}")
