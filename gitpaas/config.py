"""Config vars: pure checks and the descriptions Heroku gives the releases they create."""

from __future__ import annotations

import re

from gitpaas.errors import UsageError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_VALUE_BYTES = 32 * 1024


def validate_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise UsageError(f"invalid config var name {key!r}: use letters, digits and '_', not starting with a digit")
    return key


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` → ``{"A": "1", "B": "x=y"}``: the value is everything after the first ``=``."""
    if not items:
        raise UsageError("nothing to set: write KEY=VALUE, e.g. config:set DEBUG=1")
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"cannot read {item!r}: write KEY=VALUE")
        validate_key(key)
        if len(value.encode("utf-8", "surrogateescape")) > MAX_VALUE_BYTES:
            raise UsageError(f"the value of {key} is larger than {MAX_VALUE_BYTES // 1024} KiB")
        if "\x00" in value:
            raise UsageError(f"the value of {key} contains a NUL byte, which no environment can hold")
        values[key] = value
    return values


def describe_change(set_keys: list[str], removed_keys: list[str]) -> str:
    """Heroku's release descriptions: "Set FOO, BAR config vars", "Remove FOO config vars"."""
    parts = []
    if set_keys:
        parts.append(f"Set {', '.join(set_keys)} config vars")
    if removed_keys:
        parts.append(f"Remove {', '.join(removed_keys)} config vars")
    return " and ".join(parts)
