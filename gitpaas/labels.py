"""Labels on every Docker object gitpaas creates: they name the home and the app, so that two
homes on one machine never see each other's resources and cleanup can go by label."""

from __future__ import annotations

from gitpaas.settings import Settings

HOME = "gitpaas.home"
APP = "gitpaas.app"
RELEASE = "gitpaas.release"
PROCESS_TYPE = "gitpaas.process-type"
DYNO = "gitpaas.dyno"
ROLE = "gitpaas.role"  # "process", "release" (the release-phase container) or "build"
STACK = "gitpaas.stack"


def for_app(settings: Settings, app: str, **extra: str) -> dict[str, str]:
    labels = {HOME: settings.home_label, APP: app}
    labels.update({key: str(value) for key, value in extra.items()})
    return labels


def for_home(settings: Settings) -> dict[str, str]:
    return {HOME: settings.home_label}


def filters(labels: dict[str, str]) -> dict[str, list[str]]:
    """docker-py ``filters=`` for objects carrying every one of ``labels``."""
    return {"label": [f"{key}={value}" for key, value in labels.items()]}
