"""Names users choose, and the one copy of each rule about them.

- app names follow Heroku's rule: a lowercase letter, then lowercase letters, digits and dashes,
  not ending with a dash, 30 characters at most;
- host names (custom domains, the router's server names): DNS labels of letters, digits and dashes,
  optionally behind one ``*.`` wildcard;
- an app is named in the API by its name or by its id (a UUID).
"""

from __future__ import annotations

import re

from gitpaas.errors import InvalidAppName, UsageError

_APP_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,28}[a-z0-9])?")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$)(?:\*\.)?{_HOST_LABEL}(?:\.{_HOST_LABEL})*")

#: names that route to gitpaas itself: api.$GITPAAS_DOMAIN is the Platform API (`gitpaas server --publish`)
RESERVED_APP_NAMES = frozenset({"api"})


def is_app_name(name: object) -> bool:
    return isinstance(name, str) and _APP_NAME.fullmatch(name) is not None


def validate_app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name, else raise :class:`InvalidAppName`."""
    if not is_app_name(name):
        raise InvalidAppName(name)
    return name


def validate_new_app_name(name: str) -> str:
    """A name for a new app: valid, and not one gitpaas keeps for itself."""
    validate_app_name(name)
    if name in RESERVED_APP_NAMES:
        raise UsageError(f"{name!r} is reserved: {name}.$GITPAAS_DOMAIN is gitpaas's own API")
    return name


def is_uuid(text: object) -> bool:
    return isinstance(text, str) and _UUID.fullmatch(text) is not None


def is_host(host: object) -> bool:
    """Is ``host`` already a normalized host name (lowercase, no trailing dot)?"""
    return isinstance(host, str) and _HOST.fullmatch(host) is not None


def validate_host(host: str) -> str:
    """A host name the router can serve (lowercased, without a trailing dot), else :class:`UsageError`."""
    candidate = host.strip().lower().rstrip(".") if isinstance(host, str) else ""
    if not is_host(candidate):
        raise UsageError(f"invalid host name {host!r}: use letters, digits, dashes and dots, e.g. www.example.com")
    return candidate
