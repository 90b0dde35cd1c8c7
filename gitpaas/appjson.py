"""app.json: the parts gitpaas reads (``scripts.postdeploy`` and ``scripts.pr-predestroy``,
``healthchecks``, ``addons``, ``env`` for review apps; unknown keys are ignored)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from gitpaas import config as config_vars
from gitpaas.addons.plans import normalize_attachment, parse_plan
from gitpaas.errors import PushRefused, UsageError
from gitpaas.healthchecks import parse_checks


@dataclass(frozen=True)
class AppJson:
    postdeploy: str | None = None
    #: Dokku's format: process type → list of checks (see gitpaas.healthchecks)
    healthchecks: dict = field(default_factory=dict)
    #: add-ons to provision on the app's first deploy: (service, attachment or None), in order
    addons: tuple[tuple[str, str | None], ...] = ()
    #: run before a review app is destroyed (its branch deleted)
    predestroy: str | None = None
    #: the config vars a new review app gets (Heroku's ``env``), in order
    env: tuple["EnvVar", ...] = ()


@dataclass(frozen=True)
class EnvVar:
    """One of app.json's ``env`` entries: a fixed ``value``, a ``generator`` ("secret"), or neither —
    then the pipeline's review config must set it when it is ``required`` (Heroku's default)."""

    key: str
    value: str | None = None
    generator: str | None = None
    required: bool = True
    description: str | None = None


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
    return AppJson(postdeploy=_script(scripts, "postdeploy"), healthchecks=_healthchecks(data.get("healthchecks")),
                   addons=_addons(data.get("addons")), predestroy=_script(scripts, "pr-predestroy"),
                   env=_env(data.get("env")))


def _script(scripts: dict, name: str) -> str | None:
    command = scripts.get(name)
    if isinstance(command, dict):  # Heroku also accepts {"command": "...", "size": "..."}
        command = command.get("command")
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise PushRefused(f"app.json: scripts.{name} must be a command (a non-empty string)")
    return command


def _env(value) -> tuple[EnvVar, ...]:
    """``{"KEY": "value"}`` or ``{"KEY": {"value": …, "generator": "secret", "required": …,
    "description": …}}``; a value of another type is refused with where it is."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise PushRefused("app.json: \"env\" must be an object of config var names")
    found = []
    for key, entry in value.items():
        try:
            config_vars.validate_key(key)
        except UsageError as exc:
            raise PushRefused(f"app.json: env: {exc.message}") from None
        if isinstance(entry, str):
            entry = {"value": entry}
        if not isinstance(entry, dict):
            raise PushRefused(f"app.json: env.{key} must be a string or an object with \"value\" or \"generator\"")
        fixed, generator, required = entry.get("value"), entry.get("generator"), entry.get("required", True)
        if fixed is not None and not isinstance(fixed, str):
            raise PushRefused(f"app.json: env.{key}.value must be a string")
        try:
            if fixed is not None:
                config_vars.validate_value(key, fixed)
        except UsageError as exc:
            raise PushRefused(f"app.json: env: {exc.message}") from None
        if generator is not None and generator != "secret":
            raise PushRefused(f"app.json: env.{key}.generator must be \"secret\" (the only generator there is)")
        if not isinstance(required, bool):
            raise PushRefused(f"app.json: env.{key}.required must be true or false")
        description = entry.get("description")
        found.append(EnvVar(key, fixed, generator, required, description if isinstance(description, str) else None))
    return tuple(found)


def _addons(value) -> tuple[tuple[str, str | None], ...]:
    """``"heroku-postgresql"`` or ``{"plan": "heroku-redis", "as": "CACHE", "options": {…}}`` entries;
    options are accepted and have no effect (one plan per service here)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PushRefused("app.json: \"addons\" must be a list of plans or {\"plan\": …} objects")
    found = []
    for number, entry in enumerate(value, start=1):
        if isinstance(entry, str):
            entry = {"plan": entry}
        plan, attachment = (entry.get("plan"), entry.get("as")) if isinstance(entry, dict) else (None, None)
        if not isinstance(plan, str) or not plan.strip() or (attachment is not None and not isinstance(attachment, str)):
            raise PushRefused(f"app.json: addons entry {number} must name a plan (and \"as\" a name, if given)")
        try:
            found.append((parse_plan(plan).name, attachment and normalize_attachment(attachment)))
        except UsageError as exc:
            raise PushRefused(f"app.json: addons entry {number}: {exc.message}") from None
    return tuple(found)


def _healthchecks(value) -> dict:
    if value is None:
        return {}
    try:
        return {process_type: [check.to_dict() for check in checks]
                for process_type, checks in parse_checks(value).items()}
    except ValueError as exc:
        raise PushRefused(f"app.json: healthchecks: {exc}") from None


def without_comments(text: str) -> str:
    """``text`` with its ``//`` and ``/* */`` comments (outside strings) turned into spaces, line
    breaks kept: what remains is parsed as JSON, and an error in it is reported at its own line and
    column. Dokku's own sample apps write app.json with comments."""
    out = list(text)
    index, length, in_string = 0, len(text), False
    while index < length:
        char = text[index]
        if in_string:
            if char == "\\":
                index += 1  # the escaped character is part of the string, whatever it is
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif text.startswith("//", index):
            end = text.find("\n", index)
            end = length if end < 0 else end
            out[index:end] = " " * (end - index)
            index = end
            continue
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            if end < 0:
                line = text.count("\n", 0, index) + 1
                column = index - (text.rfind("\n", 0, index) + 1) + 1
                raise PushRefused(f"app.json is not valid JSON: line {line} column {column}: a /* comment is not closed")
            end += 2
            out[index:end] = [c if c == "\n" else " " for c in text[index:end]]
            index = end
            continue
        index += 1
    return "".join(out)


def _load(text: str) -> object:
    """JSON as RFC 8259 has it, with comments allowed (``without_comments``): no NaN or Infinity, no
    number that is not finite, nesting at most MAX_DEPTH deep; anything else is a one-line
    PushRefused, never a Python error."""
    text = without_comments(text)
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
