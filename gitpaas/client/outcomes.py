"""What a command's change returned, in the same shape from the home and from a server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ConfigOutcome:
    changed: bool
    #: the release the change made; None when the app has none yet (it takes effect with the first)
    version: int | None


@dataclass
class Access:
    owner: str | None
    collaborators: list[str]
