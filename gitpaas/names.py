"""Names users choose: app names follow Heroku's rule."""

from __future__ import annotations

import re

from gitpaas.errors import InvalidAppName, UsageError

_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")


def validate_app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name, else raise :class:`InvalidAppName`."""
    if not isinstance(name, str) or not _APP_NAME.fullmatch(name) or name.endswith("-"):
        raise InvalidAppName(name)
    return name


_HOST = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def validate_host(host: str) -> str:
    """A host name the router can serve (lowercased), else :class:`UsageError`."""
    candidate = host.strip().lower().rstrip(".")
    if not _HOST.fullmatch(candidate):
        raise UsageError(f"invalid host name {host!r}: use letters, digits, dashes and dots, e.g. www.example.com")
    return candidate
