"""Names users choose: app names follow Heroku's rule."""

from __future__ import annotations

import re

from gitpaas.errors import InvalidAppName

_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")


def validate_app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name, else raise :class:`InvalidAppName`."""
    if not isinstance(name, str) or not _APP_NAME.fullmatch(name) or name.endswith("-"):
        raise InvalidAppName(name)
    return name
