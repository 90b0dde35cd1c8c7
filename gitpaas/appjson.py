"""app.json: the parts gitpaas reads (``scripts.postdeploy``; unknown keys are ignored)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from gitpaas.errors import PushRefused
from gitpaas.healthchecks import parse_checks


@dataclass(frozen=True)
class AppJson:
    postdeploy: str | None = None
    #: Dokku's format: process type → list of checks (see gitpaas.healthchecks)
    healthchecks: dict = field(default_factory=dict)


#: how deep objects and lists may nest: far more than any manifest needs, far less than Python's stack
MAX_DEPTH = 64
#: the most digits a number may have (Python's int() refuses more than 4300 with a long message)
MAX_DIGITS = 30


def parse(text: str | None) -> AppJson:
    if text is None:
        return AppJson()
    data = _load(text)
    if not isinstance(data, dict):
        raise PushRefused("app.json must be a JSON object")
    scripts = data.get("scripts")
    if scripts is None:
        scripts = {}
    if not isinstance(scripts, dict):
        raise PushRefused("app.json: \"scripts\" must be an object")
    postdeploy = scripts.get("postdeploy")
    if isinstance(postdeploy, dict):  # Heroku also accepts {"command": "...", "size": "..."}
        postdeploy = postdeploy.get("command")
    if postdeploy is not None and (not isinstance(postdeploy, str) or not postdeploy.strip()):
        raise PushRefused("app.json: scripts.postdeploy must be a command (a non-empty string)")
    return AppJson(postdeploy=postdeploy, healthchecks=_healthchecks(data.get("healthchecks")))


def _healthchecks(value) -> dict:
    if value is None:
        return {}
    try:
        return {process_type: [check.to_dict() for check in checks]
                for process_type, checks in parse_checks(value).items()}
    except ValueError as exc:
        raise PushRefused(f"app.json: healthchecks: {exc}") from None


def _load(text: str) -> object:
    """JSON as RFC 8259 has it: no NaN or Infinity, no number that is not finite, nesting at most
    MAX_DEPTH deep; anything else is a one-line PushRefused, never a Python error."""
    try:
        data = json.loads(text, parse_constant=_not_a_number, parse_float=_finite, parse_int=_integer)
    except json.JSONDecodeError as exc:
        raise PushRefused(f"app.json is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise PushRefused(f"app.json is too deeply nested (more than {MAX_DEPTH} levels)") from None
    except ValueError as exc:  # from the number hooks below
        raise PushRefused(f"app.json is not valid JSON: {exc}") from None
    if _depth(data) > MAX_DEPTH:
        raise PushRefused(f"app.json is too deeply nested (more than {MAX_DEPTH} levels)")
    return data


def _not_a_number(word: str) -> float:
    raise ValueError(f"{word} is not a JSON number")


def _finite(text: str) -> float:
    if len(text) > MAX_DIGITS * 2:
        raise ValueError(f"a number has more than {MAX_DIGITS * 2} characters")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large a number")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number has more than {MAX_DIGITS} digits")
    return int(text)


def _depth(value: object) -> int:
    """How deeply ``value``'s lists and objects nest (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest
