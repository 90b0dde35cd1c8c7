"""app.json: the parts gitpaas reads (``scripts.postdeploy``; unknown keys are ignored)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from gitpaas.errors import PushRefused
from gitpaas.healthchecks import parse_checks


@dataclass(frozen=True)
class AppJson:
    postdeploy: str | None = None
    #: Dokku's format: process type → list of checks (see gitpaas.healthchecks)
    healthchecks: dict = field(default_factory=dict)


def parse(text: str | None) -> AppJson:
    if text is None:
        return AppJson()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PushRefused(f"app.json is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
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
