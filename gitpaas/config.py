"""Config vars: pure checks and the descriptions Heroku gives the releases they create."""

from __future__ import annotations

import re

from gitpaas.errors import InvalidParams, UsageError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: a value's limit, in UTF-8 bytes: well under the kernel's 128 KiB for one environment string
MAX_VALUE_BYTES = 32 * 1024
#: a name's limit, in characters: far longer than any real one, and it keeps each environment entry small
MAX_KEY_LENGTH = 256
#: all of an app's config vars together, as Heroku caps them: every process gets them all in its
#: environment, which the kernel limits too
MAX_TOTAL_BYTES = 32 * 1024


def validate_key(key: str) -> str:
    """``key`` if it can be an environment variable's name; InvalidParams (exit 2, HTTP 422) if not."""
    if not _KEY.fullmatch(key):
        raise InvalidParams(f"invalid config var name {key!r}: use letters, digits and '_', not starting with a digit")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidParams(f"config var names are limited to {MAX_KEY_LENGTH} characters ({key[:20]}… is longer)")
    return key


def validate_value(key: str, value: str) -> str:
    """``value`` if every release can put it in an environment; InvalidParams (exit 2, HTTP 422) if
    not. One rule for every shell: a value stored here that no container can take would make every
    later release of the app fail."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: from a JSON "\ud800", or bytes that were not UTF-8
        raise InvalidParams(f"the value of {key} is not valid UTF-8 text") from None
    if size > MAX_VALUE_BYTES:
        raise InvalidParams(f"the value of {key} is larger than {MAX_VALUE_BYTES // 1024} KiB")
    if "\x00" in value:
        raise InvalidParams(f"the value of {key} contains a NUL byte, which no environment can hold")
    return value


def validate_total(values: dict[str, str]) -> dict[str, str]:
    """``values`` if together they fit one environment; InvalidParams (exit 2, HTTP 422) if not."""
    total = sum(len(key.encode()) + len(value.encode("utf-8", "surrogateescape")) + 2 for key, value in values.items())
    if total > MAX_TOTAL_BYTES:
        raise InvalidParams(f"an app's config vars are limited to {MAX_TOTAL_BYTES // 1024} KiB together "
                            f"(these would take {total / 1024:.0f} KiB): nothing was changed")
    return values


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` → ``{"A": "1", "B": "x=y"}``: the value is everything after the first ``=``."""
    if not items:
        raise UsageError("nothing to set: write KEY=VALUE, e.g. config:set DEBUG=1")
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"cannot read {item!r}: write KEY=VALUE")
        values[validate_key(key)] = validate_value(key, value)
    return values


def describe_change(set_keys: list[str], removed_keys: list[str]) -> str:
    """Heroku's release descriptions: "Set FOO, BAR config vars", "Remove FOO config vars"."""
    parts = []
    if set_keys:
        parts.append(f"Set {', '.join(set_keys)} config vars")
    if removed_keys:
        parts.append(f"Remove {', '.join(removed_keys)} config vars")
    return " and ".join(parts)
