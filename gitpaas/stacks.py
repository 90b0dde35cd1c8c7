"""The stacks: the Debian releases an app can be built on, and the runtimes each one provides.

A stack is one Debian suite made into an image from Debian's own packages (``gitpaas/build/stack.py``
builds it; nothing comes from a registry). Its Python interpreters and its Node.js are the suite's
packages, so the versions an app can ask for are the ones Debian ships: one patch release per minor
version, kept current with Debian's security fixes. Pure: no Docker, no files.

Like Heroku, each app has a *build stack*, the one its next build uses (``stack:set`` changes it),
and the stack of the release it runs. An app recorded before stacks could be chosen was built on
bookworm and stays there until someone sets another.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from gitpaas.errors import UsageError

#: what every stack has, whatever its suite: the rest of a stack's packages are its runtimes
BASE_PACKAGES: tuple[str, ...] = (
    "ca-certificates", "bash", "python3", "python3-venv", "python3-pip", "nodejs", "npm", "curl", "procps",
)


@dataclass(frozen=True)
class Stack:
    #: the Debian suite's code name, which is also the stack's name and its image's tag
    name: str
    #: "Debian 13 (stable)"
    debian: str
    #: the Platform API's availability word: public, or beta for Debian's testing suite
    state: str
    #: the Python minor versions the suite ships, the one its ``python3`` runs first
    pythons: tuple[str, ...]
    #: the suite's Node.js version, as far as the catalogue knows it (a built stack knows exactly)
    node: str
    #: when gitpaas first offered the stack (the API's created_at)
    introduced: str
    #: packages beyond BASE_PACKAGES and the interpreters
    extra: tuple[str, ...] = ()
    #: whether the suite has -updates and -security suites (testing has neither)
    security_updates: bool = True

    @property
    def suite(self) -> str:
        return self.name

    @property
    def id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"gitpaas:stack:{self.name}"))

    @property
    def packages(self) -> tuple[str, ...]:
        interpreters = [package for version in self.pythons[1:]
                        for package in (f"python{version}", f"python{version}-venv")]
        return (*BASE_PACKAGES, *interpreters, *self.extra)


STACKS: dict[str, Stack] = {stack.name: stack for stack in (
    Stack("bookworm", "Debian 12 (oldstable)", "public", ("3.11",), "18.20", "2026-01-01"),
    Stack("trixie", "Debian 13 (stable)", "public", ("3.13",), "20.19", "2026-12-01"),
    Stack("forky", "Debian 14 (testing)", "beta", ("3.14", "3.13", "3.15"), "24.21", "2026-12-01",
          security_updates=False),
)}
#: the stack of new apps: Debian's current stable release
DEFAULT_STACK = "trixie"
#: the stack of an app recorded before stacks could be chosen (everything was built on bookworm then)
LEGACY_STACK = "bookworm"
#: the name the Platform API used for the one stack before there were several
_OLD_API_NAMES = {"gitpaas-bookworm": "bookworm"}


def get(name: str) -> Stack:
    """The stack called ``name`` (its name or API id); UsageError naming the ones there are."""
    wanted = _OLD_API_NAMES.get(name.strip().lower(), name.strip().lower())
    for stack in STACKS.values():
        if wanted in (stack.name, stack.id):
            return stack
    raise UsageError(f"no stack {name!r}: gitpaas has {', '.join(STACKS)} (see `gitpaas stacks`)")


def of_record(name: str | None) -> Stack:
    """The stack a record names; a record from before stacks could be chosen names none: bookworm."""
    return get(name or LEGACY_STACK)
