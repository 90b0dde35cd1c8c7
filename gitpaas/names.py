"""Names users choose: app names follow Heroku's rule."""

from __future__ import annotations

import re

from gitpaas.errors import InvalidAppName, UsageError

_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")


#: names that route to gitpaas itself: api.$GITPAAS_DOMAIN is the Platform API (`gitpaas server --publish`)
RESERVED_APP_NAMES = frozenset({"api"})


def validate_app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name, else raise :class:`InvalidAppName`."""
    if not isinstance(name, str) or not _APP_NAME.fullmatch(name) or name.endswith("-"):
        raise InvalidAppName(name)
    return name


def validate_new_app_name(name: str) -> str:
    """A name for a new app: valid, and not one gitpaas keeps for itself."""
    validate_app_name(name)
    if name in RESERVED_APP_NAMES:
        raise UsageError(f"{name!r} is reserved: {name}.$GITPAAS_DOMAIN is gitpaas's own API")
    return name


_HOST = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def validate_host(host: str) -> str:
    """A host name the router can serve (lowercased), else :class:`UsageError`."""
    candidate = host.strip().lower().rstrip(".")
    if not _HOST.fullmatch(candidate):
        raise UsageError(f"invalid host name {host!r}: use letters, digits, dashes and dots, e.g. www.example.com")
    return candidate
