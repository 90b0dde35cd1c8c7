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

_NUMBER = re.compile(r"[0-9]{1,12}")

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


def validate_custom_domain(host: str, domain: str) -> str:
    """A host name an app may add as a custom domain on a server whose apps live at ``*.{domain}``.

    Refused: names under ``domain`` (``APP.{domain}`` and ``api.{domain}`` are gitpaas's to give out,
    and claiming one would take over another app, or the API), ``localhost`` names (this machine),
    and wildcards that cover ``domain``'s names (``*.example.com`` on a server at example.com).
    """
    host = validate_host(host)
    domain = domain.lower().rstrip(".")
    bare = host.removeprefix("*.")
    if bare == "localhost" or bare.endswith(".localhost"):
        raise UsageError(f"{host} names this machine itself, not a domain people can reach")
    if bare == domain or bare.endswith(f".{domain}"):
        raise UsageError(f"{host} is under {domain}, whose names are gitpaas's own (each app's APP.{domain}, "
                         f"and api.{domain}): use a domain of yours")
    if host.startswith("*.") and domain.endswith(f".{bare}"):
        raise UsageError(f"{host} would take every app's APP.{domain} address")
    return host


def parse_number(text: str, digits: int = 12) -> int | None:
    """``text`` as a whole number written with ASCII digits only, at most ``digits`` of them; else
    None. (``str.isdigit`` also accepts "²", which ``int`` then refuses; and ``int`` of a long
    enough string meets Python's digit limit.)"""
    if not isinstance(text, str) or len(text) > digits or not _NUMBER.fullmatch(text):
        return None
    return int(text)


def covers(pattern: str, host: str) -> bool:
    """Does the wildcard ``pattern`` (``*.example.com``) match ``host``, as nginx matches it (any
    depth below: ``a.example.com`` and ``a.b.example.com``)?"""
    return pattern.startswith("*.") and host.endswith(pattern[1:]) and host != pattern

