"""An app as a reader sees it: ``apps:info``, the ``apps`` listing and the API's app shape read
records and nothing else (on a swarm, ``placement`` also asks the manager where processes run).

Kept apart from ``operations`` so that listing two hundred apps loads none of what changes them.
"""

from __future__ import annotations

from typing import Any

from gitpaas import stacks
from gitpaas.platform import Platform
from gitpaas.release import Release
from gitpaas.store.apps import App
from gitpaas.store.pipelines import PipelineStore


def current_release(platform: Platform, name: str) -> Release | None:
    app = platform.apps.get(name)
    return platform.apps.releases(name).get(app.current_release) if app.current_release else None


def app_stacks(app: App, release: Release | None) -> tuple[stacks.Stack, stacks.Stack]:
    """The stack the app runs on (its current release's; before any, the one it will be built on)
    and the stack its next build uses, as Heroku's ``stack`` and ``build_stack``."""
    build_stack = stacks.of_record(app.build_stack)
    return (stacks.of_record(release.stack) if release else build_stack), build_stack


def app_info(platform: Platform, name: str, placement: bool = False) -> dict[str, Any]:
    """The app as ``apps:info`` shows it; ``placement``: on a swarm, which node runs which process
    (asked of the manager: ``apps:info`` wants it, a listing of every app does not)."""
    app = platform.apps.get(name)
    release = current_release(platform, name)
    commands = release.process_types if release else {}
    stack, build_stack = app_stacks(app, release)
    return {
        "id": app.id, "name": app.name, "git_url": str(platform.apps.repo_path(name)),
        "stack": stack.name, "build_stack": build_stack.name,
        "web_url": platform.settings.web_url(name), "created_at": app.created_at, "updated_at": app.updated_at,
        "current_release": app.current_release and f"v{app.current_release}",
        "formation": [{"type": t, "quantity": q, "command": commands.get(t)} for t, q in app.formation.items()],
        "domains": app.domains, "retention": app.retention, "postdeploy": app.postdeploy,
        "owner": app.owner, "collaborators": list(app.collaborators), "maintenance": app.maintenance,
        "pipeline": _pipeline_stage(platform, name), "review": app.review,
        "scheduler": platform.settings.scheduler,
        # on a swarm, where its processes run (node → process names)
        **({"nodes": _placement(platform, name)} if placement and platform.settings.scheduler == "swarm" else {}),
    }


def _placement(platform: Platform, name: str) -> dict[str, list[str]]:
    placed: dict[str, list[str]] = {}
    for process in platform.scheduler.processes(name):
        if process.state == "up":
            placed.setdefault(process.node or "?", []).append(process.name)
    return dict(sorted(placed.items()))


def _pipeline_stage(platform: Platform, name: str) -> dict[str, str] | None:
    pipeline = PipelineStore(platform.settings).of_app(name)
    return {"name": pipeline.name, "stage": pipeline.coupling(name).stage} if pipeline else None


